"""``orch run`` and ``orch create``: their options, the request, the event stream.

``orch run --rm IMAGE CMD`` is measured against ``runc run``, and a Python
CLI spends most of its time importing. So ``run`` has a quick path that
needs nothing beyond this module, ``client`` and ``h2grpc``:

- ``parse_quick`` reads the usual command lines (each option spelled in full,
  values as separate words or ``--opt=value``) from the same ``OPTIONS``
  table that ``register`` gives argparse. Anything else (abbreviations,
  ``--help``, ``--``, bad values) returns ``None``, and argparse takes over,
  with its messages. A property test checks that both agree wherever the
  quick parser answers;
- the request is protobuf wire format written by hand (``encode_config``),
  and the events are read the same way (``decode_event``); tests check both
  against the generated classes.

Argparse's path uses the same ``config_fields``, encoder and event loop, so
the two differ only in how the command line is read.

Docker's host options (``--cap-add``, ``--ulimit``, ``--dns``,
``--add-host``, ``--device``, ``--sysctl``, ``--shm-size``, ``--init``,
``--privileged``) go to the agent as given, and the agent checks them
(``nodeagent.agent.specbuild``); the CLI reads only what it must:
``--env-file`` (its lines become ``env``, before ``-e``), the numbers of
``--ulimit`` and ``--shm-size``. ``--privileged`` prints a warning.
"""

from __future__ import annotations

import sys

