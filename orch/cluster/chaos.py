"""``orch chaos``: break a local cluster on purpose, then heal it.

The verbs, each on the cluster of a run dir (``orch.cluster.record``):
- ``kill``: SIGKILL a node's agent (its containers run on under its
  supervisor), or with ``supervisor`` its supervisor too (its containers die
  with it);
- ``partition``: cut a node's link (``HostNet.cut``); with a duration a
  detached timer process restores it at the deadline;
- ``slow``: delay (and drop) what crosses a node's link, both ways: tc netem,
  or where the kernel has no netem a netfilter queue (``orch.cluster.netdelay``);
- ``kill_leader``: SIGKILL the control-plane replica that leads;
- ``kill_etcd``: ``orch.cluster.etcdchaos``;
- ``heal``: undo all of it: links restored, delays removed, killed agents,
  control planes and etcd members started again.

What chaos did is recorded in ``<run-dir>/chaos.json``, written under a lock
on the run dir (the timers take it too), so that ``heal`` and ``orch down``
(``heal_all``) know what to undo, and the next chaos command restores a
partition whose deadline passed even if its timer died.

Invariants:
- every verb is undone by ``heal``, and by ``orch down`` (``heal_all``, first);
- a process chaos starts (a timer, a delayer) names the run dir in its argv
  (``--run-dir``), so down's sweep finds it even without the record;
- a pid is signalled only while its argv still names what it was (pids are
  reused), through a pidfd opened before that check.

Errors a user can cause are ChaosError (or the record's UpError): one line.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orch.cluster import sweep
from orch.cluster.hostnet import HostNet, HostNetError, NetemUnsupported, netns_path
from orch.cluster.record import ClusterRecord, NodeRecord, UpError, agent_pid, cp_state, load_record, read_pid

__all__ = ["ChaosError", "heal", "heal_all", "kill", "kill_etcd", "kill_leader", "parse_duration",
           "parse_percent", "partition", "slow"]

CHAOS_FILE = "chaos.json"
MAX_OUTAGE = 24 * 3600.0  # partition --for
MAX_DELAY = 60.0  # slow --delay
LEADER_WAIT = 15.0  # kill-leader: how long a leader may take to be known (one was just killed?)
HELPER = "orch.cluster.chaos"  # the module the timers and delayers run
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ChaosError(Exception):
    """What chaos cannot do, for the user: one line."""


# ---- values --------------------------------------------------------------------------

def parse_duration(text: str, flag: str, maximum: float, zero: bool = False) -> float:
    """``30s``, ``500ms``, ``2m``, ``1m30s`` or plain seconds (``1.5``): seconds,
    above 0 (or 0 with ``zero``) and at most ``maximum``."""
    value = -1.0
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        value = float(text)
    elif _DURATION.fullmatch(text):
        value = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text))
    if not (value > 0 or (zero and value == 0)) or value > maximum:
        raise ChaosError(f"{flag} {text!r}: expected a duration such as 30s, 500ms or 2m "
                         f"({'0' if zero else 'above 0'} to {maximum:g} s)")
    return value


def parse_percent(text: str, flag: str) -> float:
    """``5%`` or ``5``: a percentage from 0 to 100."""
    number = text[:-1] if text.endswith("%") else text
    if not re.fullmatch(r"\d+(?:\.\d+)?", number) or float(number) > 100:
        raise ChaosError(f"{flag} {text!r}: expected a percentage from 0 to 100, such as 5%")
    return float(number)


def _show(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


# ---- the record --------------------------------------------------------------------------

@dataclass
class Partition:
    until: float = 0.0  # time.time() at which it heals by itself; 0: at heal only
    timer_pid: int = 0


@dataclass
class Slow:
    delay_ms: float
    loss: float
    how: str  # "netem" or "queue" (a delayer process, pid)
    pid: int = 0


@dataclass
class ChaosRecord:
    killed: dict[str, str] = field(default_factory=dict)  # node -> "agent" | "supervisor"
    controlplanes: list[int] = field(default_factory=list)  # replica indices killed
    partitions: dict[str, Partition] = field(default_factory=dict)
    slow: dict[str, Slow] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.killed or self.controlplanes or self.partitions or self.slow)

    @classmethod
    def load(cls, run_dir: str) -> ChaosRecord:
        try:
            data = json.loads((Path(run_dir) / CHAOS_FILE).read_text())
            return cls(killed=dict(data.get("killed", {})), controlplanes=list(data.get("controlplanes", [])),
                       partitions={k: Partition(**v) for k, v in data.get("partitions", {}).items()},
                       slow={k: Slow(**v) for k, v in data.get("slow", {}).items()})
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, AttributeError) as err:
            raise ChaosError(f"{run_dir}/{CHAOS_FILE}: unreadable: {err}")

    def save(self, run_dir: str) -> None:
        path = Path(run_dir) / CHAOS_FILE
        if self.empty():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        tmp = path.with_name(CHAOS_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)


@contextlib.contextmanager
def _recorded(run_dir: str, wait: float | None = None) -> Iterator[ChaosRecord]:
    """The record, under an exclusive lock on the run dir (at most ``wait``
    seconds, then without it); saved however the block ends, so it says what
    was done also when a step failed."""
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        record = ChaosRecord.load(run_dir)
        try:
            yield record
        finally:
            record.save(run_dir)
    finally:
        os.close(fd)


# ---- the cluster's parts -----------------------------------------------------------------

def _node(rec: ClusterRecord, name: str) -> tuple[int, NodeRecord]:
    for index, node in enumerate(rec.nodes, 1):
        if node.name == name:
            return index, node
    raise ChaosError(f"no node {name!r} in the cluster of {rec.run_dir} "
                     f"(its nodes: {', '.join(n.name for n in rec.nodes)})")


def _linked(node: NodeRecord, verb: str) -> None:
    """A node with a link of its own: in a network namespace that exists."""
    if not node.netns:
        raise ChaosError(f"{verb} {node.name}: the node runs on this host itself, without a link of its "
                         "own (a cluster of one node): start the cluster with orch up --nodes 2 or more")
    if not os.path.exists(netns_path(node.netns)):
        raise ChaosError(f"{verb} {node.name}: its network namespace {node.netns} is gone; "
                         "bring the cluster down and up again")


def _net(rec: ClusterRecord) -> HostNet:
    return HostNet(rec.bridge or "orchup0", rec.subnet or "10.89.0.0/24", rec.prefix)


def _supervisor_pid(node: NodeRecord) -> int:
    return sweep.verified(read_pid(Path(node.run_dir) / "supervisor.pid"), node.run_dir)


def _sigkill(pid: int, path: str, timeout: float = 5.0) -> bool:
    """SIGKILL ``pid`` if its argv still names ``path``; wait until it has
    exited. Through a pidfd opened before the check: a reused pid is not hit."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not sweep.verified(pid, path):
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        select.select([fd], [], [], timeout)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _helper(pid: int, run_dir: str) -> bool:
    """``pid`` is a timer or delayer of this cluster's chaos (by its argv)."""
    return bool(sweep.verified(pid, run_dir)) and HELPER in sweep.argv(pid)


