"""Docker's host options of `orch run` without an agent: the CLI's reading
of --ulimit and --env-file, capability arithmetic (Docker's rules), the
agent's checks of every value (one clear InvalidArgument naming the flag),
the spec's records old and new, PID 1's plan entries, the devices cgroup's
writes (v1); on cgroup v2 --device passes (an eBPF program decides there:
tests/runtime/test_cgroups_v2_devices.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from common.errors import InvalidArgument
from nodeagent.agent import specbuild
from nodeagent.runtime import capabilities, init
from nodeagent.runtime.cgroups import V1Driver
from nodeagent.runtime.spec import (
    ALL_DEVICES_RULE,
    DEFAULT_CAPABILITIES,
    DEFAULT_DEVICE_RULES,
    ContainerSpec,
    Device,
    ProcessSpec,
    Resources,
    Rlimit,
    RootfsSpec,
)
from orch.cli import runcmd
from orch.cli.client import CLIError
from proto import agent_pb2 as pb

# ---- the CLI -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    ("nofile=1024", ("nofile", 1024, 1024)),
    ("nofile=1024:2048", ("nofile", 1024, 2048)),
    ("core=unlimited", ("core", -1, -1)),
    ("stack=8192:-1", ("stack", 8192, -1)),
    ("memlock=0:unlimited", ("memlock", 0, -1)),
])
def test_ulimits_read_as_docker_reads_them(text: str, want: tuple[str, int, int]) -> None:
    assert runcmd.parse_ulimit(text) == dict(zip(("name", "soft", "hard"), want, strict=True))


@pytest.mark.parametrize(("text", "message"), [
    ("nofile", "expected NAME=SOFT[:HARD]"),
    ("files=1", "NAME one of: core"),
    ("nofile=lots", "a limit is a number, or unlimited"),
    ("nofile=-2", "a limit is a number"),
    ("nofile=1:2:3", "expected NAME=SOFT[:HARD]"),
    ("nofile=2048:1024", "the soft limit must not exceed the hard one"),
    ("nofile=unlimited:1024", "the soft limit must not exceed the hard one"),
])
def test_bad_ulimits_name_the_flag(text: str, message: str) -> None:
    with pytest.raises(CLIError, match=f"invalid --ulimit '{re.escape(text)}'.*{re.escape(message)}"):
        runcmd.parse_ulimit(text)


def test_env_files_read_as_docker_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_SHELL", "shell value")
    monkeypatch.delenv("NOT_SET", raising=False)
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    first.write_text("# a comment\n\n  A=1\nB= spaced value \nQ=\"kept quotes\"\nFROM_SHELL\nNOT_SET\n"
                     "EMPTY=\nEQ=a=b\n")
    second.write_text("A=2\n")
    assert runcmd.read_env_files([str(first), str(second)]) == [
        "A=1", "B= spaced value ", "Q=\"kept quotes\"", "FROM_SHELL=shell value", "EMPTY=", "EQ=a=b", "A=2"]


@pytest.mark.parametrize(("content", "line"), [("A=1\n=x\n", 2), ("OK=1\n\nBAD KEY=1\n", 3)])
def test_bad_env_file_lines_name_file_and_line(tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "bad.env"
    path.write_text(content)
    with pytest.raises(CLIError, match=f"^{path}:{line}: invalid variable"):
        runcmd.read_env_files([str(path)])


def test_env_file_values_come_before_e_and_options_reach_the_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "f.env"
    path.write_text("A=file\nB=file\n")
    values = runcmd.parse_quick(["--env-file", str(path), "-e", "A=flag", "--privileged", "--init",
                                 "--cap-add", "net_admin", "--ulimit", "nofile=10:20", "--dns", "10.0.0.53",
                                 "--add-host", "db:10.0.0.5", "--device", "/dev/zero", "--sysctl",
                                 "net.ipv4.ip_forward=1", "--shm-size", "1m", "img"])
    assert values is not None
    c = runcmd.config_fields(values)
    assert c["env"] == ["A=file", "B=file", "A=flag"]  # the agent's merge: the last one wins
    cfg = pb.ContainerConfig.FromString(runcmd.encode_config(c))
    assert (list(cfg.cap_add), cfg.init, cfg.privileged, list(cfg.dns), list(cfg.extra_hosts)) == (
        ["net_admin"], True, True, ["10.0.0.53"], ["db:10.0.0.5"])
    assert [(u.name, u.soft, u.hard) for u in cfg.ulimits] == [("nofile", 10, 20)]
    assert (list(cfg.devices), dict(cfg.sysctls), cfg.shm_size) == (
        ["/dev/zero"], {"net.ipv4.ip_forward": "1"}, 1 << 20)
    assert "warning: --privileged" in capsys.readouterr().err


# ---- capabilities -----------------------------------------------------------


@pytest.mark.parametrize(("add", "drop", "want"), [
    ([], [], list(DEFAULT_CAPABILITIES)),
    (["net_admin"], ["CAP_CHOWN", "kill"],
     [c for c in DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_KILL")] + ["CAP_NET_ADMIN"]),
    (["NET_RAW"], ["NET_RAW"],  # dropped, then added: Docker's order
     [c for c in DEFAULT_CAPABILITIES if c != "CAP_NET_RAW"] + ["CAP_NET_RAW"]),
    ([], ["all"], []),
    (["SYS_PTRACE"], ["ALL"], ["CAP_SYS_PTRACE"]),
    (["ALL"], ["MKNOD"], [c for c in capabilities.all_capabilities() if c != "CAP_MKNOD"]),
])
def test_capabilities_follow_dockers_rules(add: list[str], drop: list[str], want: list[str]) -> None:
    assert list(capabilities.tweak(DEFAULT_CAPABILITIES, add, drop)) == want


def test_unknown_capabilities_name_the_flag() -> None:
    with pytest.raises(InvalidArgument, match="invalid --cap-add 'FLY': unknown capability"):
        capabilities.tweak(DEFAULT_CAPABILITIES, ["FLY"], [])
    with pytest.raises(InvalidArgument, match="invalid --cap-drop 'CAP_'"):
        capabilities.tweak(DEFAULT_CAPABILITIES, [], ["CAP_"])


# ---- the agent's checks --------------------------------------------------------


def _host(**fields: Any) -> specbuild.HostOptions:
    network = fields.pop("network", "bridge")
    return specbuild.host_options(pb.ContainerConfig(**fields), network)


def test_host_options_become_the_specs() -> None:
    host = _host(ulimits=[pb.Ulimit(name="nofile", soft=10, hard=20),
                          pb.Ulimit(name="core", soft=-1, hard=-1)],
                 dns=["10.0.0.53", "fd00::1"], extra_hosts=["db:10.0.0.5", "v6:fd00::5", "e=10.0.0.6"],
                 devices=["/dev/zero:/dev/z:r", "/dev/null:rw"], sysctls={"kernel.shmmax": "1"},
                 shm_size=1 << 20, init=True)
    assert host.rlimits == (Rlimit("RLIMIT_NOFILE", 10, 20), Rlimit("RLIMIT_CORE", -1, -1))
    assert host.extra_hosts == [("db", "10.0.0.5"), ("v6", "fd00::5"), ("e", "10.0.0.6")]
    assert [(d.path, d.kind, d.major, d.minor, d.permissions) for d in host.devices] == [
        ("/dev/z", "c", 1, 5, "r"), ("/dev/null", "c", 1, 3, "rw")]
    assert (host.dns, host.sysctls, host.shm_size, host.init, host.privileged) == (
        ["10.0.0.53", "fd00::1"], {"kernel.shmmax": "1"}, 1 << 20, True, False)
    assert host.capabilities == DEFAULT_CAPABILITIES


def test_privileged_is_every_capability_and_host_device() -> None:
    host = _host(privileged=True, cap_drop=["chown"], devices=["/dev/zero:/dev/z"])
    assert host.capabilities == capabilities.all_capabilities()
    paths = {d.path for d in host.devices}
    assert "/dev/z" in paths and "/dev/null" not in paths  # every container has its own /dev/null
    with pytest.raises(InvalidArgument, match="invalid capability 'nope'"):
        _host(privileged=True, cap_add=["nope"])


@pytest.mark.parametrize(("fields", "message"), [
    ({"ulimits": [pb.Ulimit(name="files", soft=1, hard=1)]}, "invalid --ulimit 'files=1:1': unknown name"),
    ({"ulimits": [pb.Ulimit(name="nproc", soft=5, hard=4)]}, "soft limit must not exceed"),
    ({"ulimits": [pb.Ulimit(name="nproc", soft=-2, hard=4)]}, "0 or more, or -1"),
    ({"ulimits": [pb.Ulimit(name="nofile", soft=1, hard=-1)]}, "fs.nr_open"),
    ({"dns": ["localhost"]}, "invalid --dns 'localhost': expected an IPv4 or IPv6 address"),
    ({"extra_hosts": ["-bad:10.0.0.1"]}, "invalid --add-host '-bad:10.0.0.1'"),
    ({"extra_hosts": ["db:"]}, "invalid --add-host 'db:'"),
    ({"extra_hosts": ["gw:host-gateway"], "network": "none"}, "host-gateway needs a bridge network"),
    ({"devices": ["/dev/zero:/dev/z:rwx"]}, "permissions are letters of rwm"),
    ({"devices": ["/dev/zero:/dev/../etc/z"]}, "normalised path under /dev/"),
    ({"devices": ["/dev/zero:/dev/a\tb"]}, "normalised path under /dev/"),
    ({"devices": ["/dev/missing-thing"]}, "invalid --device '/dev/missing-thing': /dev/missing-thing: No"),
    ({"devices": ["/dev:/dev/x"]}, "/dev is not a character or block device"),
    ({"devices": [""]}, "expected HOST"),
    ({"sysctls": {"kernel.domainname": "x"}}, "not a namespaced sysctl"),
    ({"sysctls": {"vm.swappiness": "1"}}, "not a namespaced sysctl"),
    ({"sysctls": {"net/ipv4/ip_forward": "1"}}, "expected a name such as"),
    ({"sysctls": {"net.ipv4.ip_forward": "1\n2"}}, "one-line value"),
    ({"sysctls": {"net.ipv4.ip_forward": ""}}, "one-line value"),
    ({"sysctls": {"net.ipv4.ip_forward": "1"}, "network": "host"}, "net.* sysctls are the node's"),
    ({"shm_size": -1}, "invalid --shm-size -1"),
])
def test_bad_host_options_are_one_clear_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)) as err:
        _host(**fields)
    assert "\n" not in str(err.value)


def test_namespaced_sysctls_pass() -> None:
    given = {"net.core.somaxconn": "1024", "kernel.shm_rmid_forced": "1", "kernel.msgmax": "9",
             "kernel.sem": "250 32000 32 128", "fs.mqueue.msg_max": "20"}
    assert _host(sysctls=given).sysctls == given


# ---- records, the plan, the cgroup, the runtime's refusal ---------------------


def _spec(tmp_path: Path, **extra: Any) -> ContainerSpec:
    return ContainerSpec(id="c" * 64, name="c", hostname="c", bundle_dir=str(tmp_path),
                         rootfs=RootfsSpec(["/l"]), process=ProcessSpec(args=["true"]), **extra)


def test_records_keep_host_options_and_old_records_read(tmp_path: Path) -> None:
    plain = _spec(tmp_path).to_dict()
    for key in ("devices", "sysctls", "shm_size", "init", "privileged"):
        assert key not in plain  # at their defaults: the record is as before
    assert ContainerSpec.from_dict(plain) == _spec(tmp_path)
    spec = _spec(tmp_path, devices=[Device("/dev/z", "c", 1, 5, "r")], sysctls={"kernel.shmmax": "1"},
                 shm_size=1 << 20, init=True, privileged=True)
    import json

    assert ContainerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.device_rules() == (ALL_DEVICES_RULE,)
    spec.privileged = False
    assert spec.device_rules() == (*DEFAULT_DEVICE_RULES, "c 1:5 r")


def test_the_plan_carries_init_sysctls_devices_and_shm() -> None:
    plan: Any = init.InitPlan(unshare_flags=0, rootfs=None, process=None, network=None,  # type: ignore[arg-type]
                              control_fd=0, cgroup_files=[], runtime_pid=0, reaper=True,
                              sysctls={"net.ipv4.ip_forward": "1"},
                              devices=(Device("/dev/net/tun", "c", 10, 200, file_mode=0o600, gid=5),))
    plan.sysfs_rw = True
    assert list(init.host_entries(plan)) == [
        ("reaper", 1), ("sysfs_rw", 1), ("sysctl", "/proc/sys/net/ipv4/ip_forward\t1"),
        ("device", "/dev/net/tun\tc\t10\t200\t384\t0\t5"), ("shmsize", 64 << 20)]
    plan.reaper, plan.sysfs_rw, plan.sysctls, plan.devices, plan.shm_size = False, False, {}, (), 4096
    assert list(init.host_entries(plan)) == [("shmsize", 4096)]


def test_host_gateway_is_the_bridges_address(tmp_path: Path) -> None:
    from nodeagent.runtime.bundle import hosts_file
    from nodeagent.runtime.spec import NetworkConfig

    spec = _spec(tmp_path, network=NetworkConfig(mode="bridge", address="10.9.0.5", gateway="10.9.0.1",
                                                 extra_hosts=[("gw", "host-gateway"), ("db", "10.0.0.5")]))
    assert hosts_file(spec).splitlines()[-2:] == ["10.9.0.1\tgw", "10.0.0.5\tdb"]


def test_v1_groups_deny_every_device_then_allow_the_rules(tmp_path: Path) -> None:
    for controller in ("cpu", "memory", "pids", "devices"):
        (tmp_path / controller).mkdir()
    group = tmp_path / "devices" / "orch" / "c1"
    group.mkdir(parents=True)
    for name in ("devices.allow", "devices.deny"):
        (group / name).write_text("")
    V1Driver(str(tmp_path)).create("orch/c1", Resources(), ("c 1:3 rwm", "c 1:5 r"))
    # A regular file keeps the last write: the kernel takes one rule per write.
    assert (group / "devices.deny").read_text() == "a"
    assert (group / "devices.allow").read_text() == "c 1:5 r"


def test_cgroup_v2_takes_devices(tmp_path: Path) -> None:
    from nodeagent.runtime.linux import LinuxRuntime

    class V2:
        version = 2

    runtime = LinuxRuntime(cgroups=V2())  # type: ignore[arg-type]
    spec = _spec(tmp_path, devices=[Device("/dev/z", "c", 1, 5)])
    runtime._validate(spec)
    assert spec.device_rules()[-1] == "c 1:5 rwm"  # what the v2 driver compiles
