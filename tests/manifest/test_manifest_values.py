"""Value spellings: quantities in Compose and Kubernetes notation, durations, ports,
constraints, environment and labels, and the YAML layer's positions."""

from __future__ import annotations

import pytest

from controlplane.model import PortConfig, ServiceSpec
from orch.manifest import ManifestError, parse_manifest

KI, MI, GI = 1024, 1024**2, 1024**3


def _service(body: str) -> ServiceSpec:
    """Parse one service named web whose keys (below image) are ``body``, indented 4."""
    lines = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    (spec,) = parse_manifest(f"services:\n  web:\n    image: busybox\n{lines}")
    return spec


def _limits(cpus: str = "", memory: str = "") -> ServiceSpec:
    parts = ", ".join(f"{key}: {value}" for key, value in (("cpus", cpus), ("memory", memory)) if value)
    return _service(f"deploy:\n  resources:\n    limits: {{{parts}}}")


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ('"0.5"', 0.5),  # Compose, quoted
        ("0.5", 0.5),  # Compose, a YAML float
        ("2", 2.0),  # a YAML int
        ('"2"', 2.0),
        ("500m", 0.5),  # Kubernetes millicores
        ("1500m", 1.5),
        ("100m", 0.1),
        ('".25"', 0.25),
        ("1024", 1024.0),
    ],
)
def test_cpus_both_notations(text: str, cpus: float) -> None:
    assert _limits(cpus=text).limits.cpus == cpus


@pytest.mark.parametrize(
    ("text", "memory"),
    [
        ("64M", 64 * MI),  # Compose: binary, case-insensitive
        ("64m", 64 * MI),
        ("1g", GI),
        ("1G", GI),
        ("512k", 512 * KI),
        ("64Mi", 64 * MI),  # Kubernetes
        ("256Mi", 256 * MI),
        ("1Gi", GI),
        ("1.5Gi", 3 * GI // 2),
        ("64MiB", 64 * MI),
        ("64mb", 64 * MI),
        ("1048576", MI),  # a YAML int: bytes
        ('"1048576"', MI),
        ("100b", 100),
    ],
)
def test_memory_both_notations(text: str, memory: int) -> None:
    assert _limits(memory=text).limits.memory_bytes == memory


@pytest.mark.parametrize(
    ("cpus", "memory", "message"),
    [
        ("0", "", "invalid cpu quantity '0'"),
        ("0m", "", "invalid cpu quantity '0m'"),
        ("2000", "", "at most 1024"),
        ("1e-3", "", "invalid cpu quantity '1e-3'"),
        ("true", "", "expected a number of CPUs such as 0.5 or 500m, got true"),
        ("", "0", "expected a memory size of at least 1 byte, got 0"),
        ("", "64Mb!", "invalid memory quantity '64Mb!'"),
        ("", "1.5", "expected a memory size such as 64M or 256Mi, got 1.5"),
        ("", "[1]", "got a list"),
    ],
)
def test_bad_quantities(cpus: str, memory: str, message: str) -> None:
    with pytest.raises(ManifestError, match=r"^<string>:6: services\.web\.deploy\.resources\.limits\.") as e:
        _limits(cpus=cpus, memory=memory)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("100us", 0.0001),
        ("1h2m3s4ms", 3723.004),
        ("10", 10.0),  # a YAML int: seconds
        ("2.5", 2.5),  # a YAML float: seconds
        ('"7"', 7.0),  # a bare number as a string: seconds
        ("0", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    policy = f"{{delay: {text}, window: {text}}}"
    spec = _service(f"stop_grace_period: {text}\ndeploy:\n  restart_policy: {policy}")
    assert spec.stop_grace_period == pytest.approx(seconds)
    assert spec.restart_policy.delay == pytest.approx(seconds)
    assert spec.restart_policy.window == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 s", "5sec", "s", "-1s", "1d", "-3", ".inf", "[5s]", "true", "1m-30s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ManifestError, match=r"^<string>:4: services\.web\.stop_grace_period: expected a dur"):
        _service(f"stop_grace_period: {text}")


@pytest.mark.parametrize(
    ("text", "constraint"),
    [
        ("node.labels.zone==a", "node.labels.zone==a"),
        ("node.labels.zone == a", "node.labels.zone==a"),
        ("node.labels.zone!=a", "node.labels.zone!=a"),
        ("node.labels.com.example/tier==front-1", "node.labels.com.example/tier==front-1"),
        ("node.name==n1", "node.name==n1"),
        ("node.name != n1", "node.name!=n1"),
        ("node.id==3f2a", "node.id==3f2a"),
        ("node.hostname==n1", "node.name==n1"),  # Swarm's spelling of orch's node name
        ("node.labels.disk==ssd nvme", "node.labels.disk==ssd nvme"),
    ],
)
def test_constraints(text: str, constraint: str) -> None:
    spec = _service(f"deploy:\n  placement:\n    constraints: ['{text}']")
    assert spec.placement.constraints == [constraint]


@pytest.mark.parametrize(
    "text",
    ["node.labels.zone=a", "node.labels.zone", "node.labels==a", "node.labels.zone==", "node.role==worker",
     "node.platform.os==linux", "engine.labels.a==b", "node.labels.zone===a", "node.name==a!=b"],
)
def test_bad_constraints(text: str) -> None:
    where = r"^<string>:6: services\.web\.deploy\.placement\.constraints\[0\]: "
    with pytest.raises(ManifestError, match=where):
        _service(f"deploy:\n  placement:\n    constraints: ['{text}']")


@pytest.mark.parametrize(
    ("body", "ports"),
    [
        ('ports: ["8080:80"]', [PortConfig(8080, 80, "tcp")]),
        ("ports: [8080:80]", [PortConfig(8080, 80, "tcp")]),  # unquoted: not YAML 1.1 base 60
        ('ports: ["5353:53/udp", "5353:53/tcp"]', [PortConfig(5353, 53, "udp"), PortConfig(5353, 53, "tcp")]),
        ("ports: [{published: 8080, target: 80}]", [PortConfig(8080, 80, "tcp")]),
        ('ports: [{published: "8080", target: "80", protocol: udp}]', [PortConfig(8080, 80, "udp")]),
        ('ports: ["1:65535"]', [PortConfig(1, 65535)]),
    ],
)
def test_ports(body: str, ports: list[PortConfig]) -> None:
    assert _service(body).ports == ports


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('ports: ["0:80"]', "ports[0]: port '0' is out of range"),
        ('ports: ["8080:65536"]', "ports[0]: port '65536' is out of range"),
        ('ports: ["8000-8001:80-81"]', "ports[0]: port '8000-8001:80-81': host addresses and port ranges"),
        ('ports: ["8080:80", "8080:81"]', "ports[1]: published port 8080/tcp is already used by services"),
        ("ports: [{target: 80}]", "ports[0]: missing required key 'published'"),
        ("ports: [{published: true, target: 80}]", "ports[0].published: expected a port number, got true"),
        ("ports: [{published: 80, target: 80, protocol: [udp]}]", "ports[0].protocol: expected tcp or udp"),
        ('ports: "8080:80"', "ports: expected a list of ports"),
    ],
)
def test_bad_ports(body: str, message: str) -> None:
    with pytest.raises(ManifestError, match=r"^<string>:4: services\.web\.") as e:
        _service(body)
    assert message in str(e.value)