from orch.cli.client import Agent, CLIError, key_values
from orch.cli.pbwire import (
    WireError,
    decode_fields,
    field_bytes,
    field_double,
    field_int,
    field_string,
    int32,
    last_value,
    text_value,
    varint,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAG, VALUE, APPEND = "flag", "value", "append"


class Option:
    __slots__ = ("choices", "convert", "default", "dest", "help", "kind", "metavar", "names")

    def __init__(self, names: tuple[str, ...], kind: str = VALUE, default: Any = None,
                 convert: Any = None, choices: tuple[str, ...] | None = None, help: str | None = None,
                 metavar: str | None = None) -> None:
        self.names = names
        self.dest = max(names, key=len).lstrip("-").replace("-", "_")
        self.kind = kind
        self.default = False if kind == FLAG else default  # APPEND: a new list each time
        self.convert = convert
        self.choices = choices
        self.help = help
        self.metavar = metavar

    def argparse_kwargs(self) -> dict[str, Any]:
        if self.kind == FLAG:
            return {"action": "store_true", "help": self.help}
        kwargs: dict[str, Any] = {"default": [] if self.kind == APPEND else self.default,
                                  "help": self.help}
        if self.kind == APPEND:
            kwargs["action"] = "append"
        for key in ("metavar", "choices"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        if self.convert is not None:
            kwargs["type"] = self.convert
        return kwargs


RUN_ONLY = (
    Option(("--rm",), FLAG, help="remove the container when it exits"),
    Option(("-d", "--detach"), FLAG, help="run in the background"),
    Option(("--detach-keys",), metavar="KEYS",
           help="keys that detach from an -it container (default ctrl-p,ctrl-q)"),
)
OPTIONS = (
    Option(("--name",)),
    Option(("-e", "--env"), APPEND, metavar="K=V"),
    Option(("-p", "--publish"), APPEND, metavar="[IP:]HOST:CONTAINER[/tcp|/udp]"),
    Option(("--memory", "-m"), help="memory limit, e.g. 64Mi"),
    Option(("--cpus",), help="CPU quota, e.g. 0.5 or 500m"),
    Option(("--pids-limit",), help="processes at once; -1 unlimited (default: the node's, 4096)"),
    Option(("--restart",), default="no", help="no | on-failure[:N] | always | unless-stopped"),
    Option(("--network",), default="bridge",
           help="bridge (default), none, host, or a network of `orch network ls`"),
    Option(("--network-alias",), APPEND, metavar="ALIAS",
           help="another name of the container on its user-defined network"),
    Option(("--entrypoint",)),
    Option(("-w", "--workdir")),
    Option(("-u", "--user")),
    Option(("--hostname",)),
    Option(("--stop-timeout",), help="seconds between the stop signal and SIGKILL (default 10)"),
    Option(("--stop-signal",), default=""),
    Option(("--read-only",), FLAG),
    Option(("-l", "--label"), APPEND, metavar="K=V"),
    Option(("--storage-opt",), APPEND, metavar="size=SIZE",
           help="writable layer size limit, e.g. size=10G (at least 1M; how it is kept: orch info)"),
    Option(("-v", "--volume"), APPEND, metavar="[SRC:]DST[:ro|rw|nocopy]",
           help="a named volume (NAME:DST), a host directory (/PATH:DST, made if missing) or an "
           "anonymous volume (DST)"),
    Option(("--mount",), APPEND, metavar="type=volume|bind|tmpfs,source=..,target=..[,readonly]",
           help="a mount, in Docker's syntax; force (type bind) binds /, /proc, /sys, /dev or "
           "the agent's state on purpose"),
    Option(("--tmpfs",), APPEND, metavar="DST[:size=64m,mode=1777]", help="a tmpfs at DST"),
    Option(("--health-cmd",), metavar="CMD", help="command to check health (run with /bin/sh -c)"),
    Option(("--health-interval",), metavar="DURATION", help="time between checks, e.g. 30s (default 30s)"),
    Option(("--health-timeout",), metavar="DURATION",
           help="longest a check may run, e.g. 30s (default 30s)"),
    Option(("--health-retries",), metavar="N",
           help="consecutive failures that make it unhealthy (default 3)"),
    Option(("--health-start-period",), metavar="DURATION",
           help="start-up time during which failures do not count (default 0s)"),
    Option(("--health-start-interval",), metavar="DURATION",
           help="time between checks during the start period (default 5s)"),
    Option(("--no-healthcheck",), FLAG, help="disable any health check, the image's included"),
    Option(("--cap-add",), APPEND, metavar="CAP", help="add a capability to the default set (ALL: all)"),
    Option(("--cap-drop",), APPEND, metavar="CAP", help="drop a capability of the default set (ALL: all)"),
    Option(("--env-file",), APPEND, metavar="FILE",
           help="read environment variables from FILE (KEY=VALUE lines; -e wins)"),
    Option(("--ulimit",), APPEND, metavar="NAME=SOFT[:HARD]", help="a resource limit, e.g. nofile=1024:2048"),
    Option(("--add-host",), APPEND, metavar="NAME:IP", help="a line of the container's /etc/hosts"),
    Option(("--dns",), APPEND, metavar="IP", help="a nameserver of the container's /etc/resolv.conf"),
    Option(("--init",), FLAG, help="run a small init as PID 1 that reaps zombies and forwards signals"),
    Option(("--device",), APPEND, metavar="HOST[:CONTAINER[:rwm]]", help="a host device in the container"),
    Option(("--privileged",), FLAG,
           help="every capability and device, no seccomp profile: the container can take over the node"),
    Option(("--sysctl",), APPEND, metavar="K=V", help="a namespaced sysctl (net.*, kernel.shm*, ...)"),
    Option(("--shm-size",), metavar="SIZE", help="size of /dev/shm, e.g. 128m (default 64m)"),
    Option(("-i", "--interactive"), FLAG, help="keep stdin open (run: attached to this one)"),
    Option(("-t", "--tty"), FLAG, help="a terminal (pty) as the container's stdio"),
)


def options(run: bool) -> tuple[Option, ...]:
    return RUN_ONLY + OPTIONS if run else OPTIONS


def register(p: Any, run: bool) -> None:
    """The options and positionals of ``run`` (or ``create``) on an argparse parser."""
    import argparse

    for opt in options(run):
        p.add_argument(*opt.names, **opt.argparse_kwargs())
    p.add_argument("image")
    p.add_argument("cmd", nargs=argparse.REMAINDER)


# ---- the quick parser ------------------------------------------------------

def parse_quick(argv: list[str], run: bool = True) -> dict[str, Any] | None:
    """The values argparse would give for ``argv`` (the words after ``run``),
    or None wherever this parser would have to guess: argparse decides then."""
    opts = options(run)
    by_name = {name: opt for opt in opts for name in opt.names}
    values: dict[str, Any] = {opt.dest: [] if opt.kind == APPEND else opt.default for opt in opts}
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-") or word == "-":
            values["image"] = word
            values["cmd"] = argv[i:]
            # A later "--word" that is no option's full name may be taken by
            # argparse as an abbreviation, or refused as an ambiguous one: its call.
            if any(w.startswith("--") and w.partition("=")[0] not in by_name for w in values["cmd"]):
                return None
            return values
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = by_name.get(name)
        if opt is None:
            return None  # --help, --, abbreviations, -dit, -eK=V: argparse's call
        if opt.kind == FLAG:
            if eq:
                return None
            values[opt.dest] = True
            continue
        if not eq:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        if opt.choices is not None and value not in opt.choices:
            return None
        if opt.convert is not None:
            try:
                value = opt.convert(value)
            except ValueError:
                return None
        if opt.kind == APPEND:
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
    return None  # no image: argparse says so


# ---- the request -------------------------------------------------------------

def parse_port(text: str) -> dict[str, Any]:
    import re

    m = re.fullmatch(r"(?:(?P<ip>[0-9.]+):)?(?P<host>[0-9]{1,5}):(?P<ctr>[0-9]{1,5})(?:/(?P<proto>tcp|udp))?",
                     text)
    if not m:
        raise CLIError(f"invalid port mapping {text!r}: expected [IP:]HOST:CONTAINER[/tcp|/udp]")
    host, ctr = int(m["host"]), int(m["ctr"])
    for port in (host, ctr):
        if not 0 < port < 65536:
            raise CLIError(f"invalid port mapping {text!r}: ports are 1-65535")
    return {"host_port": host, "container_port": ctr, "protocol": m["proto"] or "tcp",
            "host_ip": m["ip"] or ""}


RESERVED_LABEL_PREFIX = "orch."  # orch's own labels (orch.task, orch.service)


def _labels(items: list[str]) -> dict[str, str]:
    labels = key_values(items, "label")
    for key in labels:
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise CLIError(f"invalid label {key!r}: labels under {RESERVED_LABEL_PREFIX!r} are orch's own")
    return labels


def _checked(v: dict[str, Any]) -> dict[str, Any]:
    """The options whose values ``model.units`` checks (imported only when one is given:
    the plain ``orch run IMAGE CMD`` needs none of it)."""
    out: dict[str, Any] = {"memory_bytes": 0, "cpus": 0.0, "pids_limit": 0, "stop_timeout": None}
    if v["name"] is not None and not v["name"]:
        raise CLIError("invalid --name '': give a name, or leave the option out for a generated one")
    if not any(v[key] is not None for key in ("memory", "cpus", "pids_limit", "stop_timeout", "user",
                                                  "hostname")):
        return out
    from model import units

    try:
        out["memory_bytes"] = units.parse_memory(v["memory"]) if v["memory"] else 0
        out["cpus"] = units.parse_cpus(v["cpus"]) if v["cpus"] else 0.0
        if v["pids_limit"] is not None:
            out["pids_limit"] = units.parse_pids_limit(v["pids_limit"], "--pids-limit")
        if v["stop_timeout"] is not None:
            out["stop_timeout"] = units.parse_seconds(v["stop_timeout"], units.MAX_STOP_GRACE_PERIOD,
                                                      "--stop-timeout")
        if v["user"] is not None:
            units.check_user(v["user"])
        if v["hostname"] is not None:
            units.check_hostname(v["hostname"])
    except units.QuantityError as err:
        raise CLIError(str(err))
    return out


def config_fields(v: dict[str, Any]) -> dict[str, Any]:
    """Checked ``ContainerConfig`` fields from parsed options (either parser's).

    ``command``, ``entrypoint``, ``workdir``, ``user`` and ``stop_timeout``
    are None when not given: the image's values apply then."""
    checked = _checked(v)
    env = read_env_files(v.get("env_file") or []) + v["env"]
    key_values(v["env"], "environment variable")
    entrypoint = v["entrypoint"]
    return {
        "image": v["image"], "name": v["name"] or "", "command": v["cmd"] or None,
        "entrypoint": None if entrypoint is None else ([entrypoint] if entrypoint else []),
        "env": env, "workdir": v["workdir"], "user": v["user"], "hostname": v["hostname"] or "",
        "ports": [parse_port(p) for p in v["publish"]], **checked,
        "restart_policy": v["restart"], "network": v["network"],
        "network_aliases": v["network_alias"],
        "auto_remove": bool(v.get("rm")),
        "stop_signal": v["stop_signal"], "labels": _labels(v["label"]),
        "read_only": v["read_only"], "storage_size_bytes": storage_size(v["storage_opt"]),
        "healthcheck": healthcheck(v), **host_options(v),
        "mounts": mounts(v) if v.get("volume") or v.get("mount") or v.get("tmpfs") else [],
        "tty": bool(v.get("tty")), "stdin_open": bool(v.get("interactive")),
    }


PRIVILEGED_WARNING = ("orch: warning: --privileged gives the container every capability and every "
                      "host device, without a seccomp profile: it can take over this node")


def host_options(v: dict[str, Any]) -> dict[str, Any]:
    """Docker's host options as ``ContainerConfig`` fields: the capabilities,
    ulimits, DNS, hosts, devices, sysctls, /dev/shm and --init (the agent
    checks each value; the CLI only reads them). ``--privileged`` warns."""
    if v.get("privileged"):
        print(PRIVILEGED_WARNING, file=sys.stderr)
    shm = v.get("shm_size")
    out: dict[str, Any] = {
        "cap_add": v.get("cap_add") or [], "cap_drop": v.get("cap_drop") or [],
        "ulimits": [parse_ulimit(u) for u in v.get("ulimit") or []],
        "dns": v.get("dns") or [], "extra_hosts": v.get("add_host") or [],
        "init": bool(v.get("init")), "devices": v.get("device") or [],
        "privileged": bool(v.get("privileged")),
        "sysctls": key_values(v.get("sysctl") or [], "--sysctl"), "shm_size": 0}
    if shm is not None:
        from model.units import QuantityError, parse_memory

        try:
            out["shm_size"] = parse_memory(shm)
        except QuantityError:
            raise CLIError(f"invalid --shm-size {shm!r}: expected a size such as 64m or 1g")
    return out


def parse_ulimit(text: str) -> dict[str, Any]:
    """``NAME=SOFT[:HARD]`` (HARD defaults to SOFT; ``unlimited`` or -1 for none);
    the names are ``model.settings``' (the agent checks them again, with the values)."""
    from model.settings import ULIMIT_NAMES

    name, sep, limits = text.partition("=")
    if not sep or name not in ULIMIT_NAMES:
        raise CLIError(f"invalid --ulimit {text!r}: expected NAME=SOFT[:HARD] with NAME one of: "
                       + ", ".join(ULIMIT_NAMES))
    values = []
    for part in limits.split(":"):
        if part in ("unlimited", "-1"):
            values.append(-1)
        elif part.isascii() and part.isdigit() and len(part) <= 18:
            values.append(int(part))
        else:
            raise CLIError(f"invalid --ulimit {text!r}: a limit is a number, or unlimited")
    if len(values) > 2:
        raise CLIError(f"invalid --ulimit {text!r}: expected NAME=SOFT[:HARD]")
    soft, hard = values[0], values[-1]
    if hard != -1 and (soft == -1 or soft > hard):
        raise CLIError(f"invalid --ulimit {text!r}: the soft limit must not exceed the hard one")
    return {"name": name, "soft": soft, "hard": hard}


def read_env_files(paths: list[str]) -> list[str]:
    """Docker's ``--env-file`` (``model.envfile``): errors name FILE:LINE."""
    import os

    from model.envfile import EnvFileError, parse_env_file

    out: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            out += parse_env_file(text, path, os.environ)
        except OSError as err:
            raise CLIError(f"invalid --env-file {path}: {err.strerror or err}")
        except UnicodeDecodeError:
            raise CLIError(f"invalid --env-file {path}: not UTF-8 text")
        except EnvFileError as err:
            raise CLIError(str(err))
    return out


HEALTH_DURATIONS = ("interval", "timeout", "start_period", "start_interval")
# A health check's longest duration, as the agent takes it (model.units.MAX_STOP_GRACE_PERIOD).
MAX_HEALTH_DURATION = 24 * 3600.0
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def healthcheck(v: dict[str, Any]) -> dict[str, Any] | None:
    """Docker's ``--health-*`` / ``--no-healthcheck`` as a ``HealthCheck``'s
    fields (durations in seconds; a field left out, or 0, is the image's);
    None when none is given (the image's check, if any, runs)."""
    given = {name: v.get("health_" + name) for name in ("cmd", "retries", *HEALTH_DURATIONS)}
    if v.get("no_healthcheck"):
        if any(value is not None for value in given.values()):
            raise CLIError("--no-healthcheck conflicts with the --health-* options")
        return {"test": ["NONE"]}
    if all(value is None for value in given.values()):
        return None
    out: dict[str, Any] = {"test": []}
    if given["cmd"] is not None:
        if not given["cmd"].strip():
            raise CLIError("invalid --health-cmd '': give a command, or --no-healthcheck for none")
        out["test"] = ["CMD-SHELL", given["cmd"]]
    if given["retries"] is not None:
        text = given["retries"]
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise CLIError(f"invalid --health-retries {text!r}: expected a number of failures, 0 or more")
        if int(text):
            out["retries"] = int(text)
    for name in HEALTH_DURATIONS:
        text = given[name]
        if text is not None:
            seconds = parse_duration(text, "--health-" + name.replace("_", "-"))
            if seconds:
                out[name] = seconds
    return out


def parse_duration(text: str, flag: str) -> float:
    """A Go-style duration (``30s``, ``1m30s``, ``500ms``) or a number of
    seconds, from 0 to 24h (1 ms at least, unless 0)."""
    import re

    part = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)"
    seconds = -1.0
    if len(text) <= 64 and re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", text):
        seconds = float(text)
    elif len(text) <= 64 and re.fullmatch(f"({part})+", text):
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(part, text))
    if not 0 <= seconds <= MAX_HEALTH_DURATION or 0 < seconds < 0.001:
        raise CLIError(f"invalid {flag} {text!r}: expected a duration such as 30s, 1m30s or 500ms "
                       "(at least 1ms, at most 24h; 0 for the image's)")
    return seconds


