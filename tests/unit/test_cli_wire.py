"""The CLI's hand-written wire formats and quick `run` parser, each checked
against the real thing: the ``hpack`` package, the generated protobuf
classes, and argparse."""

from __future__ import annotations

import struct
from typing import Any

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import wire
from model.objects import (
    ROLLOUT_STATES,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    TaskStatus,
    UpdateConfig,
    UpdateStatus,
)
from orch.cli import build_parser, hpack_lite, pbwire, runcmd
from orch.cli.client import CLIError
from proto import agent_pb2 as pb
from proto import cluster_pb2 as cpb

# ---- HPACK -------------------------------------------------------------------

names = st.one_of(st.sampled_from([n for n, _ in hpack_lite.STATIC] + ["grpc-status", "grpc-message"]),
                  st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=20))
values = st.one_of(st.sampled_from(["", "0", "200", "POST", "application/grpc", "http"]),
                   st.text(max_size=300))
headers = st.lists(st.tuples(names, values), max_size=12)

# The global connection options, which the quick parser leaves to argparse.
_GLOBAL = ("func", "command", "host", "cluster", "tlscacert", "tlscert", "tlskey")


@given(headers)
def test_hpack_lite_blocks_decode_with_hpack(block: list[tuple[str, str]]) -> None:
    assert hpack.Decoder().decode(hpack_lite.encode(block)) == block


@given(st.lists(headers, min_size=1, max_size=6), st.booleans(),
       st.sampled_from([0, 64, 256, 4096]))
def test_hpack_lite_decodes_hpack_blocks_across_a_connection(
        blocks: list[list[tuple[str, str]]], huffman: bool, table_size: int) -> None:
    """Indexing, Huffman strings, eviction and table size updates, block after block."""
    encoder = hpack.Encoder()
    encoder.header_table_size = table_size
    decoder = hpack_lite.Decoder()
    for block in blocks:
        assert decoder.decode(encoder.encode(block, huffman=huffman)) == block


# Garbage, and real blocks cut short or followed by junk.
damaged_blocks = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda block, cut, junk: hpack.Encoder().encode(block)[:cut] + junk,
              headers, st.integers(0, 200), st.binary(max_size=8)),
)


@given(damaged_blocks)
def test_hpack_lite_decodes_what_hpack_decodes_and_refuses_the_rest_with_its_own_error(data: bytes) -> None:
    """Where ``hpack`` decodes a block, hpack_lite decodes the same headers; anything
    else it refuses with HPACKError (never another exception). It may take a few blocks
    hpack refuses (a table size update after the first field), which no server sends."""
    try:
        expected: list[tuple[str, str]] | None = hpack.Decoder().decode(data)
    except Exception:  # the reference refuses it, whichever way it says so
        expected = None
    try:
        got: list[tuple[str, str]] | None = hpack_lite.Decoder().decode(data)
    except hpack_lite.HPACKError:
        got = None
    if expected is not None:
        assert got == expected


@given(st.integers(0, 1 << 28), st.integers(1, 8))
def test_hpack_integers_round_trip(value: int, prefix: int) -> None:
    data = hpack_lite.encode_int(value, prefix)
    assert hpack_lite.Decoder._int(data, 0, prefix) == (value, len(data))


def test_hpack_table_size_update_beyond_the_announced_size_is_refused() -> None:
    with pytest.raises(hpack_lite.HPACKError, match="exceeds"):
        hpack_lite.Decoder().decode(hpack_lite.encode_int(8192, 5, 0x20))


# ---- the request and events in protobuf wire format -----------------------------

