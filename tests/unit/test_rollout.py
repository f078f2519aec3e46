"""``orch deploy``'s view of a rollout, folded from events (pure)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orch.cli.rollout import Rollout


def svc(name: str = "web", replicas: int = 2, mode: str = "replicated") -> str:
    return json.dumps({"id": f"id-{name}", "spec": {"name": name, "replicas": replicas, "mode": mode}})


def task(tid: str, state: int, desired: int = 5, service: str = "web", message: str = "",
         error: str = "", slot: int = 1) -> str:
    data: dict[str, Any] = {"id": tid, "service_name": service, "slot": slot, "desired_state": desired,
                            "status": {"state": state, "message": message, "error": error}}
    return json.dumps(data)


def test_converges_when_every_wanted_replica_runs() -> None:
    r = Rollout(["web"])
    r.apply("services", "put", "id-web", svc(), 1)
    r.apply("tasks", "put", "t1", task("t1", 5), 2)
    r.apply("tasks", "put", "t2", task("t2", 4, slot=2), 3)
    v = r.verdict()
    assert (v.text, v.done) == ("web: 1/2 running", False)
    r.apply("tasks", "put", "t2", task("t2", 5, slot=2), 4)
    assert r.verdict().done
    # An old replica still shutting down does not count, and does not hold it up.
    r.apply("tasks", "put", "t0", task("t0", 5, desired=8), 5)
    assert r.verdict().done


def test_an_older_event_never_undoes_a_newer_one() -> None:
    r = Rollout(["web"])
    r.apply("services", "put", "id-web", svc(replicas=1), 1)
    assert r.apply("tasks", "put", "t1", task("t1", 5), 9)
    assert not r.apply("tasks", "put", "t1", task("t1", 4), 7)  # from the queue, after the snapshot
    assert r.verdict().done


def test_unplaceable_failed_and_removed() -> None:
    r = Rollout(["web", "db"])
    r.apply("services", "put", "id-web", svc(), 1)
    r.apply("services", "put", "id-db", svc("db", 1), 1)
    r.apply("tasks", "put", "t1", task("t1", 1, message="no suitable node (3 nodes: 3 lack memory)"), 2)
    r.synced = True
    r.apply("tasks", "put", "t2", task("t2", 7, service="db", error="exit code 3"), 3)
    v = r.verdict()
    assert v.unplaceable == ["web slot 1: no suitable node (3 nodes: 3 lack memory)"]
    assert v.failed == ["db task t2: exit code 3"]
    r.apply("services", "delete", "id-db", svc("db", 1), 4)
    assert r.verdict().missing == ["db"]


def test_a_failure_from_before_the_deploy_is_history() -> None:
    """A replica already failed when the watch began (say, stopped by `orch
    down`, its replacement not made yet) does not fail this deploy; the
    deploy waits for its replacement instead."""
    r = Rollout(["web"])
    r.apply("services", "put", "id-web", svc(replicas=1), 1)
    r.apply("tasks", "put", "t1", task("t1", 7, error="exit code 137"), 2)
    r.synced = True
    v = r.verdict()
    assert (v.failed, v.done, v.text) == ([], False, "web: 0/1 running")
    r.apply("tasks", "put", "t1", task("t1", 7, desired=8, error="exit code 137"), 3)
    r.apply("tasks", "put", "t2", task("t2", 5), 4)
    assert r.verdict().done
    r.apply("tasks", "put", "t2", task("t2", 7, error="exit code 1"), 5)
    assert r.verdict().failed == ["web task t2: exit code 1"]


def test_global_services_count_what_is_wanted() -> None:
    r = Rollout(["agent"])
    r.apply("services", "put", "id-agent", svc("agent", 0, "global"), 1)
    r.apply("tasks", "put", "t1", task("t1", 5, service="agent"), 2)
    r.apply("tasks", "put", "t2", task("t2", 2, service="agent"), 2)
    assert r.verdict().text == "agent: 1/2 running"
    r.apply("tasks", "delete", "t2", "", 3)
    assert r.verdict().done


def _reference(names: list[str], services: dict[str, Any], tasks: dict[str, Any]) -> tuple[Any, ...]:
    """The verdict computed from scratch over the latest tasks."""
    lines, done, unplaceable, failed = [], True, set(), []
    for name in names:
        spec = services[name]["spec"]
        mine = [t for t in tasks.values() if t["service_name"] == name]
        wanted = [t for t in mine if t["desired_state"] == 5]
        running = [t for t in wanted if t["status"]["state"] == 5]
        target = spec["replicas"] if spec["mode"] == "replicated" else len(wanted)
        lines.append(f"{name}: {len(running)}/{target} running")
        done = done and len(running) >= target and len(running) == len(wanted)
        for t in wanted:
            if t["status"]["state"] == 1 and t["status"]["message"].startswith("no suitable node"):
                unplaceable.add(f"{name} slot {t['slot']}: {t['status']['message']}")
            if t["status"]["state"] in (7, 9):
                failed.append(f"{name} task {t['id'][:12]}: {t['status']['error'] or 'failed'}")
    return ", ".join(lines), done, sorted(unplaceable), sorted(failed)


@given(st.lists(st.tuples(st.sampled_from(["t1", "t2", "t3", "t4"]), st.sampled_from(["web", "db"]),
                          st.sampled_from([1, 2, 4, 5, 7, 9]), st.sampled_from([5, 8]),
                          st.booleans()), max_size=30))
def test_counts_kept_per_event_equal_counting_from_scratch(
        events: list[tuple[str, str, int, int, bool]]) -> None:
    r = Rollout(["web", "db"])
    r.apply("services", "put", "id-web", svc("web", 2), 1)
    r.apply("services", "put", "id-db", svc("db", 1), 1)
    r.synced = True  # every failure below happens while the deploy watches
    latest: dict[str, Any] = {}
    for version, (tid, service, state, desired, delete) in enumerate(events, start=2):
        if delete:
            r.apply("tasks", "delete", tid, "", version)
            latest.pop(tid, None)
            continue
        data = task(tid, state, desired, service, message="no suitable node" if state == 1 else "")
        r.apply("tasks", "put", tid, data, version)
        latest[tid] = json.loads(data)
    v = r.verdict()
    assert (v.text, v.done, v.unplaceable, sorted(v.failed)) == _reference(r.names, r.services, latest)
