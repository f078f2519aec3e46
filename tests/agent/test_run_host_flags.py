"""Docker's everyday host options of `orch run`, through the real CLI and
agent, each checked inside the container: capabilities (CapEff/CapBnd),
ulimits, --env-file, /etc/hosts and resolv.conf, sysctls, the size of
/dev/shm, --device (and the devices cgroup refusing the rest), --privileged,
--init (PID 1 reaps orphans, forwards the stop signal, hands back the exit
code); bad values are one clear line, exit code 125, no traceback.
Containers are few and each checks several flags: the suite is near its
time budget."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nodeagent.runtime import capabilities
from nodeagent.runtime.cgroups import detect
from nodeagent.runtime.spec import DEFAULT_CAPABILITIES

if TYPE_CHECKING:
    from conftest import Engine

V1 = detect().version == 1


def _status_masks(out: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines()
            if line.startswith(("CapEff:", "CapBnd:", "CapPrm:"))}


def _section(out: str, name: str) -> list[str]:
    """The lines between `== name` and the next `==` marker of the script's output."""
    lines = out.splitlines()
    start = lines.index(f"== {name}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("== ")), len(lines))
    return lines[start:end]


SCRIPT = """
echo == caps; grep -E '^Cap(Eff|Bnd|Prm):' /proc/self/status
echo == ulimit; ulimit -n; ulimit -Hn; ulimit -c
echo == env; echo "A=$A B=$B C=$ORCH_HOST Q=$Q U=${UNSET_IN_SHELL-unset}"
echo == hosts; cat /etc/hosts
echo == resolv; cat /etc/resolv.conf
echo == sysctl; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax
echo == shm; grep ' /dev/shm ' /proc/mounts
echo == device; head -c 3 /dev/extra/myzero | od -An -tx1
echo == denied; mknod /tmp/tun c 10 200 && cat /tmp/tun 2>&1
echo == end
"""


def test_host_options_reach_the_container(engine: Engine, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nA=from file\nB=file\n  ORCH_HOST\nQ=\"quoted\"\nUNSET_IN_SHELL\n")
    device = ["--device", "/dev/zero:/dev/extra/myzero:rw"] if V1 else []
    proc = engine.orch(
        "run", "--rm", "--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN",
        "--ulimit", "nofile=1024:2048", "--ulimit", "core=0", "--env-file", str(env_file),
        "-e", "B=flag", "--add-host", "db:10.1.2.3", "--add-host", "v6:fd00::5",
        "--add-host", "gw:host-gateway",
        "--dns", "10.0.0.53", "--sysctl", "net.ipv4.ip_forward=1",
        "--sysctl", "kernel.shmmax=1073741824", "--shm-size", "8m", *device,
        "busybox", "sh", "-c", SCRIPT)
    out = proc.stdout
    want = capabilities.to_mask([c for c in DEFAULT_CAPABILITIES if c != "CAP_CHOWN"] + ["NET_ADMIN"])
    assert _status_masks("\n".join(_section(out, "caps"))) == {
        "CapEff": want, "CapBnd": want, "CapPrm": want}
    assert _section(out, "ulimit") == ["1024", "2048", "0"]
    # A bare KEY takes the CLI's own value (ORCH_HOST: the engine's socket), or is left out.
    assert _section(out, "env") == [f"A=from file B=flag C={engine.env['ORCH_HOST']} Q=\"quoted\" U=unset"]
    hosts = _section(out, "hosts")
    assert "10.1.2.3\tdb" in hosts and "fd00::5\tv6" in hosts
    [gateway] = [line.split("\t")[0] for line in hosts if line.endswith("\tgw")]
    assert ipaddress.ip_address(gateway) in ipaddress.ip_network(engine.subnet)
    assert _section(out, "resolv") == ["nameserver 10.0.0.53"]
    assert _section(out, "sysctl") == ["1", "1073741824"]
    assert "size=8192k" in _section(out, "shm")[0]
    if V1:
        assert _section(out, "device") == [" 00 00 00"]
        assert "Operation not permitted" in " ".join(_section(out, "denied"))


def test_privileged_has_every_capability_and_device_and_warns(engine: Engine) -> None:
    proc = engine.orch("run", "--rm", "--privileged", "busybox", "sh", "-c",
                       "grep -E '^(Cap(Eff|Bnd)|Seccomp|NoNewPrivs):' /proc/self/status; "
                       "grep -c ' /proc/sys .*ro,' /proc/mounts; grep ' /sys ' /proc/mounts; ls /dev")
    every = capabilities.to_mask(capabilities.all_capabilities())
    masks = _status_masks(proc.stdout)
    assert masks["CapEff"] == every and masks["CapBnd"] == every
    assert "Seccomp:\t0" in proc.stdout and "NoNewPrivs:\t0" in proc.stdout
    assert "\n0\n" in proc.stdout  # /proc/sys is not read-only
    assert "sysfs /sys sysfs rw," in proc.stdout
    host_only = {name for name in os.listdir("/dev") if name.startswith(("loop", "tty1"))}
    assert host_only <= set(proc.stdout.split())
    assert "warning: --privileged" in proc.stderr


INIT_SCRIPT = """
cat /proc/1/comm
sh -c 'sleep 0.2 & echo $! > /tmp/orphan'
p=$(cat /tmp/orphan); n=0
while [ -e /proc/$p ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done
[ -e /proc/$p ] && echo "orphan $p not reaped" || echo reaped
exit 7
"""


def test_init_reaps_orphans_forwards_signals_and_returns_the_exit_code(engine: Engine) -> None:
    proc = engine.orch("run", "--rm", "--init", "busybox", "sh", "-c", INIT_SCRIPT, check=False)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.split() == ["orch-init", "reaped"]
    # The forked process's exec failure is the container's, as without the init.
    proc = engine.orch("run", "--rm", "--init", "busybox", "/no/such/command", check=False)
    assert proc.returncode == 127 and "step 'exec'" in proc.stderr, proc.stderr
    # A plain `sleep` as PID 1 ignores SIGTERM (it would take the stop timeout and a
    # SIGKILL: 137); under the init, the signal reaches it: 143.
    name = "init-signal"
    engine.orch("run", "-d", "--init", "--name", name, "busybox", "sleep", "1000")
    try:
        engine.orch("stop", "-t", "60", name)
        assert engine.orch("wait", name).stdout.split() == ["143"]
    finally:
        engine.orch("rm", "-f", name, check=False)


@pytest.mark.parametrize(("argv", "message"), [
    (["--cap-add", "CAP_FLY"], "invalid --cap-add 'CAP_FLY': unknown capability"),
    (["--cap-drop", "bogus"], "invalid --cap-drop 'bogus'"),
    (["--sysctl", "kernel.hostname=x"], "invalid --sysctl 'kernel.hostname=x': not a namespaced sysctl"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "net.* sysctls are the node's"),
    (["--device", "/dev/no-such-device"], "invalid --device '/dev/no-such-device'"),
    (["--device", "/etc/passwd:/dev/passwd"], "is not a character or block device"),
    (["--device", "/dev/zero:/etc/zero"], "under /dev/"),
    (["--add-host", "db"], "invalid --add-host 'db': expected NAME:IP"),
    (["--add-host", "db:10.1.2"], "invalid --add-host 'db:10.1.2'"),
    (["--dns", "8.8.8"], "invalid --dns '8.8.8'"),
    (["--ulimit", "nofile=100:99999999"], "fs.nr_open"),
])
def test_bad_values_are_one_clear_line(engine: Engine, argv: list[str], message: str) -> None:
    proc = engine.orch("run", "--rm", *argv, "busybox", "true", check=False)
    assert proc.returncode == 125
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