STORAGE_OPTS = ("size",)


def storage_size(opts: list[str]) -> int:
    """Docker's ``--storage-opt size=10G``, the only storage option known."""
    size = 0
    for item in opts:
        key, sep, value = item.partition("=")
        if key not in STORAGE_OPTS or not sep:
            raise CLIError(f"invalid --storage-opt {item!r}: expected KEY=VALUE with KEY one of: "
                           + ", ".join(STORAGE_OPTS))
        from model.units import QuantityError, parse_memory

        try:
            size = parse_memory(value)
        except QuantityError:
            raise CLIError(f"invalid --storage-opt {item!r}: expected a size such as 10G or 512Mi")
    return size


# ---- mounts: -v, --mount, --tmpfs --------------------------------------------

MOUNT_TYPES = ("volume", "bind", "tmpfs")
# --mount's keys (Docker's, and orch's ``force``); aliases -> the key.
_MOUNT_KEYS = {"type": "type", "source": "source", "src": "source", "target": "target",
               "destination": "target", "dst": "target", "readonly": "readonly", "ro": "readonly",
               "volume-nocopy": "volume_nocopy", "tmpfs-size": "tmpfs_size", "tmpfs-mode": "tmpfs_mode",
               "force": "force"}
_MOUNT_FLAGS = ("readonly", "volume_nocopy", "force")