text = st.text(max_size=20)
opt_text = st.none() | text
fields = st.fixed_dictionaries({
    "image": text, "name": text,
    "command": st.none() | st.lists(text, max_size=3),
    "entrypoint": st.none() | st.lists(text, max_size=2),
    "env": st.lists(text, max_size=3), "workdir": opt_text, "user": opt_text, "hostname": text,
    "ports": st.lists(st.fixed_dictionaries({
        "host_port": st.integers(0, 65535), "container_port": st.integers(0, 65535),
        "protocol": st.sampled_from(["", "tcp", "udp"]),
        "host_ip": st.sampled_from(["", "127.0.0.1"])}), max_size=2),
    "memory_bytes": st.integers(0, 1 << 40), "cpus": st.floats(0, 64),
    "pids_limit": st.integers(-(1 << 40), 1 << 20), "restart_policy": text,
    "network": st.sampled_from(["", "bridge", "none", "host"]), "auto_remove": st.booleans(),
    "stop_timeout": st.none() | st.floats(0, 1e6), "stop_signal": text,
    "labels": st.dictionaries(text, text, max_size=3), "read_only": st.booleans(),
    "storage_size_bytes": st.integers(0, 1 << 50),
    "mounts": st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(["", "volume", "bind", "tmpfs"]), "source": text, "target": text,
        "readonly": st.booleans(), "tmpfs_size": st.integers(0, 1 << 40),
        "tmpfs_mode": st.integers(0, 0o7777), "volume_nocopy": st.booleans(), "force": st.booleans()}),
        max_size=3),
    "cap_add": st.lists(text, max_size=2), "cap_drop": st.lists(text, max_size=2),
    "ulimits": st.lists(st.fixed_dictionaries({
        "name": st.sampled_from(["", "nofile", "core"]), "soft": st.integers(-1, 1 << 40),
        "hard": st.integers(-1, 1 << 40)}), max_size=2),
    "dns": st.lists(text, max_size=2), "extra_hosts": st.lists(text, max_size=2),
    "init": st.booleans(), "devices": st.lists(text, max_size=2), "privileged": st.booleans(),
    "sysctls": st.dictionaries(text, text, max_size=2), "shm_size": st.integers(0, 1 << 40),
})


def _pb_config(c: dict[str, Any], volatile: bool) -> pb.ContainerConfig:
    """The same config built through the generated class."""
    cfg = pb.ContainerConfig(
        image=c["image"], name=c["name"], env=c["env"], hostname=c["hostname"],
        ports=[pb.PortMapping(**p) for p in c["ports"]], memory_bytes=c["memory_bytes"],
        cpus=c["cpus"], pids_limit=c["pids_limit"], restart_policy=c["restart_policy"],
        network=c["network"], auto_remove=c["auto_remove"], stop_signal=c["stop_signal"],
        labels=c["labels"], read_only=c["read_only"], volatile_rootfs=volatile,
        storage_size_bytes=c["storage_size_bytes"], mounts=[pb.MountConfig(**m) for m in c["mounts"]],
        cap_add=c["cap_add"], cap_drop=c["cap_drop"], ulimits=[pb.Ulimit(**u) for u in c["ulimits"]],
        dns=c["dns"], extra_hosts=c["extra_hosts"], init=c["init"], devices=c["devices"],
        privileged=c["privileged"], sysctls=c["sysctls"], shm_size=c["shm_size"])
    for key in ("command", "entrypoint"):
        if c[key] is not None:
            getattr(cfg, key).SetInParent()
            getattr(cfg, key).values.extend(c[key])
    for key in ("workdir", "user", "stop_timeout"):
        if c[key] is not None:
            setattr(cfg, key, c[key])
    return cfg


@settings(max_examples=200)
@given(fields, st.booleans(), st.booleans())
def test_encoded_run_request_is_what_protobuf_reads(c: dict[str, Any], attach: bool,
                                                    volatile: bool) -> None:
    got = pb.ContainerConfig.FromString(runcmd.encode_config(c, volatile=volatile))
    assert got == _pb_config(c, volatile)
    for key in ("command", "entrypoint", "workdir", "user", "stop_timeout"):
        assert got.HasField(key) == (c[key] is not None), key
    request = pb.RunRequest.FromString(runcmd.encode_run_request(c, attach))
    assert request.attach == attach and request.config == _pb_config(c, False)


