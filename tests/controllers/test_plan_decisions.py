"""controlplane.plan: what a deploy would do, and what a node's loss would
need, decided by the leader's own reconciler and scheduler on copies."""

from __future__ import annotations

import dataclasses

from controlplane.plan import FieldChange, plan
from model.objects import Node, NodeResources, Resources, Service, ServiceSpec, Task, TaskState, TaskStatus

NOW = 1_000.0
GIB = 1 << 30


def node(name: str, memory: int = 4 * GIB) -> Node:
    return Node(id=f"id-{name}", name=name, state="ready", last_heartbeat=NOW,
                resources=NodeResources(cpus=4, memory_bytes=memory))


def running(service: Service, slot: int, node_id: str) -> Task:
    return Task(id=f"{service.spec.name}-{slot}", service_id=service.id, service_name=service.spec.name,
                slot=slot, spec=service.spec, node_id=node_id, created_at=NOW - 10,
                status=TaskStatus(state=TaskState.RUNNING, timestamp=NOW - 5))


def spec(name: str, replicas: int = 2, memory: int = 0, image: str = "busybox") -> ServiceSpec:
    return ServiceSpec(name=name, image=image, replicas=replicas,
                       reservations=Resources(memory_bytes=memory))


NODES = {n.id: n for n in (node("n1"), node("n2"), node("n3", memory=GIB))}
API = Service(id="s-api", spec=spec("api", memory=GIB))
TASKS = [running(API, 1, "id-n1"), running(API, 2, "id-n2")]
SERVICES = {API.id: API}


def test_the_same_file_changes_nothing_and_a_pinned_tag_is_the_same_image() -> None:
    digest = "sha256:" + "a" * 64
    pinned = dataclasses.replace(API, spec=dataclasses.replace(API.spec, image=f"r:5000/api:1@{digest}"))
    [p] = plan({pinned.id: pinned}, [dataclasses.replace(t, spec=pinned.spec) for t in TASKS], NODES,
               [dataclasses.replace(API.spec, image="r:5000/api:1")], NOW)
    assert (p.name, p.action, p.changes, p.tasks) == ("api", "unchanged", [], [])


def test_an_update_replaces_every_task_and_says_what_changed() -> None:
    changed = dataclasses.replace(API.spec, image="busybox:1.36", replicas=3)
    [api] = plan(SERVICES, TASKS, NODES, [changed], NOW)
    assert api.action == "updated"
    assert api.changes == [FieldChange("image", "busybox", "busybox:1.36"), FieldChange("replicas", "2", "3")]
    assert sorted(t.slot for t in api.tasks) == [1, 2, 3]  # every task replaced; the old ones' room is free
    assert all(t.node_id for t in api.tasks)


def test_a_new_service_gets_placements_and_the_reasons_of_what_does_not_fit() -> None:
    # 3 GiB each: n1 and n2 have 4 GiB less api's 1 GiB; n3 has 1 GiB.
    api, web = plan(SERVICES, TASKS, NODES, [API.spec, spec("web", replicas=3, memory=3 * GIB)], NOW)
    assert (api.action, api.tasks) == ("unchanged", [])
    assert web.action == "created" and web.changes == []
    assert sorted(t.node_id for t in web.tasks if t.node_id) == ["id-n1", "id-n2"]
    [unplaced] = web.unplaced
    assert unplaced.slot in (1, 2, 3) and "memory" in unplaced.reason


def test_scaling_alone_places_only_the_new_replica() -> None:
    [api] = plan(SERVICES, TASKS, NODES, [dataclasses.replace(API.spec, replicas=3)], NOW)
    assert api.changes == [FieldChange("replicas", "2", "3")]
    assert [t.slot for t in api.tasks] == [3] and api.tasks[0].node_id == "id-n3"


def test_without_a_node_its_tasks_go_elsewhere_or_say_why() -> None:
    [api] = plan(SERVICES, TASKS, NODES, None, NOW, without=["id-n2"])
    assert api.action == "affected"
    assert [(t.slot, t.node_id) for t in api.tasks] in ([(2, "id-n1")], [(2, "id-n3")])
    big = Service(id="s-big", spec=spec("big", replicas=2, memory=3 * GIB))
    tasks = [running(big, 1, "id-n1"), running(big, 2, "id-n2")]
    [verdict] = plan({big.id: big}, tasks, NODES, None, NOW, without=["id-n2"])
    assert [t.slot for t in verdict.unplaced] == [2] and "memory" in verdict.unplaced[0].reason
    # Nothing of a service on other nodes is touched.
    assert plan(SERVICES, TASKS, NODES, None, NOW, without=["id-n3"]) == []


def test_the_inputs_are_left_as_they_were() -> None:
    before = (dict(SERVICES), list(TASKS), dict(NODES))
    plan(SERVICES, TASKS, NODES, [spec("web")], NOW, without=["id-n1"])
    assert (dict(SERVICES), list(TASKS), dict(NODES)) == before
