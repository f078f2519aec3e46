"""Malformed manifests, generated: every one is refused with a ``ManifestError``
naming the file, a line of it and (for a bad value or key) the field, on one
line; no other exception ever escapes the parser.

Three generators, each mutating valid manifests (``BASES``):

- by value: a wrong type, number, duration, quantity, enum, port,
  constraint, unknown key, missing key, deep nesting or huge string at any
  field path. The published JSON Schema is the oracle: a document it
  rejects is malformed, so the parser must reject it too (``assume`` keeps
  only those, so every example counts);
- by text: YAML-significant characters, tabs, duplicated lines (duplicate
  keys), anchors and aliases, several or empty documents, cut files;
- by bytes: files that are not UTF-8, read by ``load_stack`` as the CLI
  path names them.

At the end, the real CLI: a fixed sample of the same mutations through
``orch deploy -f`` and ``orch plan -f`` against a real control plane (with
its etcd, no nodes), which parses the manifest before anything else (the
CLI sends the text unparsed).
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from model.manifest import ManifestError, json_schema, load_stack, parse_stack
from model.manifest._errors import field_path

jsonschema = pytest.importorskip("jsonschema")

FILE = "m.yaml"
PathT = tuple[str | int, ...]

# ---- valid manifests to mutate ------------------------------------------------

_UPDATE = {"parallelism": 2, "delay": "10s", "failure_action": "rollback", "monitor": "30s",
           "max_failure_ratio": 0.1, "order": "start-first"}
_ROLLBACK = {"parallelism": 0, "delay": 0, "failure_action": "continue", "monitor": 5,
             "max_failure_ratio": 0, "order": "stop-first"}

RICH: dict[str, Any] = {
    "version": "3.8",
    "name": "shop",
    "x-defaults": {"labels": {"tier": "x"}},
    "services": {
        "web": {
            "image": "busybox:1.36",
            "command": ["httpd", "-f", "-p", "80"],
            "entrypoint": "/bin/sh -c",
            "environment": {"MODE": "production", "COUNT": "3"},
            "ports": ["8080:80", {"published": 5353, "target": 53, "protocol": "udp", "mode": "host"}],
            "networks": {"front": {"aliases": ["www"]}, "back": None},
            "labels": ["com.example.tier=front"],
            "stop_grace_period": "30s",
            "pids_limit": 100,
            "storage_opt": {"size": "1G"},
            "healthcheck": {"test": ["CMD", "true"], "interval": "10s", "timeout": "3s", "retries": 3,
                            "start_period": "30s", "start_interval": "1s", "disable": False},
            "deploy": {
                "mode": "replicated",
                "replicas": 3,
                "resources": {"limits": {"cpus": "0.5", "memory": "64M", "pids": 100},
                              "reservations": {"cpus": "250m", "memory": "32Mi"}},
                "placement": {"constraints": ["node.labels.zone==a", "node.name!=n3"],
                              "preferences": [{"spread": "node.labels.zone"}],
                              "max_replicas_per_node": 2},
                "restart_policy": {"condition": "on-failure", "delay": "5s", "max_attempts": 3,
                                   "window": "1m30s"},
                "update_config": _UPDATE,
                "rollback_config": _ROLLBACK,
                "endpoint_mode": "vip",
            },
            "x-orch": {"binpack": True, "rebalance": False},
        },
        "cache": {
            "image": "127.0.0.1:5000/redis:7",
            "command": "redis-server --save ''",
            "environment": ["A=1", "B=two words"],
            "labels": {"com.example.role": "cache"},
            "networks": ["back"],
            "healthcheck": {"interval": 5, "retries": 2},
            "deploy": {"mode": "global", "endpoint_mode": "dnsrr"},
            "x-orch": {"healthcheck": {"tcp": {"port": 6379}}},
        },
        "probe": {
            "image": "busybox",
            "network_mode": "bridge",
            "ports": [{"published": 9090, "target": 90, "mode": "host"}],
            "x-orch": {"healthcheck": {"http": {"port": 90, "path": "/healthz", "status": 200}}},
        },
    },
    "networks": {
        "front": {"driver": "overlay",
                  "ipam": {"driver": "default", "config": [{"subnet": "10.96.200.0/24"}]},
                  "labels": {"com.example.net": "front"}},
        "back": {"external": True, "name": "shared"},
    },
}
SMALL: dict[str, Any] = {"services": {"app": {"image": "busybox", "deploy": {"replicas": 1}}}}
BASES = [RICH, SMALL]

VALIDATOR = jsonschema.Draft202012Validator(json_schema())


def _paths(value: Any, prefix: PathT = ()) -> list[PathT]:
    """Every path below ``value`` (mapping keys and list indexes), parents first."""
    out: list[PathT] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, sub in value.items():
            out += _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out += _paths(sub, (*prefix, i))
    return out


def _mappings(value: Any) -> list[PathT]:
    """The paths of every mapping in ``value``, the root's included, parents first."""
    return [path for path in [(), *_paths(value)] if isinstance(_get(value, path), dict)]


