"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import time

from orch.units import format_duration


def add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table",
                   help="output format")


def ago(ts: float) -> str:
    if not ts:
        return ""
    return format_duration(max(0.0, time.time() - ts)) + " ago"