def test_commands() -> None:
    assert _service("command: sh -c 'echo \"a b\"; sleep 1'").command == ["sh", "-c", 'echo "a b"; sleep 1']
    assert _service("command: [sleep, 5, true]").command == ["sleep", "5", "true"]  # scalars as written
    assert _service("entrypoint: []").entrypoint == []  # clears the image's entrypoint
    assert _service("entrypoint: ''").entrypoint == []
    spec = _service("command: sleep 1")
    assert spec.entrypoint is None
    where = r"^<string>:4: services\.web\.command\[1\]: "
    with pytest.raises(ManifestError, match=where + "expected a string, got null"):
        _service("command: [sleep, null]")


def test_environment_and_labels_forms() -> None:
    listed = _service("environment: [A=1, B=x=y, C=]\nlabels: [a=1, b]")
    mapped = _service("environment: {A: 1, B: x=y, C: ''}\nlabels: {a: 1, b: null}")
    for spec in (listed, mapped):
        assert spec.env == ["A=1", "B=x=y", "C="]
        assert spec.labels == {"a": "1", "b": ""}
    # values keep their spelling: YAML 1.1 would read these as a bool and an octal int.
    assert _service("environment: {A: yes, B: 010, C: 0x1F}").env == ["A=yes", "B=010", "C=0x1F"]
    with pytest.raises(ManifestError, match=r"^<string>:4: services\.web\.environment\[0\]: invalid var"):
        _service("environment: ['=1']")


def test_defaults() -> None:
    spec = _service("")
    assert spec == ServiceSpec(name="web", image="busybox")


def test_compose_extras_are_ignored() -> None:
    text = (
        'version: "3.8"\n'
        "name: demo\n"
        "x-common: &common\n"
        "  image: busybox\n"
        "  environment: [A=1]\n"
        "services:\n"
        "  one:\n"
        "    <<: *common\n"
        "  two:\n"
        "    <<: *common\n"
        "    image: busybox:1.36\n"  # an explicit key overrides the merged one
    )
    one, two = parse_manifest(text)
    assert (one.image, one.env) == ("busybox", ["A=1"])
    assert (two.image, two.env) == ("busybox:1.36", ["A=1"])


def test_errors_in_merged_values_point_at_the_anchor() -> None:
    text = "x-d: &d\n  replicas: many\nservices:\n  web:\n    image: busybox\n    deploy: *d\n"
    with pytest.raises(ManifestError, match=r"^<string>:2: services\.web\.deploy\.replicas: .* got 'many'"):
        parse_manifest(text)


def test_positions_in_flow_and_block_styles() -> None:
    text = "services:\n  web: {image: busybox,\n    deploy: {replicas: 1, mode: [x]}}\n"
    with pytest.raises(ManifestError, match=r"^<string>:3: services\.web\.deploy\.mode: expected one of"):
        parse_manifest(text)


def test_several_services_keep_file_order() -> None:
    names = [f"s{i}" for i in range(20, 0, -1)]
    text = "services:\n" + "".join(f"  {n}:\n    image: busybox\n" for n in names)
    assert [spec.name for spec in parse_manifest(text)] == names


@pytest.mark.parametrize("name", ["web", "a", "web-1", "1web", "a" * 63])
def test_good_service_names(name: str) -> None:
    assert parse_manifest(f"services:\n  {name}:\n    image: busybox\n")[0].name == name


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web-", "web.front", "a" * 64, '""'])
def test_bad_service_names(name: str) -> None:
    with pytest.raises(ManifestError, match=r"^<string>:2: services.*invalid service name"):
        parse_manifest(f"services:\n  {name}:\n    image: busybox\n")