containers = st.builds(pb.Container, id=text, name=text, exit_code=st.integers(-(1 << 31), (1 << 31) - 1),
                       oom_killed=st.booleans(), pid=st.integers(0, 1 << 22), state=text,
                       started_at=st.floats(0, 1e10), command=st.lists(text, max_size=2))


@given(st.one_of(
    st.builds(lambda c: pb.RunEvent(started=c), containers),
    st.builds(lambda c: pb.RunEvent(exited=c), containers),
    st.builds(lambda t, s, line: pb.RunEvent(log=pb.LogLine(time=t, stream=s, line=line)),
              text, st.sampled_from(["stdout", "stderr"]), text)))
def test_decoded_run_events_match_protobuf(event: pb.RunEvent) -> None:
    kind, got = runcmd.decode_event(event.SerializeToString())
    assert kind == event.WhichOneof("event")
    if kind == "log":
        assert got == {"stream": event.log.stream, "line": event.log.line}
    else:
        c = getattr(event, kind)
        assert got == {"id": c.id, "exit_code": c.exit_code, "oom_killed": c.oom_killed}


# Garbage, and real events cut short or followed by junk.
damaged_events = st.one_of(
    st.binary(max_size=100),
    st.builds(lambda c, kind, cut, junk: pb.RunEvent(**{kind: c}).SerializeToString()[:cut] + junk,
              containers, st.sampled_from(["started", "exited"]), st.integers(0, 100), st.binary(max_size=8)),
)


@given(damaged_events)
def test_event_decoder_reads_what_protobuf_reads_or_refuses_with_its_own_error(data: bytes) -> None:
    """Where both read an event, they read the same one; otherwise the decoder raises
    WireError (never another exception). It is stricter than protobuf in places (a
    field of the wrong wire type), looser in others (field number 0): the agent sends
    neither."""
    try:
        got = runcmd.decode_event(data)
    except runcmd.WireError:
        return
    kind, fields = got
    assert kind in ("", "started", "log", "exited")
    try:
        event = pb.RunEvent.FromString(data)
    except Exception:  # protobuf refuses it, whichever way it says so
        return
    assert kind == (event.WhichOneof("event") or "")
    if kind == "log":
        assert fields == {"stream": event.log.stream, "line": event.log.line}
    elif kind:
        c = getattr(event, kind)
        assert fields == {"id": c.id, "exit_code": c.exit_code, "oom_killed": c.oom_killed}


# ---- the quick parser agrees with argparse -----------------------------------------

def _argparse(argv: list[str]) -> dict[str, Any] | None:
    try:
        args = vars(build_parser(["run", *argv]).parse_args(["run", *argv]))
    except (CLIError, SystemExit):
        return None
    return {k: v for k, v in args.items() if k not in _GLOBAL}


words = st.one_of(
    st.sampled_from([name for opt in runcmd.options(True) for name in opt.names]),
    st.sampled_from(["--rm=1", "--name=", "--name=x", "--network=none", "--network=moon", "-dm",
                     "--det", "--", "-", "-h", "-eA=1", "-x", "--pids-limit=-1", "1.5", "12",
                     "none", "host", "busybox", "sh", "-c", "A=1", "8080:80", "64Mi"]),
    st.text("abc=-:.0123456789", max_size=6))


@settings(max_examples=500)
@given(st.lists(words, max_size=8))
def test_quick_parser_agrees_with_argparse_whenever_it_answers(argv: list[str]) -> None:
    quick = runcmd.parse_quick(argv)
    if quick is not None:
        assert quick == _argparse(argv)


