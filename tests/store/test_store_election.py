"""Leader election against a real etcd: one winner, takeover on revoke and on a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from controlplane.store import Leadership, Store


def _campaign_in_thread(store: Store, name: str, candidate: str, ttl: int) -> tuple[threading.Thread, list]:
    won: list[Leadership | None] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: won.append(store.campaign(name, candidate, ttl, timeout=15,
                                                                       stop=stop)))
    thread.start()
    return thread, won


def _watches_started(store: Store, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once ``store`` starts a watch: a candidate that found the election held waits on one."""
    started = threading.Event()
    add_watch = store._kv.add_watch_callback

    def recorded(*args: Any, **kwargs: Any) -> Any:
        watch_id = add_watch(*args, **kwargs)
        started.set()
        return watch_id

    monkeypatch.setattr(store._kv, "add_watch_callback", recorded)
    return started


def test_one_candidate_wins_and_the_other_takes_over_on_revoke(store: Store,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    other = Store(store.endpoints)
    try:
        first = store.campaign("controllers", "cp-1", ttl=2)
        assert first is not None and store.leader("controllers") == "cp-1"
        assert other.campaign("controllers", "cp-2", ttl=2, timeout=0.5) is None  # held: times out
        waiting = _watches_started(other, monkeypatch)
        thread, won = _campaign_in_thread(other, "controllers", "cp-2", ttl=2)
        assert waiting.wait(10), "the second candidate never found the election held"
        assert not won and not first.lost()
        started = time.monotonic()
        store._kv.revoke_lease(first.lease_id)  # as etcd does when the lease expires
        thread.join(10)
        second = won[0]
        assert second is not None and time.monotonic() - started < 2
        assert store.leader("controllers") == "cp-2" and second.revision > first.revision
        assert first.wait_lost(3), "the deposed leader must notice within a keep-alive interval"
        second.resign()
        assert store.leader("controllers") is None
    finally:
        other.close()


def test_leader_keeps_leading_past_its_ttl(store: Store) -> None:
    leadership = store.campaign("controllers", "cp-1", ttl=1)
    assert leadership is not None
    assert not leadership.wait_lost(2.5)
    assert store.leader("controllers") == "cp-1"
    leadership.resign()
    assert leadership.lost()


_CRASHING_LEADER = textwrap.dedent("""
    import sys, time
    from controlplane.store import Store
    store = Store([sys.argv[1]])
    assert store.campaign("controllers", "crasher", ttl=2) is not None
    print("leading", flush=True)
    time.sleep(60)
""")


def test_takeover_after_the_leader_process_is_killed(store: Store, tmp_path: Path) -> None:
    script = tmp_path / "leader.py"
    script.write_text(_CRASHING_LEADER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), store.endpoints[0]], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while "leading" not in lines and len(lines) < 5:  # log lines may come first
            lines.append(proc.stdout.readline().strip())
        assert "leading" in lines
        assert store.leader("controllers") == "crasher"
        proc.kill()
        proc.wait()
        started = time.monotonic()
        leadership = store.campaign("controllers", "cp-2", ttl=2, timeout=10)
        waited = time.monotonic() - started
        assert leadership is not None and store.leader("controllers") == "cp-2"
        assert 0.5 < waited < 4.5, f"took over after {waited:.1f}s with a 2s TTL"
        leadership.resign()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
