"""Metadata instructions: how ENV, WORKDIR, USER, LABEL, EXPOSE, CMD, ENTRYPOINT,
STOPSIGNAL, HEALTHCHECK, SHELL and VOLUME change the image's ``config`` object.

Each function takes the config (OCI ``config`` object, a dict) and returns a
new one; nothing here touches files. Values arrive already substituted.
"""

from __future__ import annotations

import copy
import posixpath
import re
from typing import Any

DEFAULT_SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}


def env_map(config: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def set_env(config: dict[str, Any], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    new = copy.deepcopy(config)
    env = env_map(new)
    for key, value in pairs:
        env[key] = value
    new["Env"] = [f"{k}={v}" for k, v in env.items()]
    return new


def set_workdir(config: dict[str, Any], path: str) -> dict[str, Any]:
    new = copy.deepcopy(config)
    new["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))
    return new


def set_field(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    new = copy.deepcopy(config)
    if value in (None, "", [], {}):
        new.pop(key, None)
    else:
        new[key] = value
    return new


def merge_dict(config: dict[str, Any], key: str, items: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(config)
    merged = dict(new.get(key) or {})
    merged.update(items)
    new[key] = merged
    return new


def command(config: dict[str, Any], args: list[str], json_form: bool) -> list[str]:
    """CMD/ENTRYPOINT/RUN argv: the exec form as is, the shell form through SHELL."""
    if json_form:
        return list(args)
    return [*(config.get("Shell") or DEFAULT_SHELL), args[0]]


def exposed(ports: list[str]) -> dict[str, dict[str, Any]]:
    """"80", "80/udp", "8000-8002/tcp" -> ExposedPorts keys."""
    out: dict[str, dict[str, Any]] = {}
    for item in ports:
        port, _, proto = item.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid protocol in port {item!r}")
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"invalid port {item!r}")
        for p in range(int(low), int(high or low) + 1):
            if not 0 < p < 65536:
                raise ValueError(f"port {p} out of range in {item!r}")
            out[f"{p}/{proto}"] = {}
    return out


def duration_ns(text: str) -> int:
    """Go-style duration ("30s", "1m30s", "500ms") in nanoseconds."""
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)")
    return int(total)


def healthcheck(config: dict[str, Any], text: str, json_args: list[str] | None,
                flags: dict[str, str]) -> dict[str, Any]:
    kind, _, rest = text.strip().partition(" ")
    if kind.upper() == "NONE":
        return set_field(config, "Healthcheck", {"Test": ["NONE"]})
    rest = rest.strip()
    test = ["CMD", *json_args] if json_args is not None else ["CMD-SHELL", rest]
    check: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        if flag in flags:
            check[key] = duration_ns(flags[flag])
    if "retries" in flags:
        if not flags["retries"].isdigit():
            raise ValueError(f"--retries must be a number, got {flags['retries']!r}")
        check["Retries"] = int(flags["retries"])
    return set_field(config, "Healthcheck", check)