def _stop_helper(pid: int, run_dir: str, grace: float = 2.0) -> None:
    """SIGTERM a timer or delayer (a delayer lets what it holds go first),
    SIGKILL it after ``grace``."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if not _helper(pid, run_dir):
            return
        signal.pidfd_send_signal(fd, signal.SIGTERM)
        if not select.select([fd], [], [], grace)[0]:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            select.select([fd], [], [], 2.0)
    except OSError:
        pass
    finally:
        os.close(fd)


def _spawn_helper(rec: ClusterRecord, args: list[str], netns: str = "",
                  stdout: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """``python -m orch.cluster.chaos ARGS --run-dir RUN``, detached; its
    errors go to ``<state>/chaos.log``."""
    cmd = [sys.executable, "-m", HELPER, *args, "--run-dir", rec.run_dir]
    if netns:
        cmd = ["nsenter", f"--net={netns_path(netns)}", "--", *cmd]
    with open(Path(rec.state_dir) / "chaos.log", "ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=log,
                                start_new_session=True, close_fds=True)


def _expire(rec: ClusterRecord, record: ChaosRecord) -> None:
    """Restore the partitions whose deadline has passed (their timer died?)."""
    now = time.time()
    for name, part in list(record.partitions.items()):
        if part.until and part.until <= now:
            _end_partition(rec, record, name)


def _end_partition(rec: ClusterRecord, record: ChaosRecord, name: str) -> bool:
    """Stop its timer and restore the link; whether there was one recorded."""
    part = record.partitions.pop(name, None)
    if part is None:
        return False
    if part.timer_pid and part.timer_pid != os.getpid():
        _stop_helper(part.timer_pid, rec.run_dir)
    index = next((i for i, n in enumerate(rec.nodes, 1) if n.name == name), 0)
    if index:
        with contextlib.suppress(HostNetError):  # its link may be gone with the cluster
            _net(rec).restore(index)
    return True


def _end_slow(rec: ClusterRecord, record: ChaosRecord, name: str) -> bool:
    """Remove the delay (netem, or the queue rules and their delayer)."""
    from orch.cluster import netdelay

    entry = record.slow.pop(name, None)
    if entry is None:
        return False
    index = next((i for i, n in enumerate(rec.nodes, 1) if n.name == name), 0)
    node = rec.nodes[index - 1] if index else None
    if entry.how == "netem" and index:
        with contextlib.suppress(HostNetError):
            _net(rec).clear_netem(index)
    if node is not None and node.netns and os.path.exists(netns_path(node.netns)):
        netdelay.remove_rules(netns_path(node.netns))  # first: no packet is queued to nobody
    if entry.pid:
        _stop_helper(entry.pid, rec.run_dir)
    return True


# ---- the verbs ------------------------------------------------------------------------

def kill(run_dir: str, name: str, supervisor: bool = False) -> list[str]:
    """SIGKILL node ``name``'s agent; with ``supervisor`` its supervisor too."""
    rec = load_record(run_dir)
    _, node = _node(rec, name)
    with _recorded(run_dir) as record:
        _expire(rec, record)
        agent = sweep.verified(agent_pid(node), node.run_dir)
        sup = _supervisor_pid(node) if supervisor else 0
        if not agent and not sup:
            what = "neither its agent nor its supervisor runs" if supervisor else "its agent is not running"
            raise ChaosError(f"kill {name}: {what} (orch chaos heal {name} starts it again)")
        lines = []
        # The agent first: alive, it would start a new supervisor at once.
        if agent and _sigkill(agent, node.run_dir):
            lines.append(f"{name}: agent killed (pid {agent})")
            record.killed.setdefault(name, "agent")
        if sup and _sigkill(sup, node.run_dir):
            lines.append(f"{name}: supervisor killed (pid {sup}), and with it the node's containers")
            record.killed[name] = "supervisor"
        elif supervisor:
            lines.append(f"{name}: its supervisor was not running")
        return lines