@pytest.mark.parametrize("argv", [
    ["--rm", "--network", "none", "busybox", "/bin/true"],
    ["-d", "--name", "web", "-p", "8080:80", "-e", "A=1", "-e", "B=2", "busybox", "httpd", "-f"],
    ["--memory=64Mi", "--cpus", "0.5", "--pids-limit", "10", "--restart", "on-failure:3", "img"],
    ["-l", "k=v", "--entrypoint", "", "-w", "/tmp", "-u", "1000", "--read-only", "img", "--rm"],
    ["--stop-timeout", "2.5", "--stop-signal", "SIGINT", "--hostname", "h", "img", "sh", "-c", "x"],
    ["--storage-opt", "size=10G", "img"],
    ["-v", "db:/db:ro", "--volume=/anon", "--mount", "type=tmpfs,dst=/t", "--tmpfs", "/u:size=1m", "img"],
    ["--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--ulimit", "nofile=1024:2048", "--init", "img"],
    ["--add-host", "db:10.0.0.5", "--dns", "10.0.0.53", "--device", "/dev/fuse", "--privileged", "img"],
    ["--sysctl", "net.ipv4.ip_forward=1", "--shm-size", "128m", "--env-file", "f.env", "img"],
])
def test_usual_command_lines_take_the_quick_path(argv: list[str]) -> None:
    quick = runcmd.parse_quick(argv)
    assert quick is not None and quick == _argparse(argv)


def test_config_fields_name_the_bad_option() -> None:
    base = runcmd.parse_quick(["img"])
    assert base is not None
    for change, message in (({"memory": "lots"}, "memory"), ({"pids_limit": "-2"}, "--pids-limit"),
                            ({"env": ["=x"]}, "environment variable"),
                            ({"publish": ["99999:80"]}, "port mapping"),
                            ({"label": ["novalue"]}, "label"),
                            ({"storage_opt": ["size=lots"]}, "--storage-opt"),
                            ({"storage_opt": ["dm.basesize=1G"]}, "KEY one of: size"),
                            ({"ulimit": ["nofile=x"]}, "--ulimit"), ({"sysctl": ["novalue"]}, "--sysctl"),
                            ({"shm_size": "lots"}, "--shm-size"),
                            ({"env_file": ["/nonexistent/env"]}, "--env-file /nonexistent/env")):
        with pytest.raises(CLIError, match=message):
            runcmd.config_fields({**base, **change})


# ---- start-up ----------------------------------------------------------------


def test_the_quick_path_loads_no_module_it_does_not_need() -> None:
    """`orch run` starts without site; what it imports is its start-up cost."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (f"import sys; sys.path.append({str(root)!r}); import orch.cli, orch.cli.runcmd, "
            "orch.cli.h2grpc, orch.cli.hpack_lite; print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    heavy = {"os", "site", "re", "struct", "typing", "enum", "socket", "argparse", "collections",
             "google.protobuf", "grpc", "hpack", "logging"}
    assert loaded & heavy == set()


@pytest.mark.parametrize("value", ["unix:///tmp/a.sock", "", "ünï\udcff"])
def test_getenv_and_exists_match_os(monkeypatch: pytest.MonkeyPatch, value: str, tmp_path: Any) -> None:
    import os

    from orch.cli import client

    monkeypatch.setenv("ORCH_TEST_VALUE", value)
    assert client.getenv("ORCH_TEST_VALUE") == os.environ.get("ORCH_TEST_VALUE")
    assert client.getenv("ORCH_TEST_UNSET_NAME") is None
    for path in (str(tmp_path), str(tmp_path / "missing"), "", "a\0b"):
        assert client.exists(path) == os.path.exists(path)


# ---- cluster.proto: orch deploy's messages ---------------------------------
# Built from model objects through model.wire (the generated classes' way),
# read back by pbwire (no protobuf).

def _spec_pb(name: str, replicas: int) -> bytes:
    return wire.spec_to_pb(ServiceSpec(name=name, image="busybox", replicas=replicas)).SerializeToString()


@given(st.lists(st.tuples(st.text(max_size=20), st.integers(0, 100_000)), max_size=4),
       st.text(max_size=200), st.text(max_size=40), st.text(max_size=20))
def test_deploy_request_matches_protobuf(specs: list[tuple[str, int]], manifest: str, path: str,
                                         stack: str) -> None:
    encoded = pbwire.encode_deploy_request(manifest, path, [_spec_pb(n, r) for n, r in specs], stack)
    got = cpb.DeployRequest.FromString(encoded)
    assert [(s.name, s.replicas) for s in got.services] == specs
    assert (got.manifest, got.manifest_path, got.stack) == (manifest, path, stack)


def test_deploy_response_matches_protobuf() -> None:
    reply = cpb.DeployResponse(services=[
        wire.service_to_pb(Service(id="i1", spec=ServiceSpec(name="web", image="busybox"), version=3)),
        cpb.Service(id="i2", spec=cpb.ServiceSpec(name="db"))])
    assert [s.name for s in pbwire.decode_deploy_response(reply.SerializeToString())] == ["web", "db"]


@given(st.lists(st.text(max_size=20), max_size=3), st.booleans(),
       st.floats(min_value=0, max_value=60, allow_nan=False))
def test_events_request_matches_protobuf(services: list[str], initial: bool, keepalive: float) -> None:
    got = cpb.EventsRequest.FromString(pbwire.encode_events_request(services, initial, keepalive))
    assert (list(got.services), got.initial, got.keepalive) == (services, initial, keepalive)


@pytest.mark.parametrize(("words", "enum", "prefix", "model_words"), [
    (pbwire.TASK_STATES, cpb.TaskState, "TASK_STATE_", [s.label() for s in TaskState]),
    (pbwire.SERVICE_MODES, cpb.ServiceMode, "SERVICE_MODE_", list(wire.MODES)),
    (pbwire.EVENT_ACTIONS, cpb.EventAction, "EVENT_ACTION_", ["unspecified", *wire.ACTIONS]),
])
def test_enum_words_are_the_generated_enums_names(words: tuple[str, ...], enum: Any, prefix: str,
                                                  model_words: list[str]) -> None:
    """pbwire's words by wire number: the proto's names, and the model's words."""
    assert [enum.Name(n)[len(prefix):].lower() for n in range(len(words))] == list(words)
    assert sorted(enum.values()) == list(range(len(words)))
    assert sorted(words) == sorted(model_words)