def _get(doc: Any, path: PathT) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def dotted(path: PathT) -> str:
    """A path as the parser writes it: ``services.web.ports[1].mode``."""
    out = ""
    for key in path:
        out = field_path(out, key)
    return out


def replace(doc: dict[str, Any], path: PathT, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    _get(out, path[:-1])[path[-1]] = value
    return out


def add_key(doc: dict[str, Any], path: PathT, key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    _get(out, path)[key] = value
    return out


def delete(doc: dict[str, Any], path: PathT) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    del _get(out, path[:-1])[path[-1]]
    return out


def dump(doc: Any) -> str:
    # Non-ASCII escaped: PyYAML writes a raw NEL or U+2028 where YAML 1.1 reads a line break.
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=10_000)


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# ---- hostile values ---------------------------------------------------------------

BAD_DURATIONS = ["-5s", "5x", "1e3s", "5 s", "1h-1m", "", " ", "5sec", "1y", "\u0661s",
                 "99999999999999999999h", ".s", "s", "5ss", "1h1", "P1D", "nan", "inf", "-0.5", "10m" * 50,
                 "1:30"]
BAD_QUANTITIES = ["-1", "0", "1.5.5", "64 Q", "9999999999999999Pi", "0x40", "64MB ", " 64M", "-64M", "nan",
                  "inf", "1e3", "0m", "0.0001", "\u0661\u0660\u0660", "64iB", "64Ki B", "1Ei", "", "1,5",
                  "10000"]
BAD_ENUMS = ["Replicated", "GLOBAL", "sometimes", "", "on_failure", "start_first", "ROLLBACK", "tcp6",
             "Ingress", "overlay2", "rollback", "none ", "yes"]
BAD_PORTS = ["0:80", "65536:80", "80", "a:b", "1-2:3", "1:2/sctp", "1:2/", "1.2.3.4:80:80", ":80", "80:",
             "8080:80/TCP", "+80:80", "08080:80", "१:२", 8080, -1, 70000, None, [80],
             {"published": 0, "target": 80}, {"published": 80}, {"target": 80},
             {"published": "x", "target": 80}, {"published": 80, "target": 80, "protocol": "sctp"},
             {"published": 80, "target": 80, "mode": "global"}, {"published": 80, "target": 80, "x": 1},
             {"published": True, "target": 80}, {"published": 80.5, "target": 80}]
BAD_CONSTRAINTS = ["node.labels.zone=a", "node.labels==a", "zone==a", "node.labels.zone==",
                   "node.labels.zone ~= a", "node.role==worker==x", "node.labels.==a", "==", "", "node.id",
                   "node.labels.zone==a b", "engine.labels.x==y", "node.platform.os==linux"]
BAD_SUBNETS = ["10.96.0.0/33", "10.96.0.0", "300.1.1.1/24", "::1/64", "10.96.0.1/24", "x/24", "",
               "10.96.0.0/-1"]
BAD_NAMES = ["Web", "-web", "web-", "web_1", "w" * 64, "", "web.1", "wéb", "web\n", "a b", "x-web", "<<"]
HUGE_NUMBERS = [2**31, 2**63, 2**64 + 1, 10**30, -(2**63), -1, -0.5, 1e308, float("inf"), float("-inf"),
                float("nan"), 1e-300]
ODD_STRINGS = ["", " ", "\t", "\n", "~", "null", "yes", "0x10", "0o17", "1_000", "1:20", "2024-01-01",
               "!!binary", "\x00", "\x07", "\u2028", "\x85", "\ufeff", "💥", "*alias", "&anchor", "- a",
               "a: b", "{a: b}", "[1]", "'", '"', "\\", "%", "@", "`", "a" * 5000, "é" * 3000,
               "a b " * 2000, "\n".join(["x"] * 100)]

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(BAD_DURATIONS + BAD_QUANTITIES + BAD_ENUMS + BAD_CONSTRAINTS + BAD_SUBNETS + BAD_NAMES
                    + ODD_STRINGS),
    st.sampled_from(HUGE_NUMBERS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
) | st.sampled_from(BAD_PORTS) | st.builds(nested, st.integers(min_value=1, max_value=120)) \
  | st.lists(st.sampled_from(BAD_PORTS + BAD_CONSTRAINTS), min_size=1, max_size=3)
KEYS = st.one_of(st.text(max_size=20), st.sampled_from(
    ["replica", "imgae", "Image", "volumes", "build", "restart", "depends_on", "container_name", "labels",
     "secrets", "configs", "x-", "driver_opts", "ipv4_address", "<<", "IMAGE", "deploy ", "a" * 300]))


@dataclass(frozen=True)
class Mutation:
    doc: dict[str, Any]
    what: str  # for the report of a failing example
    path: PathT  # the field it touched


@st.composite
def value_mutations(draw: st.DrawFn) -> Mutation:
    base = draw(st.sampled_from(BASES))
    kind = draw(st.sampled_from(["replace", "replace", "replace", "add_key", "delete"]))
    if kind == "replace":
        path = draw(st.sampled_from(_paths(base)))
        value = draw(VALUES)
        return Mutation(replace(base, path, value), f"{dotted(path)} = {value!r}"[:300], path)
    if kind == "add_key":
        path = draw(st.sampled_from(_mappings(base)))
        key = draw(KEYS)
        assume(key not in _get(base, path))
        value = draw(VALUES)
        return Mutation(add_key(base, path, key, value), f"{dotted((*path, key))} added"[:300], (*path, key))
    path = draw(st.sampled_from([p for p in _paths(base) if not isinstance(p[-1], int)]))
    return Mutation(delete(base, path), f"{dotted(path)} deleted", path)


# ---- the property ------------------------------------------------------------------

def check_error(err: ManifestError, text: str, file: str = FILE) -> int:
    """``err`` reads as one line ``FILE:LINE: ...`` with LINE inside ``text``; returns LINE."""
    message = str(err)
    assert len(message.splitlines()) == 1 and "\n" not in message, message
    assert message.startswith(f"{file}:"), message
    found = re.match(r"([0-9]+): ", message[len(file) + 1:])
    assert found is not None, message
    line = int(found[1])
    assert err.path == file and err.line == line
    assert 1 <= line <= text.count("\n") + 1, message
    assert len(message) < 2_000, message[:200]
    assert "Traceback" not in message
    return line


def related(field: str, touched: PathT) -> bool:
    """The error's field lies in the service or network (or top-level key) the mutation touched."""
    top = dotted(touched[:2]) if touched[:1] in (("services",), ("networks",)) else dotted(touched[:1])
    return field == "" or field.startswith(top) or top.startswith(field)


def test_bases_are_valid() -> None:
    for base in BASES:
        assert VALIDATOR.is_valid(base)
        parse_stack(dump(base), FILE)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                   HealthCheck.too_slow])
