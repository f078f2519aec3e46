"""Node-local volumes bind a slot to the node holding its data: a
replacement (restart, update, node down) inherits the slot's data node, the
scheduler places it there or says why it waits, and a drain with
--allow-data-loss (``Node.data_released``) or a shareable volume frees it."""

from __future__ import annotations

import dataclasses

from controllers_helpers import Ids, node, nodes_of, service, services_of, task

from controlplane.controllers import diff
from controlplane.controllers.snapshot import snapshot, task_request
from model.objects import Mount, Service, TaskState
from scheduler import schedule


def _with_volume(svc: Service, shareable: bool = False) -> Service:
    mount = Mount(type="volume", target="/data", source="st_data", shareable=shareable)
    return dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, mounts=[mount]))


def test_a_replacement_inherits_the_slots_data_node() -> None:
    svc = _with_volume(service())
    dead = task("t1", svc, node_id="n2", state=TaskState.FAILED, data_node="n2")
    nodes = nodes_of(node("n1"), node("n2", state="down"))
    [new] = diff(services_of(svc), [dead], nodes, now=5.0, new_id=Ids()).create
    assert new.data_node == "n2" and new.node_id == ""
    # The scheduler keeps it for n2, and says why it waits while n2 is down.
    [decision] = schedule(snapshot(nodes.values(), []), [task_request(new, nodes)])
    assert decision.node_id is None
    assert "its node-local volumes' data is on host-n2, not on 1 node" in decision.explanation
    assert "orch node drain --allow-data-loss host-n2" in decision.explanation
    back = nodes_of(node("n1"), node("n2"))
    [decision] = schedule(snapshot(back.values(), []), [task_request(new, back)])
    assert decision.node_id == "n2"


def test_released_or_removed_data_nodes_and_shareable_volumes_bind_nothing() -> None:
    svc = _with_volume(service())
    dead = task("t1", svc, node_id="n2", state=TaskState.FAILED, data_node="n2")
    released = nodes_of(node("n1"), dataclasses.replace(node("n2", availability="drain"), data_released=True))
    [new] = diff(services_of(svc), [dead], released, now=5.0, new_id=Ids()).create
    assert new.data_node == ""
    [new] = diff(services_of(svc), [dead], nodes_of(node("n1")), now=5.0, new_id=Ids()).create
    assert new.data_node == ""  # n2 was removed from the cluster
    shared = _with_volume(service(), shareable=True)
    [new] = diff(services_of(shared), [dataclasses.replace(dead, spec=shared.spec)],
                 nodes_of(node("n1"), node("n2", state="down")), now=5.0, new_id=Ids()).create
    assert new.data_node == ""
    # A pending task bound before the release is free once its node is released.
    bound = dataclasses.replace(new, spec=svc.spec, data_node="n2")
    assert task_request(bound, released).data_node == ""


def test_without_named_volumes_nothing_is_bound() -> None:
    svc = service()
    dead = task("t1", svc, node_id="n2", state=TaskState.FAILED, data_node="n2")
    [new] = diff(services_of(svc), [dead], nodes_of(node("n1"), node("n2", state="down")),
                 now=5.0, new_id=Ids()).create
    assert new.data_node == ""
