"""Properties: valid specs survive spec -> YAML -> spec; any input gives specs or a ManifestError."""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from model.health import HealthCheck, HttpProbe, TcpProbe
from model.manifest import ManifestError, dump_manifest, parse_manifest
from model.manifest._dump import _Dumper
from model.manifest._values import SERVICE_NAME_PATTERN
from model.objects import (
    NetworkAttachment,
    Placement,
    PortConfig,
    Resources,
    RestartPolicy,
    ServiceSpec,
    UpdateConfig,
)
from model.units import (
    MAX_MEMORY_BYTES,
    MAX_PIDS,
    MAX_REPLICAS,
    MAX_RESTART_POLICY_DELAY,
    MAX_RESTART_POLICY_WINDOW,
    MAX_STOP_GRACE_PERIOD,
)

LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"


def _word(first: str, rest: str, max_size: int, last: str = "") -> st.SearchStrategy[str]:
    """Strings made of alphabets (faster to generate than ``from_regex``)."""
    parts = [st.sampled_from(first), st.text(rest, max_size=max_size)]
    if last:
        parts.append(st.text(last, max_size=1))
    return st.tuples(*parts).map("".join)


names = _word(LOWER + DIGITS, LOWER + DIGITS + "-", 12, LOWER + DIGITS).filter(
    lambda name: re.fullmatch(SERVICE_NAME_PATTERN, name) is not None)
# Any character but lone surrogates and NUL (no program can receive a NUL in
# its arguments or environment).
texts = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
argvs = st.none() | st.lists(texts, max_size=4)
commands = st.none() | st.lists(texts, min_size=1, max_size=4)  # an empty command is refused
env_names = _word(LOWER + LOWER.upper() + "_", LOWER + DIGITS + "_.", 10)
label_keys = _word(LOWER, LOWER + DIGITS + "._/-", 15).filter(lambda key: not key.startswith("orch."))
components = _word(LOWER + DIGITS, LOWER + DIGITS, 8)
images = st.one_of(
    st.tuples(st.lists(components, min_size=1, max_size=3).map("/".join),
              st.none() | _word(LOWER + DIGITS + "_", LOWER + DIGITS + "_.-", 10)).map(
        lambda t: t[0] if t[1] is None else f"{t[0]}:{t[1]}"),
    st.tuples(st.sampled_from(["127.0.0.1:5000", "localhost", "registry.example"]), components,
              st.none() | st.text("0123456789abcdef", min_size=64, max_size=64)).map(
        lambda t: f"{t[0]}/{t[1]}" + (f"@sha256:{t[2]}" if t[2] else ":1")),
)


def seconds(maximum: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=maximum, allow_nan=False, allow_infinity=False)


cpus = st.just(0.0) | st.integers(10, 64_000).map(lambda milli: milli / 1000)  # 0 = unset
memory = st.one_of(st.just(0), st.integers(1, 2**40), st.just(MAX_MEMORY_BYTES),
                   st.tuples(st.integers(1, 4096), st.sampled_from([1024, 1024**2, 1024**3])).map(
                       lambda t: t[0] * t[1]))
pids = st.sampled_from([0, -1, 1, MAX_PIDS]) | st.integers(1, 100_000)
constraints = st.one_of(
    # Values never end in a space: the parser strips around the operator and ends.
    st.tuples(label_keys, st.sampled_from(["==", "!="]), _word(LOWER + DIGITS, LOWER + DIGITS + " -", 8,
                                                               LOWER + DIGITS).map(str.strip)).map(
        lambda t: f"node.labels.{t[0]}{t[1]}{t[2]}"),
    st.tuples(st.sampled_from(["node.name", "node.id"]), st.sampled_from(["==", "!="]),
              _word(LOWER + DIGITS, LOWER + DIGITS, 11)).map("".join),
)


network_names = _word(LOWER + DIGITS, LOWER + DIGITS + "_.-", 20) | st.just("default") | _word(
    LOWER, LOWER, 100)  # longer than a manifest's key may be: the dumper names it another way
