"""Value spellings: quantities in Compose and Kubernetes notation, durations, ports,
constraints, environment and labels, and the YAML layer's positions; each
limit (model.units) at its edge; pids and storage_opt; the checks made at
deploy time rather than when a task starts."""

from __future__ import annotations

import pytest

from model.manifest import ManifestError, parse_manifest
from model.objects import NetworkAttachment, PortConfig, Resources, ServiceSpec
from model.units import MAX_REPLICAS

KI, MI, GI = 1024, 1024**2, 1024**3


def _service(body: str) -> ServiceSpec:
    """Parse one service named web whose keys (below image) are ``body``, indented 4."""
    lines = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    (spec,) = parse_manifest(f"services:\n  web:\n    image: busybox\n{lines}", stack="t")
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
        ("2000", "", "from 0.01 to 1024"),
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
        ("45m3s4ms", 2703.004),
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
     "node.platform.variant==v7", "engine.labels.a==b", "node.labels.zone===a", "node.name==a!=b"],
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
    assert spec == ServiceSpec(name="web", image="busybox", networks=[NetworkAttachment("t_default")])


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


# ---- limits: the largest and smallest values accepted ------------------------------------

def test_each_limit_itself_is_accepted() -> None:
    spec = _service(
        "stop_grace_period: 24h\n"
        "storage_opt: {size: 4096Pi}\n"
        "deploy:\n"
        "  replicas: 100000\n"
        "  resources:\n"
        "    limits: {cpus: 0.01, memory: 4096Pi, pids: 4194304}\n"
        "  restart_policy: {delay: 1h, window: 24h}\n"
        "  placement: {max_replicas_per_node: 100000}\n"
    )
    assert spec.replicas == MAX_REPLICAS
    assert spec.stop_grace_period == 86400.0
    assert (spec.restart_policy.delay, spec.restart_policy.window) == (3600.0, 86400.0)
    assert spec.limits == Resources(cpus=0.01, memory_bytes=2**62, pids=4_194_304)
    assert spec.storage_size == 2**62


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("deploy: {replicas: 100001}", "100001 is too large: at most 100000 replicas per service"),
        ("deploy: {placement: {max_replicas_per_node: 100001}}", "at most 100000"),
        ("deploy: {restart_policy: {max_attempts: 2147483648}}", "at most 2147483647"),
        ("stop_grace_period: 86401", "86401 is too long: at most 24h"),
        ("stop_grace_period: 24h1ns", "'24h1ns' is too long: at most 24h"),
        ("stop_grace_period: 1.0e+400", "expected a duration"),  # YAML's float: inf
        ("stop_grace_period: " + "9" * 400, "is too long: at most 24h"),  # an int beyond any float
        ('stop_grace_period: "5s "', "expected a duration"),
        ('stop_grace_period: "\u0665s"', "expected a duration"),
        ("deploy: {restart_policy: {delay: 3601}}", "at most 1h"),
        ("deploy: {restart_policy: {window: 25h}}", "at most 24h"),
        ("deploy: {resources: {limits: {memory: 4611686018427387905}}}", "at most 4096Pi"),
        ("deploy: {resources: {limits: {cpus: 0.009}}}", "from 0.01 to 1024"),
        ("deploy: {resources: {limits: {cpus: " + "9" * 400 + "}}}", "from 0.01 to 1024"),
        ("deploy: {resources: {limits: {cpus: '5m'}}}", "from 0.01 to 1024"),
        ("deploy: {resources: {reservations: {cpus: ' 1'}}}", "invalid cpu quantity ' 1'"),
        ("ports: ['80:80 ']", "is not a number"),
        ("ports: [{published: 80, target: '\u0668\u0660'}]", "is not a number"),
    ],
)
def test_values_beyond_the_limits_are_refused(body: str, message: str) -> None:
    with pytest.raises(ManifestError, match=r"^<string>:\d+: services\.web\.") as caught:
        _service(body)
    assert message in str(caught.value)


# ---- pids and storage_opt ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "pids"),
    [
        ("", 0),  # the node's default
        ("pids_limit: 100", 100),  # Compose's service-level key
        ("deploy: {resources: {limits: {pids: 100}}}", 100),  # Compose's deploy key
        ("pids_limit: 100\ndeploy: {resources: {limits: {pids: 100}}}", 100),  # both, agreeing
        ("pids_limit: -1", -1),  # unlimited
        ("deploy: {resources: {limits: {pids: -1, memory: 64Mi}}}", -1),
    ],
)
def test_pids_in_both_compose_spellings(body: str, pids: int) -> None:
    spec = _service(body)
    assert spec.limits.pids == pids
    assert spec.reservations.pids == 0


@pytest.mark.parametrize("value", ["-2", "1.5", "'100'", "true", "[1]"])
def test_bad_pids(value: str) -> None:
    with pytest.raises(ManifestError, match=r"^<string>:4: services\.web\.pids_limit: "):
        _service(f"pids_limit: {value}")


def test_storage_opt_size() -> None:
    assert _service("storage_opt: {size: 1G}").storage_size == GI
    assert _service("storage_opt: {size: 512Mi}").storage_size == 512 * MI
    assert _service("").storage_size == 0
    with pytest.raises(ManifestError, match=r"^<string>:4: services\.web\.storage_opt\.size: "):
        _service("storage_opt: {size: 0}")


# ---- image references, commands, environment and labels checked at deploy time ------------------

@pytest.mark.parametrize("image", ["busybox", "busybox:1.36", "library/app:v1.2_3", "a.b/c-d__e:x",
                                   "127.0.0.1:5000/site:1", "localhost/app", "registry.example/a/b:c",
                                   "127.0.0.1:5000/site@sha256:" + "a" * 64,
                                   "sha256:" + "0" * 64, "0123abcd"])
def test_good_image_references(image: str) -> None:
    assert parse_manifest(f"services:\n  web:\n    image: '{image}'\n")[0].image == image


@pytest.mark.parametrize("image", ["Busybox", "busybox:", "busybox@sha256:abc", "a//b", "-a", "busy box",
                                   "127.0.0.1:5000/Site:1", "127.0.0.1:5000/site:tag with space", ""])
def test_bad_image_references(image: str) -> None:
    with pytest.raises(ManifestError, match=r"^<string>:3: services\.web\.image: "):
        parse_manifest(f"services:\n  web:\n    image: '{image}'\n")


def test_command_may_not_be_empty_but_entrypoint_may() -> None:
    assert _service("entrypoint: []\ncommand: [sh]").entrypoint == []
    for body in ("command: []", "command: ''", "command: '   '"):
        with pytest.raises(ManifestError, match=r"services\.web\.command: the command is empty"):
            _service(body)
    with pytest.raises(ManifestError, match=r"services\.web\.entrypoint\[0\]: an argument holds a NUL"):
        _service('entrypoint: ["\\0"]')


def test_labels_near_the_reserved_prefix() -> None:
    assert _service("labels: [orchestra=1, my.orch.task=2, Orch.x=3]").labels == {
        "orchestra": "1", "my.orch.task": "2", "Orch.x": "3"}
    for key in ("orch.task", "orch.service", "orch.anything"):
        with pytest.raises(ManifestError, match="is reserved"):
            _service(f"labels: [{key}=1]")


def test_memory_takes_dockers_single_space() -> None:
    assert _limits(memory="64 MiB").limits.memory_bytes == 64 * MI
    with pytest.raises(ManifestError, match="invalid memory quantity"):
        _limits(memory="'64  MiB'")
