"""The supervisor's own safety, in-process with the recording FakeRuntime and
an injected clock: any stop timeout leaves a wait select() takes and a stop
that still ends; a new supervisor finishes a dead one's containers (killed,
torn down, restart policies as Docker's daemon applies them at start)."""

from __future__ import annotations

import hashlib
import math
import os
import selectors
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodeagent.restart import RestartPolicy
from nodeagent.runtime import FakeRuntime
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec
from nodeagent.supervisor import records, recovery
from nodeagent.supervisor.loop import MAX_TIMER_DELAY, MAX_WAIT, Conn, clamp_delay
from nodeagent.supervisor.records import EXITED, RESTARTING, RUNNING, Record
from nodeagent.supervisor.server import Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_supervisor(root: Path, runtime: FakeRuntime, clock: Clock) -> Supervisor:
    sup = Supervisor(str(root / "state"), str(root / "run"), runtime, clock=clock)
    sup.containers_dir.mkdir(parents=True, exist_ok=True)
    sup.run_dir.mkdir(parents=True, exist_ok=True)
    return sup


def running(sup: Supervisor, name: str, restart: str = "no", auto_remove: bool = False,
            stop_timeout: float = 10.0) -> Record:
    """A container started through the supervisor (the fake launches at once)."""
    cid = hashlib.sha256(name.encode()).hexdigest()
    spec = ContainerSpec(id=cid, name=name, hostname=name,
                         bundle_dir=str(sup.containers_dir / cid),
                         rootfs=RootfsSpec(lower_dirs=["/nonexistent"]),
                         process=ProcessSpec(args=["sleep", "300"]), stop_timeout=stop_timeout)
    rec = sup._create({"spec": spec.to_dict(), "image": "busybox", "restart_policy": restart,
                       "auto_remove": auto_remove})
    sup._start(rec, lambda err: None)
    sup._on_launch(rec.id)
    assert rec.state == RUNNING
    return rec


@pytest.fixture
def conn() -> Iterator[Conn]:
    a, b = socket.socketpair()
    yield Conn(a)
    a.close()
    b.close()


def close(sup: Supervisor) -> None:
    for live in sup.live.values():
        for fd in live.pipes:
            os.close(fd)
    sup.sel.close()


# ---- values: a stop timeout of any size -------------------------------------

@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
                 st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)))
def test_any_delay_clamps_to_a_finite_timer(delay: Any) -> None:
    value = clamp_delay(delay)
    assert math.isfinite(value) and 0.0 <= value <= MAX_TIMER_DELAY


HUGE = [float("inf"), 99999999999999 * 3600.0, 1e308, 10 ** 400, float("nan"), -1.0, "x", None]


@pytest.mark.parametrize("timeout", HUGE, ids=repr)
def test_a_stop_with_any_timeout_leaves_a_wait_that_select_takes(
        tmp_path: Path, conn: Conn, timeout: Any) -> None:
    rt, clock = FakeRuntime(), Clock()
    sup = new_supervisor(tmp_path, rt, clock)
    try:
        rec = running(sup, "huge", stop_timeout=float("inf"))
        rt.ignore_stop_signal.add(rec.id)  # as a PID 1 without a SIGTERM handler does
        args = {"id": rec.id} if timeout is None else {"id": rec.id, "timeout": timeout}
        sup._dispatch(conn, {"rid": 1, "op": "stop", "args": args})
        wait = sup._next_timeout()
        assert 0.0 <= wait <= MAX_WAIT
        # What crashed the loop: select() with the wait (epoll refuses a
        # timeout past an int of milliseconds). A ready fd makes it return.
        r, w = os.pipe()
        try:
            os.write(w, b"x")
            with selectors.DefaultSelector() as sel:
                sel.register(r, selectors.EVENT_READ)
                assert sel.select(wait)
        finally:
            os.close(r)
            os.close(w)
        # A later `stop -t 1` still ends it, one second on.
        sup._dispatch(conn, {"rid": 2, "op": "stop", "args": {"id": rec.id, "timeout": 1}})
        clock.now += 1.0
        sup._run_timers()
        status = rt.procs[rec.id].status
        assert status is not None and status.signal == signal.SIGKILL
    finally:
        close(sup)


def test_a_failing_timer_does_not_stop_the_others(tmp_path: Path) -> None:
    clock = Clock()
    sup = new_supervisor(tmp_path, FakeRuntime(), clock)
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    sup._after(0, boom)
    sup._after(0, lambda: ran.append("after"))
    sup._run_timers()
    assert ran == ["after"]
    close(sup)


# ---- a dead supervisor's containers ------------------------------------------