aliases = _word(LOWER + DIGITS, LOWER + DIGITS + "-", 10, LOWER + DIGITS).filter(
    lambda a: re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", a) is not None)
attachments = st.lists(st.tuples(network_names, st.lists(aliases, max_size=2, unique=True)), max_size=3,
                       unique_by=lambda t: t[0]).map(
    lambda found: [NetworkAttachment(name, list(names)) for name, names in found])


@st.composite
def resources(draw: st.DrawFn) -> tuple[Resources, Resources]:
    """Limits and reservations with each reservation at most its limit (when both are set)."""
    limits = Resources(cpus=draw(cpus), memory_bytes=draw(memory), pids=draw(pids))
    res_cpus, res_memory = draw(cpus), draw(memory)
    if limits.cpus:
        res_cpus = min(res_cpus, limits.cpus)
    if limits.memory_bytes:
        res_memory = min(res_memory, limits.memory_bytes)
    return limits, Resources(cpus=res_cpus, memory_bytes=res_memory)


@st.composite
def healthchecks(draw: st.DrawFn) -> HealthCheck | None:
    """None, or a check as a manifest can write it: a test or one probe, and
    any of the timings (a retries of 0 is "the default", so never drawn)."""
    kind = draw(st.sampled_from(["none", "cmd", "shell", "disabled", "http", "tcp", "timings"]))
    if kind == "none":
        return None
    timing = st.none() | seconds(24 * 3600.0)
    tests = {"cmd": ("CMD", "wget", "-q", "http://127.0.0.1/"), "shell": ("CMD-SHELL", "test -f /ok"),
             "disabled": ("NONE",)}
    test: tuple[str, ...] = tests.get(kind, ())
    return HealthCheck(
        test=test, interval=draw(seconds(24 * 3600.0) if kind == "timings" else timing), timeout=draw(timing),
        retries=draw(st.none() | st.integers(1, 1000)),
        start_period=draw(timing), start_interval=draw(timing),
        http=HttpProbe(draw(st.integers(1, 65535)), draw(st.sampled_from(["/", "/healthz"])),
                       draw(st.sampled_from([0, 200, 204]))) if kind == "http" else None,
        tcp=TcpProbe(draw(st.integers(1, 65535))) if kind == "tcp" else None,
        disable=draw(st.booleans()) if kind == "timings" else False)


MAX_UPDATE_DURATION = 24 * 3600.0


def update_configs(rollback: bool) -> st.SearchStrategy[UpdateConfig]:
    """The defaults (left out of the text), or any values a manifest can write;
    a rollback's failure_action is never rollback."""
    actions = ["pause", "continue"] + ([] if rollback else ["rollback"])
    return st.just(UpdateConfig()) | st.builds(
        UpdateConfig, parallelism=st.integers(0, 100) | st.just(2**31 - 1),
        delay=seconds(MAX_UPDATE_DURATION), failure_action=st.sampled_from(actions),
        monitor=seconds(MAX_UPDATE_DURATION), max_failure_ratio=st.floats(0, 1) | st.sampled_from([0.0, 1.0]),
        order=st.sampled_from(["stop-first", "start-first"]))


@st.composite
def spec(draw: st.DrawFn, name: str, ports: list[PortConfig]) -> ServiceSpec:
    modes: list[Literal["replicated", "global"]] = ["replicated", "global"]
    mode = draw(st.sampled_from(modes))
    networks = draw(attachments)
    endpoint_mode = draw(st.sampled_from(["vip", "dnsrr"]))
    for port in ports:  # an ingress port needs a network and a VIP
        port.mode = draw(st.sampled_from(["ingress", "host"])) if networks and endpoint_mode == "vip" \
            else "host"
    limits, reservations = draw(resources())
    env_keys = draw(st.lists(env_names, max_size=4, unique=True))
    return ServiceSpec(
        name=name,
        image=draw(images),
        command=draw(commands),
        entrypoint=draw(argvs),
        env=[f"{key}={draw(texts)}" for key in env_keys],
        ports=ports,
        labels=draw(st.dictionaries(label_keys, texts, max_size=3)),
        mode=mode,
        replicas=1 if mode == "global" else draw(st.integers(0, 1000) | st.just(MAX_REPLICAS)),
        limits=limits,
        reservations=reservations,
        placement=Placement(
            constraints=draw(st.lists(constraints, max_size=3)),
            preferences=draw(st.lists(label_keys.map(lambda k: f"node.labels.{k}"), max_size=2)),
            max_replicas_per_node=draw(st.integers(0, 10)),
        ),
        restart_policy=RestartPolicy(
            condition=draw(st.sampled_from(["none", "on-failure", "any"])),
            delay=draw(seconds(MAX_RESTART_POLICY_DELAY)),
            max_attempts=draw(st.integers(0, 100)),
            window=draw(seconds(MAX_RESTART_POLICY_WINDOW)),
        ),
        binpack=draw(st.booleans()),
        stop_grace_period=draw(seconds(MAX_STOP_GRACE_PERIOD)),
        storage_size=draw(memory),
        networks=networks,
        endpoint_mode=endpoint_mode,  # type: ignore[arg-type]
        healthcheck=draw(healthchecks()),
        update_config=draw(update_configs(rollback=False)),
        rollback_config=draw(update_configs(rollback=True)),
        rebalance=draw(st.booleans()),
    )


@st.composite
def manifests(draw: st.DrawFn) -> list[ServiceSpec]:
    service_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    published = draw(st.lists(st.tuples(st.integers(1, 65535), st.sampled_from(["tcp", "udp"])),
                              max_size=6, unique=True))
    out = []
    for index, name in enumerate(service_names):
        mine = published[index::len(service_names)]  # each published port used by one service only
        ports = [PortConfig(p, draw(st.integers(1, 65535)), proto) for p, proto in mine]  # type: ignore[arg-type]
        out.append(draw(spec(name, ports)))
    return out


@settings(max_examples=200, deadline=None)
@given(manifests())
def test_round_trip(specs: list[ServiceSpec]) -> None:
    assert parse_manifest(dump_manifest(specs)) == specs


@settings(max_examples=100, deadline=None)
@given(manifests(), st.booleans())
def test_round_trip_long_port_form(specs: list[ServiceSpec], flow: bool) -> None:
    """The long port form and flow-style YAML parse to the same specs."""
    document: dict[str, Any] = yaml.safe_load(dump_manifest(specs))
    for spec_ in specs:
        service = document["services"][spec_.name]
        if spec_.ports:
            service["ports"] = [{"published": p.published, "target": p.target, "protocol": p.protocol,
                                 "mode": p.mode} for p in spec_.ports]
    text = yaml.dump(document, Dumper=_Dumper, default_flow_style=flow, sort_keys=False, allow_unicode=True)
    assert parse_manifest(text) == specs


def _kubernetes_memory(n: int) -> str:
    for unit, size in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _compose_memory(n: int) -> str:
    for unit, size in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}b"