@given(value_mutations())
def test_value_mutations_are_refused_with_file_line_and_field(mutation: Mutation) -> None:
    assume(not VALIDATOR.is_valid(mutation.doc))  # malformed by the published format
    text = dump(mutation.doc)
    with pytest.raises(ManifestError) as info:
        parse_stack(text, FILE)
    err = info.value
    check_error(err, text)
    # Whole-document errors name no field: "services" itself gone, nesting too deep.
    if not (len(mutation.path) == 1 and mutation.what.endswith("deleted")) and "nests deeper" not in str(err):
        assert err.field, f"{mutation.what}: {err}"
    assert related(err.field, mutation.path), f"{mutation.what}: {err}"


# ---- text-level mutations ----------------------------------------------------------------

ANCHORED = """\
version: "3.8"
x-defaults: &defaults
  image: busybox
  labels: {tier: x}
  deploy: &deploy
    replicas: 2
    restart_policy: {condition: any}
services:
  web:
    <<: *defaults
    command: [sleep, "3600"]
    ports: ["8080:80"]
  worker:
    <<: [*defaults]
    deploy:
      <<: *deploy
      replicas: 1
    environment:
      MODE: batch
"""
TEXT_BASES = [ANCHORED, dump(RICH), dump(SMALL)]

SNIPPETS = ["\t", "  ", "- ", ": ", ":", "[", "]", "{", "}", ",", "&a ", "*a", "*nope", "<<: *a\n", "<<: 3\n",
            "&a [*a]", "!!python/object/apply:os.system ['true'] ", "!!binary ", "!!set ", "!!omap ",
            "!custom ", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "---\n", "...\n", "? ", "? [a]\n", "|", ">",
            "|-\n", "'", '"', "#", "\x00", "\x07", "\x1b", "\x85", "\u2028", "\ufeff", "\\", "@", "`", "%",
            "!", "~", "null", "0x", "1e999", "-" * 3, "\r", "\r\n", "a" * 10_000, "[" * 200, "{a: " * 100,
            "\u00e9", "\U0001f4a5", "\udcff"]


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXT_BASES))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        lines = text.split("\n")
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        kind = draw(st.sampled_from(["insert", "insert", "duplicate", "delete", "tab", "swap", "documents",
                                     "truncate", "whole", "anchor"]))
        if kind == "insert":
            col = draw(st.integers(min_value=0, max_value=len(lines[i])))
            lines[i] = lines[i][:col] + draw(st.sampled_from(SNIPPETS) | st.text(max_size=5)) + lines[i][col:]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "delete":
            del lines[i]
        elif kind == "tab":
            lines[i] = "\t" + lines[i].lstrip(" ")
        elif kind == "swap":
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "documents":
            lines = [*lines, "---", *draw(st.sampled_from(TEXT_BASES)).split("\n")]
        elif kind == "truncate":
            lines = lines[:i]
        elif kind == "anchor":  # an alias to an anchor defined later, or to itself
            lines[i] = lines[i] + draw(st.sampled_from([" &a", " *a", " &a *a", " &b", " *b"]))
        else:
            whole = ["", " ", "#", "# only a comment", "~", "null", "[]", "{}", "---", "--- \n...",
                     "services:", "services: []", "services: {}", "services: ~", "services: {web: }", "a",
                     "\ufeff", "'"]
            lines = draw(st.sampled_from(whole)).split("\n")
        text = "\n".join(lines)
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_mutations())
def test_text_mutations_parse_or_give_a_located_error(text: str) -> None:
    try:
        parse_stack(text, FILE)
    except ManifestError as err:
        check_error(err, text)


