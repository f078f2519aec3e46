"""etcd faults on a local cluster, for ``orch chaos``: kill a member, start
the dead ones again.

The members are those ``orch up`` recorded (``orch.cluster.record``). A
member starts again as ``up`` started it (``orch.cluster.local.etcd_process``):
on its recorded ports, so the control planes, which know every member's
address, use it again, and its peers know it; with its data, so it rejoins
and catches up from the leader (a lone member just serves again).

Invariants:
- a pid is signalled through a pidfd opened before its argv is checked to
  still name the member's data dir (pids are reused), and ``kill_etcd``
  returns once the member has exited;
- ``heal_etcd`` starts every dead member at once: a member of several serves
  only once a majority runs, so starting them one by one could wait forever;
- the timer ``restart_etcd_after`` leaves is a process whose argv names the
  run dir (``--run-dir``): ``orch down`` finds and ends it.

Errors a user can cause are ``UpError``: one line.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import time

from orch.cluster import sweep
from orch.cluster.record import ClusterRecord, EtcdMember, UpError, etcd_members, kept_membership, load_record

__all__ = ["heal_etcd", "kill_etcd", "restart_etcd_after"]

KILL_WAIT = 5.0  # seconds for a SIGKILLed member to be gone
START_TIMEOUT = 20.0  # seconds for restarted members to serve (several: a majority back, caught up)


def kill_etcd(run_dir: str, member: int) -> str:
    """SIGKILL etcd member ``member`` (1-based, in the record's order) and
    wait until it is gone; what was done, in a line. UpError for a member
    the cluster does not have or one that is not running."""
    rec = load_record(run_dir)
    target = _member(rec, member)
    try:
        fd = os.pidfd_open(target.pid) if target.pid > 0 else -1
    except OSError:
        fd = -1
    try:
        if fd < 0 or not sweep.verified(target.pid, target.data_dir):
            raise UpError(f"etcd member {member} ({target.name}) is not running; heal starts it again")
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        if not select.select([fd], [], [], KILL_WAIT)[0]:
            raise UpError(f"etcd member {member} ({target.name}, pid {target.pid}) did not exit "
                          f"within {KILL_WAIT:.0f} s of SIGKILL")
    finally:
        if fd >= 0:
            os.close(fd)
    return f"etcd member {member} ({target.name}, pid {target.pid}, {target.client}) killed"


def heal_etcd(run_dir: str) -> list[str]:
    """Start again every etcd member that is not running; once they serve,
    what was done, a line each ([] if every member runs). UpError if one
    cannot start (its port taken, or it does not serve in time)."""
    rec = load_record(run_dir)
    members = etcd_members(rec)
    dead = [i for i, m in enumerate(members, 1) if not sweep.verified(m.pid, m.data_dir)]
    return _restart(rec, dead)


def restart_etcd_after(run_dir: str, member: int, seconds: float) -> None:
    """Leave a timer that starts etcd member ``member`` again (if it is not
    running then) ``seconds`` from now; return at once. Its output goes to
    the member's log."""
    rec = load_record(run_dir)
    target = _member(rec, member)
    if not 0 <= seconds <= 24 * 3600:
        raise UpError(f"restart etcd member {member} after {seconds} s: 0 to 86400 s")
    with open(f"{target.data_dir}.log", "ab") as log:
        subprocess.Popen([sys.executable, "-m", "orch.cluster.etcdchaos", "restart", "--run-dir",
                          os.path.abspath(run_dir), "--member", str(member), "--after", str(seconds)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                         close_fds=True)


# ---- the parts -----------------------------------------------------------------------

def _member(rec: ClusterRecord, member: int) -> EtcdMember:
    members = etcd_members(rec)
    if not members:
        raise UpError(f"the cluster of {rec.run_dir} records no etcd")
    if not 1 <= member <= len(members):
        has = "only member 1" if len(members) == 1 else f"members 1 to {len(members)}"
        raise UpError(f"etcd member {member}: the cluster of {rec.run_dir} has {has}")
    return members[member - 1]


def _restart(rec: ClusterRecord, indexes: list[int]) -> list[str]:
    """Start the members at ``indexes`` (1-based) again, all at once, and
    wait until each serves; one line for each."""
    from controlplane.etcd import EtcdStartError
    from orch.cluster.local import etcd_process, note_etcd

    members = etcd_members(rec)
    if not indexes:
        return []
    for i in indexes:
        _check_free(i, members[i - 1])
    kept = kept_membership(rec.state_dir)
    token = kept.token if kept else ""
    started = [(i, etcd_process(rec, members[i - 1], token)) for i in indexes]
    done: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    try:
        for _, etcd in started:
            etcd.spawn()
            note_etcd(rec, etcd)
        rec.save()
        for i, etcd in started:
            try:
                etcd.wait_ready(max(1.0, deadline - time.monotonic()), leader=False)
            except EtcdStartError as err:
                raise UpError(f"etcd member {i} ({etcd.name}) did not start again: {err}")
            done.append(f"etcd member {i} ({etcd.name}) started again (pid {etcd.pid}, {etcd.endpoint})")
    finally:
        for _, etcd in started:
            note_etcd(rec, etcd)
        rec.save()
    return done


def _check_free(index: int, member: EtcdMember) -> None:
    """Its ports must be free: its peers and the control planes know it there."""
    for url in (member.client, member.peer):
        if not url:
            continue
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as err:
                raise UpError(f"etcd member {index} ({member.name}) cannot start again: its port {port} "
                              f"is in use ({err.strerror})")


def main(argv: list[str] | None = None) -> int:
    """The timer ``restart_etcd_after`` leaves: wait, then start the member
    again if it is still down (and the cluster still up)."""
    parser = argparse.ArgumentParser(prog="python -m orch.cluster.etcdchaos")
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("restart")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--member", type=int, required=True)
    p.add_argument("--after", type=float, required=True)
    args = parser.parse_args(argv)
    time.sleep(args.after)
    try:
        rec = load_record(args.run_dir)
        target = _member(rec, args.member)
        if sweep.verified(target.pid, target.data_dir):
            return 0  # healed meanwhile
        for line in _restart(rec, [args.member]):
            print(line, flush=True)
    except UpError as err:
        print(f"orch.cluster.etcdchaos: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
