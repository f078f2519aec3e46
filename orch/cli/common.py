"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from typing import Any

from model.units import format_duration


def add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table",
                   help="output format")


def write_exec_output(outputs: Iterable[Any]) -> int:
    """Copy an Exec stream to stdout/stderr as it comes; the exit code."""
    code = 0
    for out in outputs:
        kind = out.WhichOneof("output")
        if kind == "stdout":
            sys.stdout.buffer.write(out.stdout)
            sys.stdout.flush()
        elif kind == "stderr":
            sys.stderr.buffer.write(out.stderr)
            sys.stderr.flush()
        elif kind == "exit_code":
            code = int(out.exit_code)
    return code


def ago(ts: float) -> str:
    if not ts:
        return ""
    return format_duration(max(0.0, time.time() - ts)) + " ago"