def partition(run_dir: str, name: str, duration: float | None = None) -> str:
    """Cut node ``name``'s link; with ``duration`` it comes back by itself then."""
    rec = load_record(run_dir)
    index, node = _node(rec, name)
    _linked(node, "partition")
    with _recorded(run_dir) as record:
        _expire(rec, record)
        old = record.partitions.pop(name, None)
        if old is not None and old.timer_pid:
            _stop_helper(old.timer_pid, run_dir)
        try:
            _net(rec).cut(index)
        except HostNetError as err:
            raise ChaosError(f"partition {name}: {err}")
        part = record.partitions[name] = Partition()
        if duration is None:
            return f"{name}: link cut (until orch chaos heal {name})"
        part.until = time.time() + duration
        part.timer_pid = _spawn_helper(rec, ["heal-at", "--node", name, "--at", repr(part.until)]).pid
        at = time.strftime("%H:%M:%S", time.localtime(part.until))
        return f"{name}: link cut for {_show(duration)} (back by itself at {at}, or at orch chaos heal)"


def slow(run_dir: str, name: str, delay: float, loss: float = 0.0) -> str:
    """Delay what crosses node ``name``'s link by ``delay`` seconds each way,
    and drop ``loss`` percent of it."""
    from orch.cluster import netdelay

    rec = load_record(run_dir)
    index, node = _node(rec, name)
    _linked(node, "slow")
    if not delay and not loss:
        raise ChaosError(f"slow {name}: --delay 0 and no --loss would change nothing")
    with _recorded(run_dir) as record:
        _expire(rec, record)
        _end_slow(rec, record, name)
        entry = Slow(delay_ms=delay * 1000, loss=loss, how="netem")
        try:
            _net(rec).set_netem(index, entry.delay_ms, loss)
        except NetemUnsupported:
            entry.how, entry.pid = "queue", _start_delayer(rec, node, entry)
            record.slow[name] = entry
            try:
                netdelay.add_rules(netns_path(node.netns))
            except netdelay.DelayError as err:
                _end_slow(rec, record, name)
                raise ChaosError(f"slow {name}: {err}")
        except HostNetError as err:
            raise ChaosError(f"slow {name}: {err}")
        record.slow[name] = entry
        how = "tc netem" if entry.how == "netem" else "a netfilter queue: this kernel has no netem"
        lost = f", {loss:g}% lost" if loss else ""
        return f"{name}: link slowed, {_show(delay)} each way{lost} ({how})"


