"""Finding and removing what a local cluster left on this machine, by what
the kernel reports rather than by pid files alone.

A cluster's processes are those
- in one of its nodes' network namespaces (``/proc/PID/ns/net``);
- in one of its containers' cgroups (``orch/<id>`` for each container
  directory under ``<state>/nodes/<n>/containers/``, in every cgroup
  hierarchy mounted here, v1 and v2);
- whose argv names one of its directories as ``--state-dir``, ``--run-dir``
  or ``--data-dir`` (agents, supervisors, image jobs, control planes, etcd:
  found even in a namespace that was deleted under them), or its registry's
  config (``docker-registry serve <state>/registry/config.yml``);
- and the pids recorded for it, while their argv still names it (pids are
  reused).
Its mounts are those under its directories (``/proc/self/mountinfo``).

``sweep`` kills, unmounts and removes the cgroups, reading everything again
after each round until a round finds nothing or its deadline passes;
``remains`` lists, one line each, whatever still exists. ``terminate`` stops
recorded processes gracefully first (SIGTERM, then SIGKILL).

Invariants: this process and its ancestors are never signalled (``orch down
--state-dir DIR`` names the state dir in its own argv); a pid is signalled
through a pidfd opened before its identity is checked, so a pid reused
meanwhile is never hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import time
from dataclasses import dataclass, field

from orch.cluster.hostnet import netns_pids
from orch.pids import alive, wait_exit

_DIR_FLAGS = ("--state-dir", "--run-dir", "--data-dir")
_HEX_ID = re.compile(r"[0-9a-f]{12,64}")
_CGROUP_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


@dataclass
class Target:
    """What belongs to one cluster: its directories (absolute), its nodes'
    network namespaces, its container cgroups, and recorded pids with a
    path each one's argv must contain."""

    dirs: list[str]
    netns: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    pids: dict[int, str] = field(default_factory=dict)

    def add_containers(self, state_dir: str) -> None:
        self.cgroups = sorted({*self.cgroups, *container_cgroups(state_dir)})


def container_cgroups(state_dir: str) -> list[str]:
    """``orch/<id>`` of every container directory of every node (removed
    ones in ``.trash`` too), and the cgroup each record names."""
    names: set[str] = set()
    nodes = os.path.join(state_dir, "nodes")
    for node in _listdir(nodes):
        containers = os.path.join(nodes, node, "containers")
        for base in (containers, os.path.join(containers, ".trash")):
            for entry in _listdir(base):
                if _HEX_ID.fullmatch(entry):
                    names.add(f"orch/{entry}")
                    named = _record_cgroup(os.path.join(base, entry, "record.json"))
                    # Only a group of this container's own (never a parent
                    # such as "orch", which holds every container's).
                    if named.endswith(f"/{entry}") or named.endswith(f"/{entry[:16]}"):
                        names.add(named)
    return sorted(names)


def _record_cgroup(path: str) -> str:
    """The cgroup a container record names ("" if none or unreadable)."""
    try:
        with open(path, "rb") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        spec = json.loads(lines[-1])["spec"] if lines else {}
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    name = spec.get("cgroup_name", "") if isinstance(spec, dict) else ""
    return name if isinstance(name, str) and _CGROUP_NAME.fullmatch(name) and ".." not in name else ""


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# ---- what the kernel says --------------------------------------------------------

def mountinfo() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount in this mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.append((_unescape(fields[4]), fields[sep + 1]))
    return out


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def cgroup_dirs(names: list[str]) -> list[str]:
    """Every existing directory of these cgroups, in every mounted hierarchy
    (children before parents)."""
    found = []
    for mnt, fstype in mountinfo():
        if fstype not in ("cgroup", "cgroup2"):
            continue
        for name in names:
            top = os.path.join(mnt, name)
            for dirpath, _, _ in os.walk(top, topdown=False):
                found.append(dirpath)
    return list(dict.fromkeys(found))


def cgroup_pids(dirs: list[str]) -> set[int]:
    pids: set[int] = set()
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    return pids


def argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in data.split(b"\0")[:-1]]


def _inside(path: str, dirs: list[str]) -> bool:
    path = os.path.normpath(path)
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def argv_names(pid: int, path: str) -> bool:
    """Whether some argument of ``pid`` is ``path`` or a path inside it."""
    return any(_inside(a, [path]) for a in argv(pid) if a.startswith("/"))