def _summary(obj: Service | Task) -> pbwire.ServiceSummary | pbwire.TaskSummary:
    """What pbwire should read from ``obj``'s message."""
    if isinstance(obj, Service):
        status = obj.update_status
        spec = obj.spec
        config = spec.rollback_config if status is not None and status.rollback else spec.update_config
        return pbwire.ServiceSummary(
            id=obj.id, name=obj.spec.name, mode=obj.spec.mode, replicas=obj.spec.replicas,
            version=obj.version, revision=obj.revision, rollout=status.state if status else "",
            started=struct.pack("<d", status.started_at) if status and status.started_at else b"",
            updated=status.updated if status else 0, total=status.total if status else 0,
            failed=len(status.failed) if status else 0, message=status.message if status else "",
            parallelism=config.parallelism)
    return pbwire.TaskSummary(id=obj.id, service_name=obj.service_name, slot=obj.slot,
                              desired_state=obj.desired_state.label(), state=obj.status.state.label(),
                              message=obj.status.message, error=obj.status.error, version=obj.version,
                              health=obj.status.health)


states = st.sampled_from(list(TaskState))
statuses = st.one_of(st.none(), st.builds(
    lambda state, started, updated, total, failed, message: UpdateStatus(
        state=state, started_at=started, updated=updated, total=total, failed=failed, message=message),
    st.sampled_from(ROLLOUT_STATES), st.floats(0, 2e9, allow_nan=False), st.integers(0, 1000),
    st.integers(0, 1000), st.lists(st.text(max_size=8), max_size=3), st.text(max_size=30)))
services = st.builds(
    lambda name, mode, replicas, version, revision, status, parallelism: Service(
        id=f"id-{name}", spec=ServiceSpec(
            name=name, image="busybox", mode=mode, replicas=replicas,
            update_config=UpdateConfig(parallelism=parallelism),
            rollback_config=UpdateConfig(parallelism=parallelism + 1)),
        version=version, revision=revision, update_status=status),
    text, st.sampled_from(["replicated", "global"]), st.integers(0, 100_000), st.integers(0, (1 << 63) - 1),
    st.integers(1, 1000), statuses, st.integers(0, 50))
