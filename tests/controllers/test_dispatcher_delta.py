"""What the dispatcher sends a node when one of its tasks changes (pure)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

from controllers_helpers import service, task
from hypothesis import given
from hypothesis import strategies as st

from controlplane.dispatcher import Dispatcher, Outbox, _Session, _split, merge_deltas
from model.objects import TaskState, TaskStatus
from model.wire import task_from_pb
from proto import cluster_pb2 as cpb

SVC = service("s1")


def _session() -> _Session:
    loop = asyncio.new_event_loop()  # its outbox is not read here
    loop.close()
    return _Session("n1", Outbox(loop))


def test_a_new_assignment_is_sent_then_its_status_reports_are_not_echoed() -> None:
    session = _session()
    t = task("t1", SVC, node_id="n1", state=TaskState.ASSIGNED)
    msg = Dispatcher._delta(session, t, False, None)
    assert msg is not None and [a.id for a in msg.tasks] == ["t1"]
    assert task_from_pb(msg.tasks[0]) == t
    running = dataclasses.replace(t, status=TaskStatus(state=TaskState.RUNNING))
    assert Dispatcher._delta(session, running, False, t) is None  # the node's own report


def test_a_desired_state_change_is_sent_and_a_move_or_end_removes() -> None:
    session = _session()
    t = task("t1", SVC, node_id="n1", state=TaskState.RUNNING)
    Dispatcher._delta(session, t, False, None)
    stop = dataclasses.replace(t, desired_state=TaskState.SHUTDOWN)
    msg = Dispatcher._delta(session, stop, False, t)
    assert msg is not None and msg.tasks[0].id == "t1"
    done = dataclasses.replace(stop, status=TaskStatus(state=TaskState.SHUTDOWN))
    msg = Dispatcher._delta(session, done, False, stop)
    assert msg is not None and list(msg.removed) == ["t1"]
    assert Dispatcher._delta(session, done, True, done) is None  # already removed


def test_a_task_the_node_was_never_sent_is_sent_on_any_change() -> None:
    session = _session()  # e.g. it became assigned while the session was being set up
    t = task("t1", SVC, node_id="n1", state=TaskState.RUNNING)
    msg = Dispatcher._delta(session, t, False, dataclasses.replace(t, status=TaskStatus(TaskState.STARTING)))
    assert msg is not None
    assert task_from_pb(msg.tasks[0]) == t


def _apply(node: dict[str, str], delta: cpb.Assignments) -> None:
    """What a node does with a delta (nodeagent.cluster.reconcile.Reconciler.assign)."""
    node.update({t.id: t.node_id for t in delta.tasks})
    for tid in delta.removed:
        node.pop(tid, None)


_DELTA = st.lists(st.tuples(st.sampled_from(["t1", "t2", "t3"]), st.booleans(),
                            st.sampled_from(["a", "b"])), max_size=4)


@given(start=st.dictionaries(st.sampled_from(["t1", "t2", "t3"]), st.just("x")),
       deltas=st.lists(_DELTA, min_size=1, max_size=6))
def test_merged_deltas_leave_a_node_where_applying_them_one_by_one_would(
        start: dict[str, str], deltas: list[list[tuple[str, bool, str]]]) -> None:
    msgs = [cpb.Assignments(tasks=[cpb.Task(id=t, node_id=j) for t, add, j in d if add],
                            removed=[t for t, add, _ in d if not add]) for d in deltas]
    one_by_one, merged = dict(start), dict(start)
    for msg in msgs:
        _apply(one_by_one, msg)
    _apply(merged, merge_deltas(msgs))
    assert merged == one_by_one


def test_queued_deltas_go_as_one_message_and_the_end_is_kept() -> None:
    msgs = [cpb.DispatcherMessage(assignments=cpb.Assignments(tasks=[cpb.Task(id=f"t{i}")]))
            for i in range(3)]
    net = cpb.DispatcherMessage(network_state=cpb.NetworkState(removed_networks=["n1"]))

    async def main() -> None:
        out = Outbox(asyncio.get_running_loop())
        assert await out.take(timeout=0.01) == []
        # Put from another thread while the loop waits: one wakeup, all of them taken.
        threading.Thread(target=lambda: [out.put(m) for m in msgs]).start()
        batch = await out.take(timeout=30)
        while len(batch) < 3:
            batch += await out.take(timeout=30)
        networks, deltas, ended = _split(batch)
        assert [d.tasks[0].id for d in deltas] == ["t0", "t1", "t2"] and not ended and not networks
        for m in (msgs[0], net, None, msgs[1]):
            out.put(m)
        networks, deltas, ended = _split(await out.take(timeout=30, limit=10))
        assert len(deltas) == 1 and ended  # what follows the end is not sent
        assert [list(n.removed_networks) for n in networks] == [["n1"]]
        assert len(await out.take(timeout=0.01, limit=2)) == 0

    asyncio.run(main())


_KEYS = st.sampled_from(["a", "b", "c"])
_NET_DELTA = st.lists(st.tuples(st.sampled_from(["networks", "peers", "services", "endpoints"]), _KEYS,
                                st.booleans(), st.integers(0, 3)), max_size=5)


def _net_msg(delta: list[tuple[str, str, bool, int]]) -> cpb.NetworkState:
    msg = cpb.NetworkState()
    for table, key, put, value in delta:
        if not put:
            getattr(msg, f"removed_{table}").append(f"{key}/n" if table == "endpoints" else key)
        elif table == "networks":
            msg.networks.append(cpb.OverlayNetwork(id=key, vni=value))
        elif table == "peers":
            msg.peers.append(cpb.Peer(node_id=key, index=value))
        elif table == "services":
            msg.services.append(cpb.ServiceRoute(id=key, name=str(value)))
        else:
            msg.endpoints.append(cpb.Endpoint(task_id=key, network_id="n", slot=value))
    return msg


@given(deltas=st.lists(_NET_DELTA, min_size=1, max_size=6))
def test_merged_network_states_leave_a_node_where_applying_them_one_by_one_would(
        deltas: list[list[tuple[str, str, bool, int]]]) -> None:
    from controlplane.netview import merge_network_states
    from nodeagent.cluster.netstate import state_update_from_pb
    from nodeagent.network.state import NetworkState

    msgs = [_net_msg(d) for d in deltas]
    one_by_one, merged = NetworkState(), NetworkState()
    for msg in msgs:
        one_by_one.apply(state_update_from_pb(msg))
    merged.apply(state_update_from_pb(merge_network_states(msgs)))
    assert merged == one_by_one
