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


def add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", action="append", default=[], metavar="PROFILE",
                   help="activate a profile: its services are deployed too (repeatable; default: "
                        "$COMPOSE_PROFILES, comma-separated)")


def profiles(given: list[str]) -> list[str]:
    """The profiles a deploy or plan activates: ``--profile``'s, else
    $COMPOSE_PROFILES (comma-separated), as Compose reads them."""
    import os

    names = [n.strip() for p in given or [os.environ.get("COMPOSE_PROFILES", "")] for n in p.split(",")]
    return [n for n in names if n]


def read_manifest(path: str) -> str:
    """A manifest's text; a file that is not UTF-8 is named with the line of
    its first bad byte, in the words the manifest parser uses."""
    from orch.cli.client import CLIError

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CLIError(f"{path}: cannot read the manifest: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CLIError(f"{path}:{line}: not UTF-8 text: {err.reason} at byte {err.start}; "
                       "save the file as UTF-8") from None


def remove_each(names: Iterable[str], remove: Any) -> int:
    """``remove(name)`` for each name, printing it; one that fails is
    reported on stderr and the others are still removed. The exit code."""
    from orch.cli.client import CLIError

    failed = False
    for name in names:
        try:
            remove(name)
        except CLIError as err:
            print(f"orch: error: {err.message}", file=sys.stderr)
            failed = True
            continue
        print(name)
    return 1 if failed else 0