def mounts(v: dict[str, Any]) -> list[dict[str, Any]]:
    """``MountConfig`` fields from ``-v``, then ``--mount``, then ``--tmpfs``
    (the agent checks targets, names and bind sources; a one-line CLIError
    here for what is malformed)."""
    return ([volume_spec(s) for s in v.get("volume") or ()] + [mount_spec(s) for s in v.get("mount") or ()]
            + [tmpfs_spec(s) for s in v.get("tmpfs") or ()])


def _mount(type: str, source: str, target: str, **flags: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type, "source": source, "target": target, "readonly": False,
                           "tmpfs_size": 0, "tmpfs_mode": 0, "volume_nocopy": False, "force": False}
    out.update(flags)
    return out


def volume_spec(text: str) -> dict[str, Any]:
    """Docker's ``-v [SRC:]DST[:OPTS]``: SRC an absolute host path (a bind;
    a missing directory is made, as Docker does), a volume name, or none (an
    anonymous volume); OPTS ro, rw, nocopy. The directory is made here, on
    the CLI's machine: the agent's, over a local socket."""
    parts = text.split(":")
    if len(parts) == 1:
        parts = ["", parts[0], ""]
    elif len(parts) == 2:  # Docker's rule: DST:OPTS if OPTS are options, else SRC:DST
        opts_only = set(parts[1].split(",")) <= {"ro", "rw", "nocopy"}
        parts = ["", *parts] if opts_only else [*parts, ""]
    if len(parts) != 3 or not parts[1]:
        raise CLIError(f"invalid -v {text!r}: expected [SOURCE:]TARGET[:ro|rw|nocopy]")
    source, target, opts = parts
    words = [w for w in opts.split(",") if w] if opts else []
    bad = [w for w in words if w not in ("ro", "rw", "nocopy")]
    if bad or ("ro" in words and "rw" in words):
        raise CLIError(f"invalid -v {text!r}: unknown or conflicting option {','.join(bad or words)!r}; "
                       "expected ro, rw or nocopy")
    if not target.startswith("/"):
        raise CLIError(f"invalid -v {text!r}: the target {target!r} must be an absolute path "
                       "in the container")
    if source.startswith("/"):
        if "nocopy" in words:
            raise CLIError(f"invalid -v {text!r}: nocopy is for volumes, not host paths")
        import os

        if not os.path.exists(source):
            try:
                os.makedirs(source, 0o755)
            except OSError:
                pass  # the agent says the source does not exist
        return _mount("bind", source, target, readonly="ro" in words)
    if source.startswith("."):
        raise CLIError(f"invalid -v {text!r}: {source!r} is neither a volume name nor an absolute "
                       "host path (a bind needs one from '/')")
    return _mount("volume", source, target, readonly="ro" in words, volume_nocopy="nocopy" in words)