tasks = st.builds(
    lambda tid, service, slot, desired, state, message, error, version, health: Task(
        id=tid, service_id="s", service_name=service, slot=slot, desired_state=desired,
        spec=ServiceSpec(name=service, image="busybox", command=["sleep", "1d"]),
        status=TaskStatus(state=state, message=message, error=error, health=health), version=version),
    text, text, st.integers(0, 100_000), states, states, text, text, st.integers(0, (1 << 63) - 1),
    st.sampled_from(["", "starting", "healthy", "unhealthy"]))
events = st.tuples(st.sampled_from(["put", "delete"]), services | tasks)


@given(events)
def test_cluster_event_matches_protobuf(event: tuple[str, Service | Task]) -> None:
    action, obj = event
    kind = "task" if isinstance(obj, Task) else "service"
    data = wire.event_to_pb(action, obj).SerializeToString()
    assert pbwire.decode_cluster_event(data) == (action, kind, _summary(obj))


@given(st.lists(events, max_size=5))
def test_event_batch_matches_protobuf(batch: list[tuple[str, Service | Task]]) -> None:
    message = cpb.EventBatch(events=[wire.event_to_pb(a, o) for a, o in batch]
                             + [wire.event_to_pb("synced"), wire.event_to_pb("keepalive")])
    assert pbwire.decode_event_batch(message.SerializeToString()) == [
        *((a, "task" if isinstance(o, Task) else "service", _summary(o)) for a, o in batch),
        ("synced", "", None), ("keepalive", "", None)]


def test_unset_optional_fields_read_as_the_models_defaults() -> None:
    """A Task without desired_state, a spec without replicas: pbwire reads
    what model.wire makes of them (the model's defaults)."""
    task_pb = cpb.Task(id="t1", service_name="web", status=cpb.TaskStatus(state=cpb.TASK_STATE_PENDING))
    task = wire.task_from_pb(task_pb)
    event = cpb.Event(action=cpb.EVENT_ACTION_PUT, task=task_pb)
    got = pbwire.decode_cluster_event(event.SerializeToString())
    assert got == ("put", "task", _summary(task)) and task.desired_state == TaskState.RUNNING
    service_pb = cpb.Service(id="s1", spec=cpb.ServiceSpec(name="web"))
    service = wire.service_from_pb(service_pb)
    got = pbwire.decode_cluster_event(cpb.Event(action=cpb.EVENT_ACTION_PUT,
                                                service=service_pb).SerializeToString())
    assert got == ("put", "service", _summary(service)) and service.spec.replicas == 1


def test_a_node_event_and_an_unknown_state_read_without_failing() -> None:
    """Node events carry nothing a rollout uses; a state from a newer control
    plane reads as a word no rollout counts as running or failed."""
    node = cpb.Event(action=cpb.EVENT_ACTION_PUT, node=cpb.Node(id="n1"))
    assert pbwire.decode_cluster_event(node.SerializeToString()) == ("put", "node", None)
    newer = cpb.Event(action=cpb.EVENT_ACTION_PUT, task=cpb.Task(id="t1", status=cpb.TaskStatus(state=42)))
    _, _, summary = pbwire.decode_cluster_event(newer.SerializeToString())
    assert isinstance(summary, pbwire.TaskSummary) and summary.state == "unknown-42"


def test_the_deploy_path_loads_neither_protobuf_nor_the_model() -> None:
    """`orch deploy` sends the manifest and follows typed events by hand."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (f"import sys; sys.path.append({str(root)!r}); import orch.cli, orch.cli.clustercmd, "
            "orch.cli.pbwire, orch.cli.rollout, orch.cli.h2grpc; print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    heavy = ("google", "grpc", "proto", "yaml", "model.objects", "model.wire", "model.manifest")
    assert {m for m in loaded if m.startswith(heavy)} == set()