# ---- bytes that are not UTF-8 -------------------------------------------------------------

BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80",
             b"\xf8\x88\x80\x80\x80", b"\x80", b"\xc0\xaf", b"\xff\xfe", "é".encode("latin-1"),
             "ü".encode("cp1252")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TEXT_BASES), st.data())
def test_non_utf8_files_are_refused_at_their_line(tmp_path: Path, text: str, data: st.DataObject) -> None:
    raw = text.encode()
    at = data.draw(st.integers(min_value=0, max_value=len(raw)))
    bad = data.draw(st.sampled_from(BAD_BYTES))
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw[:at] + bad + raw[at:])
    with pytest.raises(ManifestError) as info:
        load_stack(str(path))
    line = check_error(info.value, (raw[:at] + bad + raw[at:]).decode("latin-1"), str(path))
    assert line == raw[:at].count(b"\n") + 1
    assert "not UTF-8" in str(info.value)


# ---- the real CLI: `orch deploy -f` and `orch plan -f` against a control plane -------------------

def _sample() -> dict[str, bytes]:
    """A fixed sample of the generators' mutations, one or two per kind."""
    web: PathT = ("services", "web")
    values = {
        "wrong_type": replace(RICH, (*web, "deploy", "replicas"), "three"),
        "unknown_key": add_key(RICH, (*web, "deploy"), "replica", 3),
        "negative": replace(RICH, (*web, "deploy", "replicas"), -1),
        "huge_number": replace(RICH, (*web, "deploy", "restart_policy", "max_attempts"), 10**30),
        "bad_duration": replace(RICH, (*web, "stop_grace_period"), "5x"),
        "bad_quantity": replace(RICH, (*web, "deploy", "resources", "limits", "memory"), "64 Q"),
        "bad_enum": replace(RICH, (*web, "deploy", "update_config", "order"), "start_first"),
        "bad_port": replace(RICH, (*web, "ports", 0), "0:80"),
        "bad_constraint": replace(RICH, (*web, "deploy", "placement", "constraints", 0),
                                  "node.labels.zone=a"),
        "deep_nesting": replace(RICH, (*web, "labels"), nested(100)),
        "long_string": replace(RICH, (*web, "image"), "a" * 100_000),
        "missing_image": delete(RICH, (*web, "image")),
        "bad_service_name": add_key(SMALL, ("services",), "Web_1", {"image": "busybox"}),
    }
    out = {name: dump(doc).encode() for name, doc in values.items()}
    lines = ANCHORED.split("\n")
    out.update({
        "duplicate_key": "\n".join([*lines[:10], lines[10], *lines[10:]]).encode(),
        "recursive_alias": ANCHORED.replace("deploy: &deploy", "deploy: &deploy [*deploy]\n  x:").encode(),
        "billion_laughs": ("x-l0: &l0 lol\n" + "".join(
            f"x-l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)) + ANCHORED).encode(),
        "merge_of_a_scalar": ANCHORED.replace("<<: *defaults", "<<: 3").encode(),
        "empty": b"",
        "two_documents": (ANCHORED + "---\n" + ANCHORED).encode(),
        "tab": ANCHORED.replace("  image: busybox", "\timage: busybox").encode(),
        "control_character": ANCHORED.replace("batch", "ba\x07tch").encode(),
        "too_large": ANCHORED.encode() + b"# " + b"x" * (1 << 20) + b"\n",
        "not_utf8": ANCHORED.encode().replace(b"batch", b"b\xe4tch"),
    })
    return out


SAMPLE = _sample()


@dataclass
class Plane:
    socket: str
    dir: Path

    def orch(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        env["ORCH_CLUSTER_RUN_DIR"] = "/nonexistent/orch-run"
        return subprocess.run([sys.executable, "-m", "orch", "-C", f"unix://{self.socket}", *args], env=env,
                              text=True, capture_output=True, timeout=60, cwd="/")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """A control plane on its own etcd, no nodes: it parses a deploy's manifest first."""
    if os.geteuid() != 0:
        pytest.skip("the control plane's socket and state need root")
    import socket
    import time

    from controlplane.etcd import EmbeddedEtcd
    from orch.pids import wait_exit

    tmp = tmp_path_factory.mktemp("plane")
    etcd = EmbeddedEtcd(tmp / "etcd")
    etcd.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sock = str(tmp / "cp.sock")
    with open(tmp / "cp.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "orch", "controlplane", "--etcd", etcd.endpoint,
                                 "--listen", f"127.0.0.1:{port}", "--socket", sock,
                                 "--state-dir", str(tmp / "cp")],
                                stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / "cp.log").read_text()[-2000:]
            time.sleep(0.1)
        yield Plane(sock, tmp)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            if not wait_exit(proc.pid, 15):
                proc.kill()
        proc.wait()
        etcd.stop()


def _expected(path: Path) -> str:
    """What the parser says of the file, as the control plane runs it."""
    with pytest.raises(ManifestError) as info:
        load_stack(str(path))
    check_error(info.value, path.read_bytes().decode("utf-8", "replace"), str(path))
    return f"orch: error: {info.value}\n"


@pytest.mark.parametrize("name", [n for n in SAMPLE if n != "not_utf8"])
def test_orch_deploy_refuses_a_malformed_manifest_on_one_line(plane: Plane, name: str) -> None:
    path = plane.dir / f"{name}.yaml"
    path.write_bytes(SAMPLE[name])
    p = plane.orch("deploy", "-f", str(path))
    assert p.returncode == 1, p
    assert p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr == _expected(path)


@pytest.mark.parametrize("name", ["wrong_type", "billion_laughs", "two_documents", "too_large"])
def test_orch_plan_refuses_it_alike_with_its_error_code(plane: Plane, name: str) -> None:
    """`orch plan` exits 2 for an error (1 means "changes", as kubectl diff has it)."""
    path = plane.dir / f"plan-{name}.yaml"
    path.write_bytes(SAMPLE[name])
    p = plane.orch("plan", "-f", str(path))
    assert p.returncode == 2, p
    assert p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr == _expected(path)


def test_orch_deploy_names_the_line_of_bytes_that_are_not_utf8(plane: Plane) -> None:
    path = plane.dir / "not_utf8.yaml"
    path.write_bytes(SAMPLE["not_utf8"])
    p = plane.orch("deploy", "-f", str(path))
    assert p.returncode == 1 and p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"orch: error: {path}:") and len(p.stderr.splitlines()) == 1
    assert p.stderr == _expected(path)