@given(st.integers(10, 64_000), memory.filter(bool))
def test_quantities_in_both_notations_agree(milli: int, size: int) -> None:
    def parsed(cpu_text: str, memory_text: str) -> Resources:
        text = (f"services:\n  web:\n    image: busybox\n    deploy:\n      resources:\n"
                f"        limits: {{cpus: '{cpu_text}', memory: '{memory_text}'}}\n")
        return parse_manifest(text)[0].limits

    compose = parsed(repr(milli / 1000), _compose_memory(size))
    kubernetes = parsed(f"{milli}m", _kubernetes_memory(size))
    assert compose == kubernetes == Resources(cpus=milli / 1000, memory_bytes=size)


MANIFEST_WORDS = ["services", "web", "image", "deploy", "replicas", "ports", "mode", "resources", "limits",
                  "cpus", "memory", "command", "x-orch"]


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    mappings = st.dictionaries(st.sampled_from(MANIFEST_WORDS), children, max_size=4)
    return st.lists(children, max_size=3) | mappings


scalars = st.none() | st.booleans() | st.integers(-5, 70000) | texts
yaml_values = st.recursive(scalars, _containers, max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)))
def test_any_input_gives_specs_or_a_located_error(text: str) -> None:
    try:
        parse_manifest(text, "f.yaml")
    except ManifestError as err:
        assert str(err).startswith("f.yaml:") and "\n" not in str(err)
        assert 1 <= err.line <= text.count("\n") + 2