def test_a_new_supervisor_finishes_a_dead_ones_containers(tmp_path: Path) -> None:
    first = new_supervisor(tmp_path, FakeRuntime(), Clock())
    made = {
        "plain": running(first, "plain"),
        "always": running(first, "always", "always"),
        "always-stopped": running(first, "always-stopped", "always"),
        "unless": running(first, "unless", "unless-stopped"),
        "unless-stopped": running(first, "unless-stopped", "unless-stopped"),
        "on-failure": running(first, "on-failure", "on-failure:2"),
        "exhausted": running(first, "exhausted", "on-failure:1"),
        "rm": running(first, "rm", auto_remove=True),
    }
    # Stopped by the user just before the supervisor died (mid grace period).
    for name in ("always-stopped", "unless-stopped"):
        made[name].stopped_by_user = True
        records.save(made[name])
    made["exhausted"].restart_count = 1
    records.save(made["exhausted"])
    (first.run_dir / "supervisor.pid").write_text("4242")
    close(first)  # the first supervisor "dies": its records say running

    rt = FakeRuntime()
    second = new_supervisor(tmp_path, rt, Clock())
    second._load(recovery.previous_pid(str(second.run_dir / "supervisor.pid")))
    try:
        error = "killed: its supervisor (pid 4242) died"
        states = {r.name: r.state for r in second.records.values()}
        assert states == {"plain": EXITED, "exhausted": EXITED, "unless-stopped": EXITED,
                          "always": RESTARTING, "always-stopped": RESTARTING,
                          "unless": RESTARTING, "on-failure": RESTARTING}
        for rec in second.records.values():
            assert (rec.exit_code, rec.signal, rec.error, rec.pid) == (137, 9, error, 0)
        # What is on disk says the same: nothing stays "running".
        on_disk = {r.name: r.state for r in records.load_all(second.containers_dir)}
        assert on_disk == states
        # Each was torn down in the runtime; the auto-remove one is gone.
        removed = {cid for verb, cid in rt.calls if verb == "remove"}
        assert removed == {rec.id for rec in made.values()}
        assert made["rm"].id not in second.records
        killed = {r["name"]: r for r in second.killed}
        assert set(killed) == {"plain", "exhausted", "unless-stopped", "rm"}
        assert all(r["state"] == "exited" and r["error"] == error for r in killed.values())
        # The restarts are due at once (as Docker's daemon restarts at start).
        assert second._next_timeout() == 0.0
        second._run_timers()
        for cid in list(second.launching):
            second._on_launch(cid)
        again = {r.name for r in second.records.values() if r.state == RUNNING}
        assert again == {"always", "always-stopped", "unless", "on-failure"}
        assert all(second.records[made[n].id].error == "" for n in again)
    finally:
        close(second)


def test_a_record_left_restarting_is_restarted(tmp_path: Path) -> None:
    first = new_supervisor(tmp_path, FakeRuntime(), Clock())
    rec = running(first, "between", "always")
    rec.state, rec.exit_code = RESTARTING, 3  # between two runs when it died
    records.save(rec)
    close(first)
    second = new_supervisor(tmp_path, FakeRuntime(), Clock())
    second._load(0)
    try:
        assert second.records[rec.id].state == RESTARTING
        assert second.records[rec.id].exit_code == 3  # its own exit, not a kill
        assert second.killed == []
        second._run_timers()
        second._on_launch(rec.id)
        assert second.records[rec.id].state == RUNNING
    finally:
        close(second)


def test_the_killed_error_names_the_dead_supervisor(tmp_path: Path) -> None:
    pid_file = tmp_path / "supervisor.pid"
    assert recovery.previous_pid(str(pid_file)) == 0
    pid_file.write_text("123\n")
    assert recovery.previous_pid(str(pid_file)) == 123
    pid_file.write_text(str(os.getpid()))  # a stale file naming us: unknown
    assert recovery.previous_pid(str(pid_file)) == 0
    pid_file.write_text("junk")
    assert recovery.previous_pid(str(pid_file)) == 0
    assert recovery.killed_error(123) == "killed: its supervisor (pid 123) died"
    assert recovery.killed_error(0) == "killed: its supervisor died"


@pytest.mark.parametrize(("policy", "code", "count", "stopped", "expected"), [
    (RestartPolicy("no"), 137, 0, False, False),
    (RestartPolicy("always"), 137, 0, False, True),
    (RestartPolicy("always"), 137, 9, True, True),  # Docker: even if the user stopped it
    (RestartPolicy("unless-stopped"), 137, 0, False, True),
    (RestartPolicy("unless-stopped"), 137, 0, True, False),
    (RestartPolicy("on-failure"), 137, 50, False, True),
    (RestartPolicy("on-failure", 2), 137, 1, False, True),
    (RestartPolicy("on-failure", 2), 137, 2, False, False),
    (RestartPolicy("on-failure"), 0, 0, False, False),
    (RestartPolicy("on-failure"), 137, 0, True, False),
])
def test_restart_at_start(policy: RestartPolicy, code: int, count: int, stopped: bool,
                          expected: bool) -> None:
    assert recovery.restart_at_start(policy, code, count, stopped) is expected
