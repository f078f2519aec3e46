"""Compose's service keys: each accepted one lands in the ServiceSpec and in
the ContainerConfig the node's executor builds from it; each refused one is
one line naming the file, line, key and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controlplane.controllers.dependencies import held
from model.manifest import ManifestError, dump_manifest, parse_manifest, parse_stack
from model.objects import (
    Dependency,
    Mount,
    RestartPolicy,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    TaskStatus,
    Ulimit,
)
from model.wire import spec_from_pb, spec_to_pb
from nodeagent.cluster.executor import container_request
from proto import agent_pb2 as pb


def _manifest(service: str, top: str = "", replicas: str = "") -> str:
    body = "".join(f"    {line}\n" for line in service.strip("\n").split("\n")) if service else ""
    return f"name: demo\nservices:\n  web:\n    image: busybox\n{replicas}{body}{top}"


def _spec(service: str, top: str = "") -> ServiceSpec:
    (spec,) = parse_manifest(_manifest(service, top), "c.yaml")
    return spec


def _config(spec: ServiceSpec) -> pb.ContainerConfig:
    return container_request(Task(id="t1", service_id="s1", service_name=spec.name, slot=1, spec=spec))


ARCH = "node.labels.platform.arch=="
# (id, service keys, spec fields, ContainerConfig fields)
ACCEPTED: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("volume_named", "volumes: [data:/var/lib/data]\n",
     {"mounts": [Mount("volume", "/var/lib/data", "demo_data")]},
     {"mounts": [pb.MountConfig(type="volume", source="demo_data", target="/var/lib/data")]}),
    ("volume_bind_ro", "volumes: ['/srv/www:/usr/share/nginx/html:ro']",
     {"mounts": [Mount("bind", "/usr/share/nginx/html", "/srv/www", read_only=True)]},
     {"mounts": [pb.MountConfig(type="bind", source="/srv/www", target="/usr/share/nginx/html",
                                readonly=True)]}),
    ("volume_anonymous", "volumes: [/cache]", {"mounts": [Mount("volume", "/cache")]},
     {"mounts": [pb.MountConfig(type="volume", target="/cache")]}),
    ("volume_nocopy", "volumes: ['data:/d:ro,nocopy']",
     {"mounts": [Mount("volume", "/d", "demo_data", read_only=True, volume_nocopy=True)]},
     {"mounts": [pb.MountConfig(type="volume", source="demo_data", target="/d", readonly=True,
                                volume_nocopy=True)]}),
    ("volume_long", "volumes:\n- {type: volume, source: data, target: /d, volume: {nocopy: true}}\n"
     "- {type: tmpfs, target: /scratch, tmpfs: {size: 16m, mode: 1770}}",
     {"mounts": [Mount("volume", "/d", "demo_data", volume_nocopy=True),
                 Mount("tmpfs", "/scratch", tmpfs_size=16 << 20, tmpfs_mode=0o1770)]},
     {"mounts": [pb.MountConfig(type="volume", source="demo_data", target="/d", volume_nocopy=True),
                 pb.MountConfig(type="tmpfs", target="/scratch", tmpfs_size=16 << 20, tmpfs_mode=0o1770)]}),
    ("tmpfs", "tmpfs: ['/run:size=64m,mode=755', /tmp]",
     {"mounts": [Mount("tmpfs", "/run", tmpfs_size=64 << 20, tmpfs_mode=0o755), Mount("tmpfs", "/tmp")]},
     {"mounts": [pb.MountConfig(type="tmpfs", target="/run", tmpfs_size=64 << 20, tmpfs_mode=0o755),
                 pb.MountConfig(type="tmpfs", target="/tmp")]}),
    ("container_name", "container_name: db1", {"container_name": "db1"}, {"name": "db1"}),
    ("hostname", "hostname: db.local", {"hostname": "db.local"}, {"hostname": "db.local"}),
    ("user", "user: '1000:1000'", {"user": "1000:1000"}, {"user": "1000:1000"}),
    ("user_number", "user: 999", {"user": "999"}, {"user": "999"}),
    ("working_dir", "working_dir: /app", {"working_dir": "/app"}, {"workdir": "/app"}),
    ("stop_signal", "stop_signal: QUIT", {"stop_signal": "SIGQUIT"}, {"stop_signal": "SIGQUIT"}),
    ("read_only", "read_only: true", {"read_only": True}, {"read_only": True}),
    ("init", "init: true", {"init": True}, {"init": True}),
    ("tty", "tty: true", {"tty": True}, {"tty": True}),
    ("stdin_open", "stdin_open: true", {"stdin_open": True}, {"stdin_open": True}),
    ("privileged", "privileged: true", {"privileged": True}, {"privileged": True}),
    ("cap_add", "cap_add: [NET_ADMIN, CAP_SYS_TIME]", {"cap_add": ["NET_ADMIN", "CAP_SYS_TIME"]},
     {"cap_add": ["NET_ADMIN", "CAP_SYS_TIME"]}),
    ("cap_drop", "cap_drop: [ALL]", {"cap_drop": ["ALL"]}, {"cap_drop": ["ALL"]}),
    ("devices", "devices: [/dev/fuse, '/dev/sda:/dev/xvda:r']\nx-orch: {devices: true}",
     {"devices": ["/dev/fuse", "/dev/sda:/dev/xvda:r"]},
     {"devices": ["/dev/fuse", "/dev/sda:/dev/xvda:r"]}),
    ("sysctls_map", "sysctls: {net.core.somaxconn: 1024}", {"sysctls": {"net.core.somaxconn": "1024"}},
     {"sysctls": {"net.core.somaxconn": "1024"}}),
    ("sysctls_list", "sysctls: [net.ipv4.ip_forward=1]", {"sysctls": {"net.ipv4.ip_forward": "1"}},
     {"sysctls": {"net.ipv4.ip_forward": "1"}}),
    ("ulimits", "ulimits: {nproc: 65535, nofile: {soft: 20000, hard: 40000}}",
     {"ulimits": [Ulimit("nproc", 65535, 65535), Ulimit("nofile", 20000, 40000)]},
     {"ulimits": [pb.Ulimit(name="nproc", soft=65535, hard=65535), pb.Ulimit(name="nofile", soft=20000,
                                                                            hard=40000)]}),
    ("dns_one", "dns: 1.1.1.1", {"dns": ["1.1.1.1"]}, {"dns": ["1.1.1.1"]}),
    ("dns_list", "dns: [8.8.8.8, '2001:4860:4860::8888']", {"dns": ["8.8.8.8", "2001:4860:4860::8888"]},
     {"dns": ["8.8.8.8", "2001:4860:4860::8888"]}),
    ("extra_hosts", "extra_hosts: ['db.local:10.0.0.5', 'v6=::1']",
     {"extra_hosts": ["db.local:10.0.0.5", "v6:::1"]},
     {"extra_hosts": ["db.local:10.0.0.5", "v6:::1"]}),
    ("extra_hosts_map", "extra_hosts: {db.local: 10.0.0.5}", {"extra_hosts": ["db.local:10.0.0.5"]},
     {"extra_hosts": ["db.local:10.0.0.5"]}),
    ("shm_size", "shm_size: 256m", {"shm_size": 256 << 20}, {"shm_size": 256 << 20}),
    ("logging", "logging: {driver: json-file, options: {max-size: 10m, max-file: '3'}}",
     {"log_max_size": 10 << 20, "log_max_files": 3}, {"log_max_size": 10 << 20, "log_max_files": 3}),
    ("logging_local", "logging: {driver: local}", {"log_max_size": 0}, {"log_max_size": 0}),
    ("network_host", "network_mode: host", {"network_mode": "host", "networks": []}, {"network": "host"}),
    ("network_none", "network_mode: none", {"network_mode": "none", "networks": []}, {"network": "none"}),
    ("network_bridge", "network_mode: bridge", {"network_mode": "", "networks": []}, {"network": "bridge"}),
    ("mem_limit_cpus", "mem_limit: 512m\ncpus: 0.5\nmem_reservation: 128m",
     {}, {"memory_bytes": 512 << 20, "cpus": 0.5}),
    ("restart_no", "restart: 'no'", {"restart_policy": RestartPolicy(condition="none")}, {}),
    ("restart_bare_no", "restart: no", {"restart_policy": RestartPolicy(condition="none")}, {}),
    ("restart_always", "restart: always", {"restart_policy": RestartPolicy(condition="any")}, {}),
    ("restart_unless_stopped", "restart: unless-stopped", {"restart_policy": RestartPolicy(condition="any")},
     {}),
    ("restart_on_failure", "restart: on-failure:3",
     {"restart_policy": RestartPolicy(condition="on-failure", max_attempts=3)}, {}),
    ("restart_deploy_wins", "restart: 'no'\ndeploy: {restart_policy: {condition: on-failure}}",
     {"restart_policy": RestartPolicy(condition="on-failure")}, {}),
    ("platform", "platform: linux/amd64", {"placement.constraints": [ARCH + "amd64"]}, {}),
    ("platform_arm", "platform: linux/arm/v7", {"placement.constraints": [ARCH + "arm/v7"]}, {}),
    ("platform_aarch64", "platform: linux/aarch64", {"placement.constraints": [ARCH + "arm64"]}, {}),
    ("runtime", "runtime: runc", {}, {}),
    ("expose", "expose: ['3000', 8000-8010/udp]", {}, {}),
    ("labels", "labels: {com.example.tier: front}", {"labels": {"com.example.tier": "front"}},
     {"labels": {"com.example.tier": "front", "orch.task": "t1", "orch.service": "web"}}),
    ("build_with_image", "build: .", {"image": "busybox"}, {"image": "busybox"}),
    ("build_long_with_image", "build: {context: ./app, dockerfile: Dockerfile.prod}", {"image": "busybox"},
     {}),
    ("x_extension", "x-notes: {owner: ops}", {}, {}),
]


@pytest.mark.parametrize(("service", "fields", "config"), [c[1:] for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_key_is_accepted_and_mapped(service: str, fields: dict[str, Any], config: dict[str, Any]) -> None:
    spec = _spec(service, top="volumes:\n  data:\n" if "data" in service else "")
    for name, value in fields.items():
        target: Any = spec
        for part in name.split("."):
            target = getattr(target, part)
        assert target == value, name
    cfg = _config(spec)
    for name, value in config.items():
        got = getattr(cfg, name)
        plain = dict(got) if isinstance(value, dict) else list(got) if isinstance(value, list) else got
        assert plain == value, name


def test_service_level_limits_are_deploys() -> None:
    spec = _spec("mem_limit: 512m\ncpus: 0.5\nmem_reservation: 128m")
    assert (spec.limits.memory_bytes, spec.limits.cpus, spec.reservations.memory_bytes) == (512 << 20, 0.5,
                                                                                         128 << 20)
    same = _spec("mem_limit: 512m\ndeploy: {resources: {limits: {memory: 512Mi}}}")
    assert same.limits.memory_bytes == 512 << 20


def test_version_is_the_only_key_ignored() -> None:
    spec = _spec("", top="version: '3.8'\n")
    assert spec == _spec("")


def test_named_volumes_are_per_stack_unless_external_or_named() -> None:
    top = ("volumes:\n  data:\n  shared: {external: true}\n  other: {external: true, name: pgdata}\n"
           "  mine: {name: x1}\n")
    spec = _spec("volumes: [data:/a, shared:/b, other:/c, mine:/d]", top)
    assert [m.source for m in spec.mounts] == ["demo_data", "shared", "pgdata", "x1"]


def test_profiles_select_services() -> None:
    text = ("name: demo\nservices:\n  web:\n    image: busybox\n  debug:\n    image: busybox\n"
            "    profiles: [debug]\n")
    assert [s.name for s in parse_stack(text, "c.yaml").services] == ["web"]
    assert [s.name for s in parse_stack(text, "c.yaml", profiles=["debug"]).services] == ["web", "debug"]


def test_extends_within_the_file() -> None:
    text = ("name: demo\nx-base: &base\n  restart: always\nservices:\n"
            "  base:\n    image: busybox\n    environment: {A: '1'}\n    cap_add: [NET_ADMIN]\n    "
            "<<: *base\n"
            "  web:\n    extends: base\n    environment: {B: '2'}\n    cap_add: [SYS_TIME]\n"
            "  api:\n    extends: {service: web}\n    image: busybox:1.36\n")
    _, web, api = parse_manifest(text, "c.yaml")
    assert web.image == "busybox" and web.env == ["A=1", "B=2"] and web.cap_add == ["NET_ADMIN", "SYS_TIME"]
    assert api.image == "busybox:1.36" and api.env == web.env and api.restart_policy.condition == "any"


def test_depends_on_both_forms() -> None:
    text = ("name: demo\nservices:\n  db:\n    image: busybox\n  cache:\n    image: busybox\n"
            "  web:\n    image: busybox\n    depends_on: [db, cache]\n"
            "  api:\n    image: busybox\n    depends_on:\n      db: {condition: service_healthy}\n"
            "      gone: {condition: service_started, required: false}\n")
    _, _, web, api = parse_manifest(text, "c.yaml")
    assert web.depends_on == [Dependency("db"), Dependency("cache")]
    assert api.depends_on == [Dependency("db", "service_healthy")]


def test_new_keys_round_trip_through_the_dump() -> None:
    text = _manifest("volumes: [data:/a, '/srv:/b:ro', /c]\ntmpfs: /run:size=1m\ncap_add: [NET_ADMIN]\n"
                     "ulimits: {nofile: {soft: 1, hard: 2}}\nsysctls: {net.core.somaxconn: 1}\n"
                     "logging: {options: {max-size: 1m, max-file: 2}}\nuser: '1'\nworking_dir: "
                     "/w\ninit: true\n"
                     "restart: on-failure:2\nplatform: linux/arm64\nnetwork_mode: "
                     "host\nextra_hosts: [a:1.2.3.4]\n"
                     "shm_size: 1g\nhostname: h\nstop_signal: SIGINT\ncontainer_name: c1",
                     top="volumes:\n  data:\n")
    specs = parse_manifest(text, "c.yaml")
    assert parse_manifest(dump_manifest(specs)) == specs


def test_every_container_setting_travels_with_the_task() -> None:
    spec = _spec("volumes: [/a, 'vol:/b:ro', '/srv:/c']\ntmpfs: /d\ncap_add: [ALL]\ncap_drop: [NET_RAW]\n"
                 "logging: {options: {max-file: 2, max-size: 1m}}\nulimits: {nofile: {soft: 10, hard: 20}}\n"
                 "sysctls: {net.core.somaxconn: 1024}\ndns: [10.0.0.2]\nextra_hosts: ['db:10.0.0.3']\n"
                 "init: true\ntty: true\nstdin_open: true\nshm_size: 1m\nhostname: h\nuser: '1000'\n"
                 "working_dir: /w\nstop_signal: SIGINT\nread_only: true\nnetwork_mode: host",
                 top="volumes:\n  vol:\n")
    assert spec_from_pb(spec_to_pb(spec)) == spec
    assert spec.mounts and spec.ulimits and spec.cap_add and spec.log_max_files == 2


WHERE = "c.yaml:5: services.web."
# (id, service keys, the one-line error)
REFUSED: list[tuple[str, str, str]] = [
    ("bind_relative", "volumes: ['./html:/usr/share/nginx/html']",
     WHERE + "volumes[0]: bind source './html' is a relative path: a cluster node has no project "
         "directory; give "
     "an absolute path on the node, or use a named volume"),
    ("volume_undefined", "volumes: [cache:/c]",
     WHERE + "volumes[0]: undefined volume 'cache': define it under the top-level 'volumes:' (a "
         "path on the node "
     "starts with '/')"),
    ("volume_selinux", "volumes: ['/srv:/srv:z']",
     WHERE + "volumes[0]: volume option 'z' is not supported by orch: its nodes do not relabel "
         "files for SELinux"),
    ("volume_type", "volumes: [{type: npipe, source: x, target: /x}]",
     WHERE + "volumes[0].type: volume type 'npipe' is not supported by orch: expected volume, bind or tmpfs"),
    ("volume_bind_options", "volumes: [{type: bind, source: /x, target: /x, bind: {propagation: shared}}]",
     WHERE + "volumes[0].bind: bind options (propagation, create_host_path, selinux) are not "
         "supported by orch: "
     "a bind mount is private, and its source must exist on the node"),
    ("runtime", "runtime: nvidia",
     WHERE + "runtime: runtime 'nvidia' is not supported by orch: a node runs containers with its "
         "own runtime "
     "only (runc, orch-native); GPU runtimes are not available"),
    ("network_mode_service", "network_mode: 'service:db'",
     WHERE + "network_mode: network_mode 'service:db' is not supported by orch: tasks of two "
         "services may run on "
     "different nodes, so one cannot join the other's network namespace; put both on a network"),
    ("network_mode_container", "network_mode: 'container:abc'",
     WHERE + "network_mode: network_mode 'container:abc' is not supported by orch: tasks of two "
         "services may run "
     "on different nodes, so one cannot join the other's network namespace; put both on a network"),
    ("platform_windows", "platform: windows/amd64",
     WHERE + "platform: platform 'windows/amd64' is not supported by orch: its nodes run Linux "
         "containers only"),
    ("logging_driver", "logging: {driver: syslog}",
     "c.yaml:5: services.web.logging.driver: logging driver 'syslog' is not supported by orch: a "
     "node keeps each "
     "task's output in rotated files, read by 'orch logs' (json-file, local: max-size, max-file)"),
    ("logging_option", "logging: {options: {compress: 'true'}}",
     "c.yaml:5: services.web.logging.options.compress: logging option 'compress' is not supported by orch: "
     "expected max-size or max-file"),
    ("devices_by_default", "devices: [/dev/fuse]",
     WHERE + "devices: devices are refused in a cluster service by default: a task may run on any node, "
     "and a node's devices are its own; allow them with x-orch: {devices: true}, with a placement "
     "constraint to the nodes that have them"),
    ("env_file_unsent", "env_file: .env",
     WHERE + "env_file: env file .env was not sent: `orch deploy` and `orch plan` read it next to the "
     "manifest (required: false makes it optional)"),
    ("env_file_format", "env_file: [{path: .env, format: raw}]",
     WHERE + "env_file[0].format: env_file format is not supported: files are read in Compose's default "
     "format"),
    ("extends_file", "extends: {file: common.yml, service: base}",
     WHERE + "extends.file: extends.file is not supported by orch: the control plane reads one "
         "manifest; copy the "
     "service into this file, or use a YAML anchor"),
    ("extends_unknown", "extends: base",
     WHERE + "extends: extends unknown service 'base': extends takes a service of this file"),
    ("depends_on_unknown", "depends_on: [db]", WHERE + "depends_on[0]: depends on unknown service 'db'"),
    ("depends_on_restart", "depends_on: {web: {restart: true}}",
     WHERE + "depends_on.web.restart: restart: true is not supported by orch: a service's tasks are not "
     "restarted when a dependency's are; make the service reconnect"),
    ("depends_on_self", "depends_on: [web]", WHERE + "depends_on[0]: a service cannot depend on itself"),
    ("depends_on_condition", "depends_on: {web: {condition: service_ready}}",
     WHERE + "depends_on.web.condition: expected one of service_started, service_healthy, "
     "service_completed_successfully, got 'service_ready'"),
    ("restart_value", "restart: sometimes",
     WHERE + "restart: expected no, always, on-failure[:N] or unless-stopped, got 'sometimes'"),
    ("mem_limit_disagrees", "mem_limit: 1g\ndeploy: {resources: {limits: {memory: 2g}}}",
     WHERE + "mem_limit: mem_limit disagrees with deploy.resources.limits.memory (line 6); set one of them"),
    ("extra_hosts_gateway", "extra_hosts: ['host.docker.internal:host-gateway']",
     WHERE + "extra_hosts[0]: host-gateway is not supported by orch: a task's node has no single "
         "gateway address "
     "on its networks; give the address"),
    ("ports_with_host_network", "network_mode: host\nports: ['80:80']",
     "c.yaml:6: services.web.ports: ports cannot be published with network_mode host: the task "
     "answers on the "
     "node's own ports already"),
    ("links", "links: [db]", WHERE + "links: 'links' is not supported by orch: services reach each "
        "other by name "
     "on their networks"),
    ("sysctl_name", "sysctls: {somaxconn: 1}",
     WHERE + "sysctls.somaxconn: invalid sysctl 'somaxconn': expected a dotted name such as "
         "net.core.somaxconn"),
    ("ulimit_name", "ulimits: {files: 1}", WHERE + "ulimits.files: unknown ulimit 'files' (did you "
        "mean 'nofile'?)"),
    ("stop_signal", "stop_signal: SIGFOO",
     WHERE + "stop_signal: unknown signal 'SIGFOO': expected a name such as SIGTERM, SIGINT or SIGQUIT, or a "
     "number"),
    ("x_orch_typo", "x-orhc: {binpack: true}", WHERE + "x-orhc: unknown key 'x-orhc' (did you mean "
        "'x-orch'?)"),
]


@pytest.mark.parametrize(("service", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_key_is_refused_with_one_line(service: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(service), "c.yaml")
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("name: demo\nservices:\n  web:\n    build: .\n",
     "c.yaml:4: services.web.build: the service has a build but no image: deploy it with 'orch "
     "deploy --build', "
     "which builds the image first, or give the service an 'image'"),
    ("name: demo\nservices:\n  web:\n    image: busybox\n    container_name: web\n    deploy: "
        "{replicas: 2}\n",
     "c.yaml:5: services.web.container_name: container_name names one container, but 2 replicas: "
     "leave it out "
     "(tasks are named after the service) or run one replica"),
    ("name: demo\nservices:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n"
     "    depends_on: [a]\n",
     "c.yaml:8: services.b.depends_on: depends_on makes a cycle: a -> b -> a"),
    ("name: demo\nservices:\n  a:\n    image: busybox\n    extends: b\n  b:\n    image: busybox\n"
     "    extends: a\n",
     "c.yaml:8: services.b.extends: extends makes a cycle: a -> b -> a"),
    ("name: demo\nservices:\n  web:\n    image: busybox\n    depends_on: [dbg]\n  dbg:\n    image: busybox\n"
     "    profiles: [debug]\n",
     "c.yaml:5: services.web.depends_on[0]: depends on 'dbg', which is not deployed: activate one "
     "of its profiles "
     "(debug) with --profile, or set required: false"),
    ("name: demo\nservices:\n  web:\n    image: busybox\n    profiles: [debug]\n",
     "c.yaml:1: services: no service to deploy: every service has profiles and none is active; give "
     "--profile "
     "(debug)"),
    ("name: demo\nservices:\n  web:\n    image: busybox\n    volumes: [v:/v]\nvolumes:\n  v: "
        "{driver_opts: {}}\n",
     "c.yaml:7: volumes.v.driver_opts: 'driver_opts' is not supported by orch: a node's volume is a "
     "directory of "
     "its own, without options"),
])
def test_stack_rules_are_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "c.yaml")
    assert str(caught.value) == message


def _task(task_id: str, service: Service, state: TaskState = TaskState.PENDING, health: str = "",
          exit_code: int = 0) -> Task:
    return Task(id=task_id, service_id=service.id, service_name=service.spec.name, slot=1, spec=service.spec,
                status=TaskStatus(state=state, health=health, exit_code=exit_code))


@pytest.mark.parametrize(("condition", "state", "health", "exit_code", "waits"), [
    ("service_started", TaskState.PENDING, "", 0, "waiting for db to start (depends_on)"),
    ("service_started", TaskState.RUNNING, "", 0, ""),
    ("service_healthy", TaskState.RUNNING, "starting", 0, "waiting for db to be healthy (depends_on)"),
    ("service_healthy", TaskState.RUNNING, "healthy", 0, ""),
    ("service_completed_successfully", TaskState.FAILED, "", 1,
     "waiting for db to complete successfully (depends_on)"),
    ("service_completed_successfully", TaskState.COMPLETE, "", 0, ""),
])
def test_a_first_start_waits_for_its_dependencies(condition: str, state: TaskState, health: str,
                                                  exit_code: int, waits: str) -> None:
    db = Service("s-db", ServiceSpec("db", "busybox"))
    web = Service("s-web", ServiceSpec("web", "busybox", depends_on=[Dependency("db", condition)]))  # type: ignore[arg-type]
    first = _task("w1", web)
    tasks = [_task("d1", db, state, health, exit_code), first]
    assert held([db, web], tasks, [first]) == ({"w1": waits} if waits else {})
    # Once a task of the service has been on a node, its later ones go at once.
    ran = _task("w0", web, TaskState.FAILED)
    ran.status.container_id = "c0"
    assert held([db, web], [*tasks, ran], [first]) == {}
    # A dependency not deployed holds it too.
    assert held([web], [first], [first]) == {"w1": "waiting for service db (depends_on), which is "
        "not deployed"}


def test_profiles_and_env_files_travel_in_the_deploy_request(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    """`orch deploy|plan --profile P` (else $COMPOSE_PROFILES) and the env files next to the
    manifest, read by the CLI (a bare NAME takes its shell's value), parsed by the control plane."""
    from controlplane.api import deploy
    from orch.cli.client import CLIError
    from orch.cli.common import profiles
    from orch.cli.pbwire import encode_deploy_request
    from orch.cli.secretcmd import manifest_env_files
    from proto import cluster_pb2 as cpb

    monkeypatch.delenv("COMPOSE_PROFILES", raising=False)
    assert profiles([]) == []
    assert profiles(["debug", "a,b"]) == ["debug", "a", "b"]
    monkeypatch.setenv("COMPOSE_PROFILES", "ops, dev")
    assert profiles([]) == ["ops", "dev"]
    monkeypatch.setenv("FROM_SHELL", "s")
    monkeypatch.delenv("NOT_SET", raising=False)
    (tmp_path / "app.env").write_text("# comment\nexport A=1\nB='two words' \nC=\"x\\ny\" # note\n"
                                      "D=plain # cut\nFROM_SHELL\nNOT_SET\n")
    text = ("services:\n  web:\n    image: busybox\n"
            "    env_file: [app.env, {path: gone.env, required: false}]\n    environment: [D=wins]\n")
    manifest = tmp_path / "compose.yaml"
    manifest.write_text(text)
    sent = manifest_env_files(text, str(manifest))
    assert [path for path, _ in sent] == ["app.env"]
    request = cpb.DeployRequest.FromString(encode_deploy_request(
        text, "compose.yaml", stack="s", profiles=["ops"], env_files=sent))
    assert list(request.profiles) == ["ops"]
    [web] = parse_stack(request.manifest, "compose.yaml", "s", list(request.profiles),
                        deploy._env_files(request)).services
    assert web.env == ["A=1", "B=two words", "C=x\ny", "FROM_SHELL=s", "D=wins"]
    (tmp_path / "bad.env").write_text("OK=1\nnot a variable\n")
    with pytest.raises(CLIError, match=r"^bad\.env:2: invalid variable 'not a variable'"):
        manifest_env_files("services:\n  web:\n    env_file: bad.env\n", str(manifest))


def test_a_built_image_replaces_a_build_sections_image(tmp_path: Path) -> None:
    """`orch deploy --build`: the CLI reads each build: and sends what it pushed, pinned."""
    from orch.cli.deploybuild import builds
    from orch.cli.pbwire import encode_deploy_request
    from proto import cluster_pb2 as cpb

    text = ("services:\n  web:\n"
            "    build: {context: ctx, dockerfile: Web.file, args: [A=1, B], target: run}\n"
            "  db:\n    image: busybox\n    build: db\n  plain:\n    image: busybox\n")
    manifest = tmp_path / "compose.yaml"
    found = builds(text, str(manifest))
    assert [(b.service, b.context, b.containerfile, b.target) for b in found] == [
        ("web", str(tmp_path / "ctx"), str(tmp_path / "ctx" / "Web.file"), "run"),
        ("db", str(tmp_path / "db"), "", "")]
    assert found[0].args["A"] == "1" and "B" in found[0].args
    pinned = {"web": "reg:5000/s/web@sha256:" + "a" * 64, "db": "reg:5000/s/db@sha256:" + "b" * 64}
    request = cpb.DeployRequest.FromString(encode_deploy_request(text, "compose.yaml", stack="s",
                                                                 built=pinned))
    assert dict(request.built_images) == pinned
    web, db, plain = parse_stack(request.manifest, "compose.yaml", "s",
                                 built=dict(request.built_images)).services
    assert (web.image, db.image, plain.image) == (pinned["web"], pinned["db"], "busybox")
    with pytest.raises(ManifestError, match="an image was built for a service without 'build'"):
        parse_stack(text, "compose.yaml", "s", built={**pinned, "plain": pinned["web"]})
