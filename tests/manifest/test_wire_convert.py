"""model.wire: the model's objects survive model -> proto -> bytes -> proto ->
model; enums go by name; the node's API token never goes; an unknown enum
value is named, not guessed; the proto and the model have the same fields."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_manifest_roundtrip import manifests

from model import wire
from model.objects import (
    ROLLOUT_STATES,
    Network,
    NetworkAttachment,
    Node,
    NodeResources,
    Placement,
    PortConfig,
    Resources,
    RestartPolicy,
    Revision,
    Service,
    ServiceSpec,
    Task,
    TaskNetwork,
    TaskState,
    TaskStatus,
    UpdateConfig,
    UpdateStatus,
    VirtualIP,
)
from proto import cluster_pb2 as cpb

INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
FLOATS = st.floats(allow_nan=False)  # NaN is never equal to itself
TEXT = st.text(max_size=12)
WORDS = st.lists(TEXT, max_size=3)
LABELS = st.dictionaries(TEXT, TEXT, max_size=3)

# Any value the model's types can hold, not only what a manifest accepts:
# the converter carries them all (checking is check_specs' job).
resources = st.builds(Resources, cpus=FLOATS, memory_bytes=INT64, pids=INT64)
any_specs = st.builds(
    ServiceSpec, name=TEXT, image=TEXT, command=st.none() | WORDS, entrypoint=st.none() | WORDS,
    env=WORDS,
    ports=st.lists(st.builds(PortConfig, published=INT64, target=INT64,
                             protocol=st.sampled_from(wire.PROTOCOLS),
                             mode=st.sampled_from(wire.PORT_MODES)), max_size=3),
    labels=LABELS, mode=st.sampled_from(wire.MODES), replicas=INT64, limits=resources,
    reservations=resources,
    placement=st.builds(Placement, constraints=WORDS, preferences=WORDS, max_replicas_per_node=INT64),
    restart_policy=st.builds(RestartPolicy, condition=st.sampled_from(wire.RESTART_CONDITIONS),
                             delay=FLOATS, max_attempts=INT64, window=FLOATS),
    binpack=st.booleans(), stop_grace_period=FLOATS, storage_size=INT64,
    networks=st.lists(st.builds(NetworkAttachment, name=TEXT, aliases=WORDS), max_size=3),
    endpoint_mode=st.sampled_from(wire.ENDPOINT_MODES))
specs = any_specs | manifests().map(lambda found: found[0])
states = st.sampled_from(list(TaskState))
statuses = st.builds(TaskStatus, state=states, message=TEXT, error=TEXT, timestamp=FLOATS,
                     container_id=TEXT, exit_code=st.integers(-(1 << 31), (1 << 31) - 1))
rollouts = st.none() | st.builds(UpdateStatus, state=st.sampled_from(ROLLOUT_STATES), started_at=FLOATS,
                                 completed_at=FLOATS, message=TEXT, total=INT64, updated=INT64, failed=WORDS)
services = st.builds(Service, id=TEXT, spec=specs, created_at=FLOATS, updated_at=FLOATS, version=INT64,
                     vips=st.lists(st.builds(VirtualIP, network_id=TEXT, address=TEXT), max_size=3),
                     revision=st.integers(1, 1 << 40), note=TEXT,
                     history=st.lists(st.builds(Revision, revision=st.integers(1, 1 << 40), spec=specs,
                                                created_at=FLOATS, note=TEXT), max_size=2),
                     update_status=rollouts)
tasks = st.builds(Task, id=TEXT, service_id=TEXT, service_name=TEXT, slot=INT64, spec=specs, node_id=TEXT,
                  desired_state=states, status=statuses, created_at=FLOATS, attempt=INT64, version=INT64,
                  networks=st.lists(st.builds(TaskNetwork, network_id=TEXT, name=TEXT, address=TEXT,
                                              aliases=WORDS), max_size=3))
nodes = st.builds(Node, id=TEXT, name=TEXT, address=TEXT, labels=LABELS,
                  resources=st.builds(NodeResources, cpus=FLOATS, memory_bytes=INT64),
                  state=st.sampled_from(wire.NODE_STATES),
                  availability=st.sampled_from(wire.NODE_AVAILABILITIES), last_heartbeat=FLOATS,
                  version=INT64, index=st.integers(0, (1 << 31) - 1), ready_since=FLOATS)
networks = st.builds(Network, id=TEXT, name=TEXT, subnet=TEXT, vni=st.integers(0, (1 << 32) - 1),
                     stack=TEXT, labels=LABELS, created_at=FLOATS, version=INT64)


def _through_bytes(message: Any) -> Any:
    return type(message).FromString(message.SerializeToString())


@settings(max_examples=200, deadline=None)
@given(specs)
def test_specs_round_trip(spec: ServiceSpec) -> None:
    assert wire.spec_from_pb(_through_bytes(wire.spec_to_pb(spec))) == spec


@settings(deadline=None)
@given(services)
def test_services_round_trip(service: Service) -> None:
    assert wire.service_from_pb(_through_bytes(wire.service_to_pb(service))) == service


@settings(deadline=None)
@given(st.lists(tasks, min_size=1, max_size=4), st.booleans())
def test_tasks_round_trip_with_or_without_the_spec_memo(batch: list[Task], share: bool) -> None:
    if share:  # the tasks of one service share its spec object, as the memo expects
        batch = [dataclasses.replace(t, spec=batch[0].spec) for t in batch]
    memo: dict[int, cpb.ServiceSpec] = {}
    for task in batch:
        assert wire.task_from_pb(_through_bytes(wire.task_to_pb(task, memo))) == task
        assert wire.task_to_pb(task, memo) == wire.task_to_pb(task)


@settings(deadline=None)
@given(nodes)
def test_nodes_round_trip(node: Node) -> None:
    assert wire.node_from_pb(_through_bytes(wire.node_to_pb(node))) == node


@settings(deadline=None)
@given(networks)
def test_networks_round_trip(network: Network) -> None:
    assert wire.network_from_pb(_through_bytes(wire.network_to_pb(network))) == network


@given(st.text(max_size=12), statuses)
def test_status_updates_round_trip(task_id: str, status: TaskStatus) -> None:
    message = _through_bytes(wire.status_update_to_pb(task_id, status))
    assert wire.status_update_from_pb(message) == (task_id, status)


@settings(deadline=None)
@given(st.sampled_from(["put", "delete"]), services | tasks | nodes | networks)
def test_events_round_trip(action: str, obj: Service | Task | Node | Network) -> None:
    assert wire.event_from_pb(_through_bytes(wire.event_to_pb(action, obj))) == (action, obj)


@pytest.mark.parametrize("action", ["synced", "keepalive"])
def test_events_without_an_object(action: str) -> None:
    assert wire.event_from_pb(_through_bytes(wire.event_to_pb(action))) == (action, None)


def test_empty_messages_are_the_models_defaults() -> None:
    """The enums' zeros are the model's defaults; the other defaults travel as unset optionals."""
    assert wire.spec_from_pb(cpb.ServiceSpec()) == ServiceSpec(name="", image="")
    assert wire.task_from_pb(cpb.Task()) == Task(id="", service_id="", service_name="", slot=0,
                                                 spec=ServiceSpec(name="", image=""))
    assert wire.node_from_pb(cpb.Node()) == Node(id="", name="")
    assert wire.service_from_pb(cpb.Service()) == Service(id="", spec=ServiceSpec(name="", image=""))
    assert wire.network_from_pb(cpb.Network()) == Network(id="", name="", subnet="", vni=0)
    assert wire.ports_from_pb([cpb.PortConfig()]) == [PortConfig(0, 0)]  # ingress, tcp


def test_states_convert_by_name() -> None:
    for state in TaskState:
        number = wire.task_state_to_pb(state)
        assert cpb.TaskState.Name(number) == f"TASK_STATE_{state.name}"
        assert wire.task_state_from_pb(number) is state
    assert sorted(cpb.TaskState.values()) == sorted(wire.task_state_to_pb(s) for s in TaskState)


@pytest.mark.parametrize(("cls", "name", "words"), [
    (ServiceSpec, "mode", wire.MODES),
    (PortConfig, "protocol", wire.PROTOCOLS),
    (PortConfig, "mode", wire.PORT_MODES),
    (ServiceSpec, "endpoint_mode", wire.ENDPOINT_MODES),
    (RestartPolicy, "condition", wire.RESTART_CONDITIONS),
    (Node, "state", wire.NODE_STATES),
    (Node, "availability", wire.NODE_AVAILABILITIES),
])
def test_every_word_of_the_model_has_its_enum_value(cls: type, name: str, words: tuple[str, ...]) -> None:
    """The model's Literal types and the converter's words agree, and each
    proto enum has exactly those values (checked by name at import)."""
    assert set(typing.get_args(typing.get_type_hints(cls)[name])) == set(words)


@pytest.mark.parametrize(("model", "message", "not_sent"), [
    (ServiceSpec, cpb.ServiceSpec, set()),
    (Service, cpb.Service, set()), (Task, cpb.Task, set()),
    (TaskStatus, cpb.TaskStatus, set()), (Node, cpb.Node, set()),
    (PortConfig, cpb.PortConfig, set()), (Resources, cpb.Resources, set()),
    (Placement, cpb.Placement, set()), (RestartPolicy, cpb.RestartPolicy, set()),
    (NodeResources, cpb.NodeResources, set()), (Network, cpb.Network, set()),
    (NetworkAttachment, cpb.NetworkAttachment, set()), (TaskNetwork, cpb.TaskNetwork, set()),
    (VirtualIP, cpb.VirtualIP, set()), (UpdateConfig, cpb.UpdateConfig, set()),
    (UpdateStatus, cpb.UpdateStatus, set()), (Revision, cpb.Revision, set()),
])
def test_the_messages_have_the_models_fields(model: type, message: Any, not_sent: set[str]) -> None:
    """A field added to the model needs its wire field (and a converter line)."""
    fields = {f.name for f in dataclasses.fields(model)}
    assert set(message.DESCRIPTOR.fields_by_name) == fields - not_sent


@pytest.mark.parametrize(("convert", "message", "field"), [
    (wire.spec_from_pb, cpb.ServiceSpec(mode=7), "mode"),  # type: ignore[arg-type]
    (wire.spec_from_pb, cpb.ServiceSpec(ports=[cpb.PortConfig(protocol=3)]),  # type: ignore[arg-type]
     "ports[0].protocol"),
    (wire.spec_from_pb, cpb.ServiceSpec(ports=[cpb.PortConfig(mode=5)]),  # type: ignore[arg-type]
     "ports[0].mode"),
    (wire.spec_from_pb, cpb.ServiceSpec(endpoint_mode=4), "endpoint_mode"),  # type: ignore[arg-type]
    (wire.spec_from_pb, cpb.ServiceSpec(restart_policy=cpb.RestartPolicy(condition=9)),  # type: ignore[arg-type]
     "restart_policy.condition"),
    (wire.task_from_pb, cpb.Task(desired_state=11), "desired_state"),  # type: ignore[arg-type]
    (wire.task_from_pb, cpb.Task(status=cpb.TaskStatus(state=12)), "status.state"),  # type: ignore[arg-type]
    (wire.node_from_pb, cpb.Node(state=3), "state"),  # type: ignore[arg-type]
    (wire.node_from_pb, cpb.Node(availability=3), "availability"),  # type: ignore[arg-type]
    (wire.event_from_pb, cpb.Event(), "action"),
    (wire.spec_from_pb, cpb.ServiceSpec(update_config=cpb.UpdateConfig(failure_action=5)),  # type: ignore[arg-type]
     "update_config.failure_action"),
    (wire.spec_from_pb, cpb.ServiceSpec(rollback_config=cpb.UpdateConfig(order=4)),  # type: ignore[arg-type]
     "rollback_config.order"),
])
def test_a_value_this_version_does_not_know_is_named(convert: Any, message: Any, field: str) -> None:
    with pytest.raises(wire.WireError, match=rf"^{re.escape(field)}: \d+ is not a value this version knows"):
        convert(message)


def test_an_unknown_rollout_state_is_named() -> None:
    message = cpb.Service(update_status=cpb.UpdateStatus(state="exploding"))
    with pytest.raises(wire.WireError, match=r"update_status\.state: unknown 'exploding'"):
        wire.service_from_pb(message)


def test_a_model_word_without_a_wire_form_is_refused() -> None:
    spec = ServiceSpec(name="web", image="busybox", ports=[PortConfig(80, 80, "sctp")])  # type: ignore[arg-type]
    with pytest.raises(wire.WireError, match="service web: 'sctp' has no wire form"):
        wire.spec_to_pb(spec)
    with pytest.raises(wire.WireError, match="availability: 'off' is not one of active, drain, pause"):
        wire.availability_to_pb("off")