def names_dirs(args: list[str], dirs: list[str]) -> bool:
    """Whether argv ``args`` gives one of ``dirs`` (or a path inside one) as
    a directory flag's value, or as the config ``docker-registry serve`` reads."""
    for i, arg in enumerate(args):
        value = None
        if arg in _DIR_FLAGS or (arg == "serve" and i > 0 and "registry" in args[0]):
            value = args[i + 1] if i + 1 < len(args) else None
        else:
            flag, sep, rest = arg.partition("=")
            if sep and flag in _DIR_FLAGS:
                value = rest
        if value and value.startswith("/") and _inside(value, dirs):
            return True
    return False


def _protected() -> set[int]:
    """This process and its ancestors."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError):
            break
    return pids | {1}


def processes(target: Target) -> dict[int, str]:
    """pid -> why it belongs to the cluster, for every live process that does."""
    found: dict[int, str] = {}
    for name in target.netns:
        for pid in netns_pids(name):
            found.setdefault(pid, f"in network namespace {name}")
    for pid in cgroup_pids(cgroup_dirs(target.cgroups)):
        found.setdefault(pid, "in a container cgroup of the cluster")
    for pid, path in target.pids.items():
        if argv_names(pid, path):
            found.setdefault(pid, "recorded in cluster.json")
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in found and names_dirs(argv(int(entry)), target.dirs):
            found[int(entry)] = "names the cluster's directories"
    protected = _protected()
    return {pid: why for pid, why in found.items() if pid not in protected and alive(pid)}


def mounts(target: Target) -> list[str]:
    """Mount points under the cluster's directories, deepest first."""
    points = [mnt for mnt, _ in mountinfo() if _inside(mnt, target.dirs)]
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


# ---- removing -------------------------------------------------------------------

def kill(pids: list[int], timeout: float) -> None:
    """SIGKILL each process (through a pidfd: a pid reused meanwhile is not
    hit) and wait until they have exited, at most ``timeout`` seconds."""
    fds = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            os.close(fd)
            continue
        fds.append(fd)
    deadline = time.monotonic() + timeout
    try:
        pending = list(fds)
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(pending, [], [], max(0.0, deadline - time.monotonic()))
            pending = [fd for fd in pending if fd not in ready]
    finally:
        for fd in fds:
            os.close(fd)
    for pid in pids:  # ours (e.g. an agent `orch up` started and never reaped): reap
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def unmount(points: list[str]) -> None:
    """Detach each mount (lazily: it goes once nothing uses it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    for point in points:
        libc.umount2(point.encode(), mnt_detach)


def remove_cgroups(dirs: list[str]) -> None:
    """rmdir each group (children first); one that still has processes stays."""
    for d in dirs:
        with contextlib.suppress(OSError):
            os.rmdir(d)


def sweep(target: Target, timeout: float = 10.0) -> None:
    """Kill every process of the cluster, unmount its mounts and remove its
    container cgroups, round after round until one finds nothing left or
    ``timeout`` passes (what remains is for ``remains`` to report)."""
    deadline = time.monotonic() + timeout
    while True:
        procs = processes(target)
        points = mounts(target)
        groups = cgroup_dirs(target.cgroups)
        if not procs and not points and not groups:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        kill(sorted(procs), min(left, 5.0))
        unmount(points)
        remove_cgroups(groups)
        if procs or points:
            continue
        # Only cgroups were found: a group whose rmdir failed with no
        # process in it is a child group or a kernel still releasing it.
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def remains(target: Target) -> list[str]:
    """One line for each process, mount and cgroup of the cluster that exists."""
    out = [f"process {pid} ({' '.join(argv(pid))[:100] or '?'}): {why}"
           for pid, why in sorted(processes(target).items())]
    out += [f"mount {point}" for point in mounts(target)]
    out += [f"cgroup {d}" for d in cgroup_dirs(target.cgroups)]
    return out


def verified(pid: int, path: str) -> int:
    """``pid`` if it runs and its argv still names ``path`` (a path of this
    cluster, or one inside it): pids are reused. 0 otherwise."""
    if pid <= 0 or not alive(pid) or not argv_names(pid, path):
        return 0
    return pid


def terminate(pids: dict[int, str], timeout: float) -> None:
    """SIGTERM each pid whose argv still names its path; SIGKILL those
    still running after ``timeout``."""
    fds: dict[int, int] = {}
    for pid, path in pids.items():
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if verified(pid, path):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
                fds[pid] = fd
                continue
        except OSError:  # it exited meanwhile
            pass
        os.close(fd)
    deadline = time.monotonic() + timeout
    for pid, fd in fds.items():
        if not wait_exit(pid, max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            wait_exit(pid, 1.0)
        os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it, if it is ours
