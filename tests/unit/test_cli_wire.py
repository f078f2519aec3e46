"""The CLI's hand-written wire formats and quick `run` parser, each checked
against the real thing: the ``hpack`` package, the generated protobuf
classes, and argparse."""

from __future__ import annotations

from typing import Any

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@given(st.binary(max_size=200))
def test_hpack_lite_refuses_garbage_with_its_own_error(data: bytes) -> None:
    try:
        hpack_lite.Decoder().decode(data)
    except hpack_lite.HPACKError:
        pass


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
})


def _pb_config(c: dict[str, Any], volatile: bool) -> pb.ContainerConfig:
    """The same config built through the generated class."""
    cfg = pb.ContainerConfig(
        image=c["image"], name=c["name"], env=c["env"], hostname=c["hostname"],
        ports=[pb.PortMapping(**p) for p in c["ports"]], memory_bytes=c["memory_bytes"],
        cpus=c["cpus"], pids_limit=c["pids_limit"], restart_policy=c["restart_policy"],
        network=c["network"], auto_remove=c["auto_remove"], stop_signal=c["stop_signal"],
        labels=c["labels"], read_only=c["read_only"], volatile_rootfs=volatile,
        storage_size_bytes=c["storage_size_bytes"])
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


@given(st.binary(max_size=100))
def test_event_decoder_refuses_garbage_with_its_own_error(data: bytes) -> None:
    try:
        runcmd.decode_event(data)
    except runcmd.WireError:
        pass


# ---- the quick parser agrees with argparse -----------------------------------------

def _argparse(argv: list[str]) -> dict[str, Any] | None:
    try:
        args = vars(build_parser(["run", *argv]).parse_args(["run", *argv]))
    except (CLIError, SystemExit):
        return None
    return {k: v for k, v in args.items() if k not in ("func", "command", "host", "cluster")}


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
                            ({"storage_opt": ["dm.basesize=1G"]}, "KEY one of: size")):
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

@given(st.lists(st.text(max_size=40), max_size=4), st.text(max_size=200), st.text(max_size=40))
def test_deploy_request_matches_protobuf(services: list[str], manifest: str, path: str) -> None:
    got = cpb.DeployRequest.FromString(pbwire.encode_deploy_request(services, manifest, path))
    assert list(got.services_json) == services
    assert (got.manifest, got.manifest_path) == (manifest, path)


def test_deploy_response_matches_protobuf() -> None:
    reply = cpb.DeployResponse(services=[cpb.Service(id="i1", name="web", json="{}"),
                                         cpb.Service(id="i2", name="db")])
    assert pbwire.decode_deploy_response(reply.SerializeToString()) == ["web", "db"]


@given(st.lists(st.text(max_size=20), max_size=3), st.booleans(),
       st.floats(min_value=0, max_value=60, allow_nan=False))
def test_events_request_matches_protobuf(services: list[str], initial: bool, keepalive: float) -> None:
    got = cpb.EventsRequest.FromString(pbwire.encode_events_request(services, initial, keepalive))
    assert (list(got.services), got.initial, got.keepalive) == (services, initial, keepalive)


@given(st.text(max_size=10), st.sampled_from(["put", "delete", "synced", "keepalive"]),
       st.text(max_size=30), st.text(max_size=200), st.integers(-(1 << 63), (1 << 63) - 1))
def test_cluster_event_matches_protobuf(kind: str, action: str, ident: str, body: str,
                                        version: int) -> None:
    event = cpb.Event(kind=kind, action=action, id=ident, json=body, version=version)
    assert pbwire.decode_cluster_event(event.SerializeToString()) == (kind, action, ident, body, version)


@given(st.lists(st.tuples(st.text(max_size=10), st.sampled_from(["put", "delete", "synced"]),
                          st.text(max_size=30), st.text(max_size=100),
                          st.integers(0, (1 << 63) - 1)), max_size=5))
def test_event_batch_matches_protobuf(events: list[tuple[str, str, str, str, int]]) -> None:
    batch = cpb.EventBatch(events=[cpb.Event(kind=k, action=a, id=i, json=j, version=v)
                                   for k, a, i, j, v in events])
    assert pbwire.decode_event_batch(batch.SerializeToString()) == events
