"""codec: encode matches model.to_dict's JSON, with or without the spec memo, and round-trips."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from store_helpers import make_node, make_service, make_task

from controlplane.store import Kind
from controlplane.store.codec import decode, encode, kind_of
from model import objects as model
from model.objects import Network, NetworkAttachment, PortConfig, TaskNetwork, TaskState, VirtualIP

names = st.text(min_size=1, max_size=12)


@given(replicas=st.integers(0, 50), env=st.lists(names, max_size=3), labels=st.dictionaries(names, names),
       state=st.sampled_from(list(TaskState)), node=st.text(max_size=8), cpus=st.floats(0, 64))
def test_encode_matches_to_dict_and_round_trips(replicas: int, env: list[str], labels: dict[str, str],
                                                state: TaskState, node: str, cpus: float) -> None:
    svc = make_service(replicas=replicas)
    svc.spec.env, svc.spec.labels = env, labels
    svc.spec.ports = [PortConfig(published=8080, target=80)]
    svc.spec.limits.cpus = cpus
    svc.spec.networks = [NetworkAttachment("back", ["db"])]
    svc.vips = [VirtualIP("net1", "10.96.0.2/24")]
    task = make_task(svc, 1, node)
    task.status.state = state
    task.networks = [TaskNetwork("net1", "back", "10.96.0.3/24", ["db"])]
    network = Network(id="net1", name="back", subnet="10.96.0.0/24", vni=4096, labels=labels)
    specs: dict[int, str] = {}
    for obj in (svc, task, make_node(), network):
        expected = model.to_dict(obj)
        assert json.loads(encode(obj)) == expected
        assert json.loads(encode(obj, specs)) == expected
        back = decode(kind_of(obj), "k", encode(obj, specs), 7)
        assert back == type(obj)(**{**obj.__dict__, "version": 7})
    assert len(specs) == 1


def test_kind_of() -> None:
    svc = make_service()
    network = Network(id="n", name="n", subnet="10.96.0.0/24", vni=4096)
    assert [kind_of(o) for o in (svc, make_task(svc, 1), make_node(), network)] == [
        Kind.SERVICE, Kind.TASK, Kind.NODE, Kind.NETWORK]


def test_objects_stored_before_networks_existed_decode_with_none() -> None:
    svc = make_service()
    old = {k: v for k, v in model.to_dict(svc).items() if k != "vips"}
    del old["spec"]["networks"], old["spec"]["endpoint_mode"]
    for port in old["spec"]["ports"]:
        port.pop("mode")
    back = decode(Kind.SERVICE, "k", json.dumps(old).encode(), 3)
    assert back == type(svc)(**{**svc.__dict__, "version": 3})
    node = model.to_dict(make_node())
    del node["index"]
    assert decode(Kind.NODE, "k", json.dumps(node).encode(), 3).index == 0  # type: ignore[union-attr]


def test_the_tasks_of_a_service_share_one_decoded_spec() -> None:
    """Decoded tasks of one spec share one ServiceSpec object (memory, and
    the reconciler's spec comparison); any other shape of task JSON still
    decodes, whole."""
    svc = make_service(replicas=3)
    svc.spec.env = ['X=,"spec":{"a":1}}', '"spec":{']  # what the decoder looks for, inside a string
    tasks = [decode(Kind.TASK, "k", encode(make_task(svc, i)), 5) for i in (1, 2, 3)]
    assert all(t.spec == svc.spec for t in tasks)  # type: ignore[union-attr]
    assert tasks[0].spec is tasks[1].spec is tasks[2].spec  # type: ignore[union-attr]
    task = make_task(svc, 4)
    plain = model.to_dict(task)
    first = json.dumps({"spec": plain["spec"], **{k: v for k, v in plain.items() if k != "spec"}})
    for raw in (json.dumps(plain), first, json.dumps(plain, indent=1)):
        assert decode(Kind.TASK, "k", raw.encode(), 6) == type(task)(**{**task.__dict__, "version": 6})
    other = make_service(replicas=3)
    other.spec.image = "busybox:2"
    assert decode(Kind.TASK, "k", encode(make_task(other, 1)), 5).spec.image == "busybox:2"  # type: ignore[union-attr]


def test_same_spec_remembers_pairs_of_objects() -> None:
    from controlplane.controllers.rollout import same_spec

    a, b = make_service().spec, make_service().spec
    assert same_spec(a, b) and same_spec(a, b)
    c = make_service().spec
    c.image = "other"
    assert not same_spec(a, c) and not same_spec(a, c)
    c.replicas = 9  # scaling is not the task's spec
    assert not same_spec(a, c)