def _start_delayer(rec: ClusterRecord, node: NodeRecord, entry: Slow) -> int:
    """The delayer in the node's namespace, once it has bound its queue."""
    proc = _spawn_helper(rec, ["delay", "--node", node.name, "--delay-ms", f"{entry.delay_ms:g}",
                               "--loss", f"{entry.loss:g}"], netns=node.netns, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        ready = select.select([proc.stdout], [], [], 15)[0] and proc.stdout.readline() == b"ready\n"
    finally:
        proc.stdout.close()
    if not ready:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        raise ChaosError(f"slow {node.name}: the packet delayer did not start; see "
                         f"{rec.state_dir}/chaos.log")
    return proc.pid


def kill_leader(run_dir: str) -> str:
    """SIGKILL the control-plane replica that leads (as the replicas say)."""
    rec = load_record(run_dir)
    if not rec.sockets:
        raise ChaosError(f"kill-leader: the record of {run_dir} names no control-plane socket to ask "
                         "which replica leads")
    deadline = time.monotonic() + LEADER_WAIT
    while True:
        index = _leader(rec)
        pid = sweep.verified(rec.controlplane_pids[index], cp_state(rec)) if index is not None else 0
        if pid or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # none elected yet, or a follower still names a dead one
    if index is None or not pid:
        raise ChaosError("kill-leader: no running control-plane replica is the leader "
                         f"(none elected within {LEADER_WAIT:g} s; orch chaos heal restarts killed ones)")
    with _recorded(run_dir) as record:
        _expire(rec, record)
        if not _sigkill(pid, cp_state(rec)):
            raise ChaosError(f"kill-leader: controlplane cp{index + 1} (pid {pid}) exited meanwhile")
        if index not in record.controlplanes:
            record.controlplanes.append(index)
    others = len(rec.controlplane_pids) - len(record.controlplanes)
    after = "another replica takes over" if others > 0 else "no replica is left to take over"
    return f"controlplane cp{index + 1} (the leader, pid {pid}) killed: {after}"


def _leader(rec: ClusterRecord) -> int | None:
    """The index of the replica the first answering replica names leader."""
    from orch.cli.client import Cluster
    from proto import cluster_pb2 as cpb

    for sock in rec.sockets:
        api = Cluster(f"unix://{sock}")
        try:
            info = api.call("Info", cpb.InfoRequest(), timeout=2)
        except Exception:  # that replica is down: ask the next
            continue
        finally:
            api.close()
        found = re.fullmatch(r"cp(\d+)", info.leader_id)
        if found and 1 <= int(found.group(1)) <= len(rec.controlplane_pids):
            return int(found.group(1)) - 1
    return None


def kill_etcd(run_dir: str, member: int) -> str:
    load_record(run_dir)
    try:
        from orch.cluster import etcdchaos
    except ImportError:
        raise ChaosError("kill-etcd: this orch has no etcd chaos (orch.cluster.etcdchaos)")
    return str(etcdchaos.kill_etcd(run_dir, member))


def _heal_etcd(run_dir: str) -> list[str]:
    try:
        from orch.cluster import etcdchaos
    except ImportError:
        return []
    return [str(line) for line in etcdchaos.heal_etcd(run_dir)]


def heal(run_dir: str, name: str | None = None) -> tuple[list[str], list[str]]:
    """Undo what chaos did to node ``name``, or to every node and the control
    plane and etcd: (what was done, what failed), one line each."""
    from orch.cluster.local import restart_agent, restart_controlplane

    rec = load_record(run_dir)
    scope = [_node(rec, name)] if name else list(enumerate(rec.nodes, 1))
    net = _net(rec)
    done: list[str] = []
    failed: list[str] = []
    with _recorded(run_dir) as record:
        # The network first: a restarted agent must reach the control plane.
        for index, node in scope:
            cut = _end_partition(rec, record, node.name)
            if node.netns and os.path.exists(netns_path(node.netns)) and not net.link_up(index):
                try:
                    net.restore(index)  # cut by hand, or restoring it above failed
                    cut = True
                except HostNetError as err:
                    failed.append(f"{node.name}: restoring its link: {err}")
            if cut:
                done.append(f"{node.name}: link restored")
            if _end_slow(rec, record, node.name):
                done.append(f"{node.name}: link no longer slowed")
        if name is None:
            try:
                done += _heal_etcd(run_dir)
            except Exception as err:
                failed.append(f"etcd: {err}")
            for i, pid in enumerate(rec.controlplane_pids):
                if sweep.verified(pid, cp_state(rec)):
                    continue
                try:
                    restart_controlplane(run_dir, i)
                    done.append(f"controlplane cp{i + 1} restarted")
                except UpError as err:
                    failed.append(f"controlplane cp{i + 1}: {err}")
            record.controlplanes.clear()
        for _, node in scope:
            killed = record.killed.pop(node.name, "")
            if sweep.verified(agent_pid(node), node.run_dir):
                continue
            try:
                restart_agent(run_dir, node.name)
                also = " (and a new supervisor)" if killed == "supervisor" else ""
                done.append(f"{node.name}: agent restarted{also}")
            except UpError as err:
                record.killed[node.name] = killed or "agent"
                failed.append(f"{node.name}: {err}")
    return done, failed


def heal_all(run_dir: str) -> None:
    """For ``orch down``, first: end every timer and delayer, restore every
    link and remove every delay; drop the record. Never raises: down's sweep
    ends whatever this could not (their argv names the run dir)."""
    path = Path(run_dir) / CHAOS_FILE
    if not path.exists():
        return
    try:
        rec = load_record(run_dir)
        with _recorded(run_dir, wait=10.0) as record:
            for name in list(record.partitions):
                _end_partition(rec, record, name)
            for name in list(record.slow):
                _end_slow(rec, record, name)
            record.killed.clear()
            record.controlplanes.clear()
    except Exception:
        pass
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


# ---- the helper processes ------------------------------------------------------------

def _heal_at(run_dir: str, name: str, until: float) -> int:
    """A partition's timer: at ``until``, restore the link, if the partition
    is still the one this timer was started for."""
    while (left := until - time.time()) > 0:
        time.sleep(min(left, 1.0))
    try:
        rec = load_record(run_dir)
        with _recorded(run_dir) as record:
            part = record.partitions.get(name)
            if part is not None and part.timer_pid == os.getpid():
                _end_partition(rec, record, name)
    except (UpError, FileNotFoundError):
        pass  # the cluster is gone meanwhile
    return 0


def _delay(delay_ms: float, loss: float) -> int:
    """The delayer (run in the node's namespace): says "ready" once bound."""
    from orch.cluster.netdelay import Delayer, DelayError

    try:
        delayer = Delayer(delay_ms / 1000, loss)
    except (DelayError, OSError) as err:
        print(f"orch chaos delayer: {err}", file=sys.stderr)
        return 1
    os.write(1, b"ready\n")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    delayer.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {HELPER}")
    sub = parser.add_subparsers(dest="helper", required=True)
    p = sub.add_parser("heal-at")
    p.add_argument("--node", required=True)
    p.add_argument("--at", type=float, required=True)
    p.add_argument("--run-dir", required=True)
    p = sub.add_parser("delay")
    p.add_argument("--node", required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--run-dir", required=True)
    args = parser.parse_args(argv)
    if args.helper == "heal-at":
        return _heal_at(args.run_dir, args.node, args.at)
    return _delay(args.delay_ms, args.loss)


if __name__ == "__main__":
    sys.exit(main())
