"""``orch deploy``'s view of a rollout, folded from events (pure)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from orch.cli.pbwire import ServiceSummary, TaskSummary
from orch.cli.rollout import STOPPING_STATES, Rollout


def svc(name: str = "web", replicas: int = 2, mode: str = "replicated", version: int = 1,
        rollout: str = "", started: bytes = b"", updated: int = 0, total: int = 0, failed: int = 0,
        message: str = "", parallelism: int = 1) -> ServiceSummary:
    return ServiceSummary(id=f"id-{name}", name=name, replicas=replicas, mode=mode, version=version,
                          revision=1, rollout=rollout, started=started, updated=updated, total=total,
                          failed=failed, message=message, parallelism=parallelism)


def task(tid: str, state: str, desired: str = "running", service: str = "web", message: str = "",
         error: str = "", slot: int = 1, version: int = 0, health: str = "") -> TaskSummary:
    return TaskSummary(id=tid, service_name=service, slot=slot, desired_state=desired, state=state,
                       message=message, error=error, version=version, health=health)


def test_a_replica_with_a_health_check_counts_once_healthy() -> None:
    r = Rollout(["web"])
    r.apply("put", svc(replicas=1))
    r.apply("put", task("t1", "running", version=2, health="starting"))
    verdict = r.verdict()
    assert not verdict.done and verdict.text == "web: 0/1 running (1 health starting)"
    r.apply("put", task("t1", "running", version=3, health="healthy"))
    assert r.verdict().done and r.verdict().text == "web: 1/1 running"


def test_converges_when_every_wanted_replica_runs() -> None:
    r = Rollout(["web"])
    r.apply("put", svc())
    r.apply("put", task("t1", "running", version=2))
    r.apply("put", task("t2", "starting", slot=2, version=3))
    v = r.verdict()
    assert (v.text, v.done) == ("web: 1/2 running", False)
    r.apply("put", task("t2", "running", slot=2, version=4))
    assert r.verdict().done
    # An old replica still shutting down does not count, and does not hold it up.
    r.apply("put", task("t0", "running", desired="shutdown", version=5))
    assert r.verdict().done


def test_an_older_event_never_undoes_a_newer_one() -> None:
    r = Rollout(["web"])
    r.apply("put", svc(replicas=1))
    assert r.apply("put", task("t1", "running", version=9))
    assert not r.apply("put", task("t1", "starting", version=7))  # from the queue, after the snapshot
    assert r.verdict().done


def test_events_about_nothing_a_rollout_follows_change_nothing() -> None:
    r = Rollout(["web"])
    r.apply("put", svc(replicas=0))
    assert not r.apply("put", None)  # a node's event
    assert r.verdict().done


def test_unplaceable_failed_and_removed() -> None:
    r = Rollout(["web", "db"])
    r.apply("put", svc())
    r.apply("put", svc("db", 1))
    r.apply("put", task("t1", "pending", message="no suitable node (3 nodes: 3 lack memory)", version=2))
    r.synced = True
    r.apply("put", task("t2", "failed", service="db", error="exit code 3", version=3))
    v = r.verdict()
    assert v.unplaceable == ["web slot 1: no suitable node (3 nodes: 3 lack memory)"]
    assert v.failed == ["db task t2: exit code 3"]
    r.apply("delete", svc("db", 1, version=4))
    assert r.verdict().missing == ["db"]


def test_a_failure_from_before_the_deploy_is_history() -> None:
    """A replica already failed when the watch began (say, stopped by `orch
    down`, its replacement not made yet) does not fail this deploy; the
    deploy waits for its replacement instead."""
    r = Rollout(["web"])
    r.apply("put", svc(replicas=1))
    r.apply("put", task("t1", "failed", error="exit code 137", version=2))
    r.synced = True
    v = r.verdict()
    assert (v.failed, v.done, v.text) == ([], False, "web: 0/1 running")
    r.apply("put", task("t1", "failed", desired="shutdown", error="exit code 137", version=3))
    r.apply("put", task("t2", "running", version=4))
    assert r.verdict().done
    r.apply("put", task("t2", "failed", error="exit code 1", version=5))
    assert r.verdict().failed == ["web task t2: exit code 1"]


def test_global_services_count_what_is_wanted() -> None:
    r = Rollout(["agent"])
    r.apply("put", svc("agent", 0, "global"))
    r.apply("put", task("t1", "running", service="agent", version=2))
    r.apply("put", task("t2", "assigned", service="agent", version=2))
    assert r.verdict().text == "agent: 1/2 running"
    r.apply("delete", task("t2", "assigned", service="agent", version=3))
    assert r.verdict().done


def _reference(names: list[str], services: dict[str, ServiceSummary],
               tasks: dict[str, TaskSummary]) -> tuple[object, ...]:
    """The verdict computed from scratch over the latest tasks."""
    lines, done, unplaceable, failed = [], True, set(), []
    for name in names:
        svc_ = services[name]
        mine = [t for t in tasks.values() if t.service_name == name]
        wanted = [t for t in mine if t.desired_state == "running"]
        running = [t for t in wanted if t.state == "running"]
        target = svc_.replicas if svc_.mode == "replicated" else len(wanted)
        lines.append(f"{name}: {len(running)}/{target} running")
        done = done and len(running) >= target and len(running) == len(wanted)
        stopping = any(t.desired_state != "running" and t.state in STOPPING_STATES for t in mine)
        for t in wanted:
            if t.state == "pending" and t.message.startswith("no suitable node") and not stopping:
                unplaceable.add(f"{name} slot {t.slot}: {t.message}")
            if t.state in ("failed", "rejected"):
                failed.append(f"{name} task {t.id[:12]}: {t.error or 'failed'}")
    return ", ".join(lines), done, sorted(unplaceable), sorted(failed)


@given(st.lists(st.tuples(st.sampled_from(["t1", "t2", "t3", "t4"]), st.sampled_from(["web", "db"]),
                          st.sampled_from(["pending", "assigned", "starting", "running", "failed",
                                           "rejected"]),
                          st.sampled_from(["running", "shutdown"]), st.booleans()), max_size=30))
def test_counts_kept_per_event_equal_counting_from_scratch(
        events: list[tuple[str, str, str, str, bool]]) -> None:
    ticks = itertools.count(0, 10)  # 10 s between reads of the clock: a stop is never recent
    r = Rollout(["web", "db"], clock=lambda: float(next(ticks)))
    r.apply("put", svc("web", 2))
    r.apply("put", svc("db", 1))
    r.synced = True  # every failure below happens while the deploy watches
    latest: dict[str, TaskSummary] = {}
    for version, (tid, service, state, desired, delete) in enumerate(events, start=2):
        data = task(tid, state, desired, service, message="no suitable node" if state == "pending" else "",
                    version=version)
        if delete:
            r.apply("delete", data)
            latest.pop(tid, None)
            continue
        r.apply("put", data)
        latest[tid] = data
    v = r.verdict()
    assert (v.text, v.done, v.unplaceable, sorted(v.failed)) == _reference(r.names, r.services, latest)


def test_a_replacement_waiting_for_the_task_it_replaces_is_not_unplaceable() -> None:
    """max_replicas_per_node 1 on one node: the new task fits only once the old one is gone."""
    now = [100.0]
    r = Rollout(["web"], clock=lambda: now[0])
    r.apply("put", svc(replicas=1))
    r.apply("put", task("old", "running", desired="shutdown", version=2))
    r.apply("put", task("new", "pending", message="no suitable node (max replicas per node on 1 node)",
                        version=3))
    assert r.verdict().unplaceable == [] and not r.verdict().done
    r.apply("put", task("old", "shutdown", desired="shutdown", version=4))
    assert r.verdict().unplaceable == []  # the leader's next pass may place it now
    now[0] += 2.5
    assert r.verdict().unplaceable == ["web slot 1: no suitable node (max replicas per node on 1 node)"]


def test_an_update_is_done_only_once_its_rollout_completed() -> None:
    written = svc(replicas=1, rollout="updating", started=b"t1", total=1, version=5)
    r = Rollout(["web"], written=[written])
    r.apply("put", task("t1", "running", version=6))
    v = r.verdict()
    assert not v.done and v.text == "web: 1/1 running; updating 0/1 (batch 1/1)"
    r.apply("put", svc(replicas=1, rollout="completed", started=b"t1", updated=1, total=1, version=7))
    assert r.verdict().done


def test_a_service_older_than_the_deploy_is_ignored() -> None:
    r = Rollout(["web"], written=[svc(replicas=1, rollout="updating", started=b"t1", total=1, version=5)])
    assert not r.apply("put", svc(replicas=1, rollout="completed", started=b"t0", version=4))
    r.apply("put", task("t1", "running", version=6))
    assert not r.verdict().done


def test_progress_shows_the_batch_and_failures() -> None:
    r = Rollout(["web"], written=[svc(replicas=10, rollout="updating", started=b"t1", total=10, updated=4,
                                      failed=1, parallelism=3, version=5)])
    assert r.verdict().text == "web: 0/10 running; updating 4/10 (batch 2/4), 1 failed"


def test_paused_and_rolled_back_are_verdicts_of_their_own() -> None:
    r = Rollout(["web"], written=[svc(rollout="updating", started=b"t1", total=2, version=5)])
    r.apply("put", task("t1", "failed", error="exit 1", version=6))  # the rollout's to handle: not "failed"
    assert r.verdict().failed == []
    r.apply("put", svc(rollout="paused", started=b"t1", total=2, message="update paused: task failed",
                       version=7))
    v = r.verdict()
    assert (v.paused, v.done) == (["web: update paused: task failed"], False)
    r.apply("put", svc(rollout="rollback_completed", started=b"t2", total=2, message="rolled back",
                       version=8))
    v = r.verdict()
    assert (v.rolled_back, v.done) == (["web: rolled back"], False)


def test_an_earlier_rollback_is_not_this_deploys() -> None:
    """Redeploying the spec a rollback returned to changes nothing: its old status is no verdict."""
    r = Rollout(["web"], written=[svc(replicas=1, rollout="rollback_completed", started=b"t0", version=5)])
    r.apply("put", task("t1", "running", version=6))
    assert r.verdict().done and not r.verdict().rolled_back


def test_a_rollback_asked_for_completing_is_success() -> None:
    r = Rollout(["web"], written=[svc(replicas=1, rollout="rollback_started", started=b"t1", total=1,
                                      version=5)], rollback=True)
    r.apply("put", task("t1", "running", version=6))
    assert not r.verdict().done
    r.apply("put", svc(replicas=1, rollout="rollback_completed", started=b"t1", updated=1, total=1,
                       version=7))
    assert r.verdict().done and not r.verdict().rolled_back


def test_a_rollback_seen_once_counts_even_when_a_rebalance_follows() -> None:
    """The leader may replace rollback_completed by a rebalance's status before the CLI sees it."""
    r = Rollout(["web"], written=[svc(replicas=1, rollout="updating", started=b"t1", total=1, version=5)])
    r.apply("put", task("t1", "running", version=6))
    r.apply("put", svc(replicas=1, rollout="rollback_started", started=b"t2", total=1, version=7,
                       message="automatic rollback: task web.1.x failed: exit code 1"))
    assert not r.verdict().rolled_back  # still rolling back
    r.apply("put", svc(replicas=1, rollout="updating", started=b"t3", total=1, version=8,
                       message="rebalancing: moving 1 task(s) to n3"))
    assert not r.verdict().rolled_back and not r.verdict().done
    r.apply("put", svc(replicas=1, rollout="completed", started=b"t3", updated=1, total=1, version=9))
    v = r.verdict()
    assert v.rolled_back == ["web: automatic rollback: task web.1.x failed: exit code 1"] and not v.done