def _flag(value: str, key: str, text: str) -> bool:
    if value.lower() in ("", "1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise CLIError(f"invalid --mount {text!r}: {key}={value!r}, expected true or false")


def mount_spec(text: str) -> dict[str, Any]:
    """Docker's ``--mount`` (comma-separated KEY=VALUE, CSV-quoted): type
    (volume, the default), source/src, target/destination/dst, readonly/ro,
    volume-nocopy, tmpfs-size, tmpfs-mode, and orch's ``force``."""
    import csv

    try:
        items = next(csv.reader([text]), [])
    except csv.Error as err:
        raise CLIError(f"invalid --mount {text!r}: {err}") from None
    out = _mount("volume", "", "")
    for item in items:
        key, sep, value = item.partition("=")
        name = _MOUNT_KEYS.get(key.strip().lower())
        if name is None:
            raise CLIError(f"invalid --mount {text!r}: unknown key {key!r}; known: "
                           + ", ".join(dict.fromkeys(_MOUNT_KEYS)))
        if name in _MOUNT_FLAGS:
            out[name] = _flag(value, key, text)
        elif not sep:
            raise CLIError(f"invalid --mount {text!r}: {key} needs a value ({key}=...)")
        elif name == "type":
            if value not in MOUNT_TYPES:
                raise CLIError(f"invalid --mount {text!r}: type {value!r}; expected volume, bind or tmpfs")
            out["type"] = value
        elif name == "tmpfs_size":
            out["tmpfs_size"] = _size(value, f"--mount {text!r}: tmpfs-size")
        elif name == "tmpfs_mode":
            out["tmpfs_mode"] = _mode(value, f"--mount {text!r}: tmpfs-mode")
        else:
            out[name] = value
    if not out["target"]:
        raise CLIError(f"invalid --mount {text!r}: it needs a target (target=/PATH)")
    return out


def tmpfs_spec(text: str) -> dict[str, Any]:
    """Docker's ``--tmpfs DST[:OPTS]``, OPTS of size=SIZE, mode=OCTAL, ro, rw."""
    target, _, opts = text.partition(":")
    out = _mount("tmpfs", "", target)
    for word in (w for w in opts.split(",") if w):
        key, sep, value = word.partition("=")
        if key == "size" and sep:
            out["tmpfs_size"] = _size(value, f"--tmpfs {text!r}: size")
        elif key == "mode" and sep:
            out["tmpfs_mode"] = _mode(value, f"--tmpfs {text!r}: mode")
        elif word in ("ro", "rw"):
            out["readonly"] = word == "ro"
        else:
            raise CLIError(f"invalid --tmpfs {text!r}: unknown option {word!r}; expected size=SIZE, "
                           "mode=OCTAL, ro or rw")
    if not target.startswith("/"):
        raise CLIError(f"invalid --tmpfs {text!r}: the target must be an absolute path in the container")
    return out


def _size(value: str, where: str) -> int:
    from model.units import QuantityError, parse_memory

    try:
        return parse_memory(value)
    except QuantityError:
        raise CLIError(f"invalid {where} {value!r}: expected a size such as 64m or 1Gi") from None


def _mode(value: str, where: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise CLIError(f"invalid {where} {value!r}: expected an octal mode such as 1777")
    return mode


def encode_mount(m: dict[str, Any]) -> bytes:
    """``MountConfig`` (proto3: defaults left out)."""
    out = [field_string(num, m[key]) for num, key in ((1, "type"), (2, "source"), (3, "target")) if m[key]]
    out += [field_int(num, int(m[key])) for num, key in ((4, "readonly"), (5, "tmpfs_size"),
                                                          (6, "tmpfs_mode"), (7, "volume_nocopy"),
                                                          (8, "force"))]
    return b"".join(out)


# Protobuf wire format (proto/agent.proto), written and read by hand with
# ``pbwire``; see the module docstring. Field numbers are those of the .proto.

def encode_config(c: dict[str, Any], volatile: bool = False) -> bytes:
    """``ContainerConfig`` in wire format: proto3 defaults are left out, as
    protobuf does; fields with presence (messages, ``optional``) are written
    whenever they are set."""
    out = [field_string(1, c["image"]) if c["image"] else b"",
           field_string(2, c["name"]) if c["name"] else b""]
    for num, key in ((3, "command"), (4, "entrypoint")):
        if c[key] is not None:
            out.append(field_bytes(num, b"".join(field_string(1, s) for s in c[key])))
    out += [field_string(5, e) for e in c["env"]]
    for num, key in ((6, "workdir"), (7, "user")):
        if c[key] is not None:
            out.append(field_string(num, c[key]))
    if c["hostname"]:
        out.append(field_string(8, c["hostname"]))
    for p in c["ports"]:
        out.append(field_bytes(9, field_int(1, p["host_port"]) + field_int(2, p["container_port"])
                          + (field_string(3, p["protocol"]) if p["protocol"] else b"")
                          + (field_string(4, p["host_ip"]) if p["host_ip"] else b"")))
    out += [field_int(10, c["memory_bytes"]), field_double(11, c["cpus"]) if c["cpus"] else b"",
            field_int(12, c["pids_limit"])]
    for num, key in ((13, "restart_policy"), (14, "network")):
        if c[key]:
            out.append(field_string(num, c[key]))
    out.append(field_int(15, int(c["auto_remove"])))
    if c["stop_timeout"] is not None:
        out.append(field_double(16, c["stop_timeout"]))
    if c["stop_signal"]:
        out.append(field_string(17, c["stop_signal"]))
    for k, v in c["labels"].items():
        out.append(field_bytes(18, field_string(1, k) + field_string(2, v)))
    out += [field_int(19, int(c["read_only"])), field_int(20, int(volatile)),
            field_int(21, c["storage_size_bytes"])]
    out += [field_string(23, a) for a in c.get("network_aliases", ())]
    if c.get("healthcheck") is not None:
        out.append(field_bytes(24, encode_healthcheck(c["healthcheck"])))
    out += [field_bytes(25, encode_mount(m)) for m in c.get("mounts", ())]
    out += [field_string(26, x) for x in c.get("cap_add", ())]
    out += [field_string(27, x) for x in c.get("cap_drop", ())]
    for u in c.get("ulimits", ()):
        out.append(field_bytes(28, (field_string(1, u["name"]) if u["name"] else b"")
                               + field_int(2, u["soft"]) + field_int(3, u["hard"])))
    out += [field_string(29, x) for x in c.get("dns", ())]
    out += [field_string(30, x) for x in c.get("extra_hosts", ())]
    out.append(field_int(31, int(c.get("init", False))))
    out += [field_string(32, x) for x in c.get("devices", ())]
    out.append(field_int(33, int(c.get("privileged", False))))
    out += [field_int(34, int(c.get("tty", False))), field_int(35, int(c.get("stdin_open", False)))]
    for k, v in c.get("sysctls", {}).items():
        out.append(field_bytes(36, field_string(1, k) + field_string(2, v)))
    out.append(field_int(37, c.get("shm_size", 0)))
    return b"".join(out)


def encode_healthcheck(hc: dict[str, Any]) -> bytes:
    """``HealthCheck``: ``optional`` fields are written when given, 0 included."""
    out = [field_string(1, t) for t in hc.get("test", ())]
    for num, key in ((2, "interval"), (3, "timeout"), (5, "start_period"), (6, "start_interval")):
        if hc.get(key) is not None:
            out.append(field_double(num, hc[key]))
    if hc.get("retries") is not None:
        out.append(varint(4 << 3) + varint(hc["retries"]))
    return b"".join(out)


def encode_run_request(c: dict[str, Any], attach: bool) -> bytes:
    return field_bytes(1, encode_config(c)) + field_int(2, int(attach))


EVENTS = {1: "started", 2: "log", 3: "exited"}


def decode_event(data: bytes) -> tuple[str, dict[str, Any]]:
    """A ``RunEvent``: its kind and the fields ``stream_run`` uses."""
    fields = decode_fields(data)
    num = max((n for n in fields if n in EVENTS), default=0)  # oneof: the last one wins
    if not num:
        return "", {}
    body = fields[num][-1]
    if not isinstance(body, bytes):
        raise WireError(f"event field {num} is not a message")
    body = decode_fields(body)
    if num == 2:
        return "log", {"stream": text_value(body, 2), "line": text_value(body, 3)}
    return EVENTS[num], {"id": text_value(body, 1), "exit_code": int32(last_value(body, 10, int, 0)),
                         "oom_killed": bool(last_value(body, 12, int, 0))}


# ---- the call --------------------------------------------------------------

def run(values: dict[str, Any], agent: Agent) -> int:
    """``orch run``: create and start; attached, stream the output and return
    the container's exit code."""
    if values["rm"] and values["restart"] not in ("no", ""):
        raise CLIError("--rm and --restart cannot be used together")
    if (values.get("interactive") or values.get("tty")) and not values["detach"]:
        # -i/-t stream both ways: grpcio, off the quick path (see orch.cli.interactive).
        from orch.cli import ensure_site

        ensure_site()
        import importlib

        return int(importlib.import_module("orch.cli.interactive").run(values, agent))
    request = encode_run_request(config_fields(values), attach=not values["detach"])
    try:
        for kind, event in _events(agent, request):
            if kind == "started" and values["detach"]:
                print(event["id"])
                return 0
            if kind == "log":
                out = sys.stdout if event["stream"] == "stdout" else sys.stderr
                out.write(event["line"] + "\n")
            elif kind == "exited":
                sys.stdout.flush()
                if event["oom_killed"]:
                    print("orch: container was OOM-killed (memory limit reached)", file=sys.stderr)
                return int(event["exit_code"])
    except CLIError as err:
        # Docker's convention: 127 when the command cannot be found, 126 when
        # it cannot be run, 125 for any other failure before it runs.
        if "setup failed at step 'exec'" in err.message:
            raise CLIError(err.message, 127 if "No such file" in err.message else 126)
        raise CLIError(err.message, 125)
    raise CLIError("lost the connection to the agent before the container exited", 125)


def _events(agent: Agent, request: bytes) -> Any:
    for data in agent.stream_bytes("Run", request):
        try:
            yield decode_event(data)
        except WireError as err:
            raise CLIError(f"bad reply from the agent: {err}")
