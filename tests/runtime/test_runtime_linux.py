"""LinuxRuntime against the real kernel: isolation, lifecycle, exec, cleanup."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import FailedPrecondition, SetupError
from nodeagent.runtime import Container, LinuxRuntime, Stdio
from nodeagent.runtime.capabilities import to_mask
from nodeagent.runtime.spec import DEFAULT_CAPABILITIES, ContainerSpec, ProcessSpec, Rlimit

Spec = Callable[..., ContainerSpec]


def run(rt: LinuxRuntime, spec: ContainerSpec,
        before_remove: Callable[[], None] | None = None) -> tuple[int, str]:
    """create -> start -> wait (-> before_remove) -> remove; returns (exit
    code, stdout+stderr)."""
    r, w = os.pipe()
    try:
        c = rt.create(spec, Stdio(stdout=w, stderr=w))
    finally:
        os.close(w)
    try:
        rt.start(c)
        status = rt.wait(c, timeout=30)
        assert status is not None, "container did not exit"
        out = _read_all(r)
        if before_remove is not None:
            before_remove()
    finally:
        os.close(r)
        rt.remove(c)
    return status.exit_code, out


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def sh(make_spec: Spec, script: str, **kw: object) -> ContainerSpec:
    return make_spec(["/bin/sh", "-c", script], **kw)


def cgroup_dirs(spec: ContainerSpec) -> list[str]:
    from nodeagent.runtime.cgroups import detect

    driver = detect()
    root = getattr(driver, "root", "/sys/fs/cgroup")
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            path = os.path.join(dirpath, d)
            if path.endswith(spec.cgroup_name):
                found.append(path)
        if dirpath.count("/") > root.count("/") + 3:
            dirnames[:] = []
    return found


def mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def processes_in_cgroup(spec: ContainerSpec) -> list[int]:
    pids: list[int] = []
    for d in cgroup_dirs(spec):
        with open(os.path.join(d, "cgroup.procs")) as f:
            pids.extend(int(x) for x in f.read().split())
    return pids


def assert_nothing_left(spec: ContainerSpec, pid: int) -> None:
    assert cgroup_dirs(spec) == []
    assert mounts_mentioning(spec.bundle_dir) == []
    for name in ("rootfs", "upper", "work"):
        assert not os.path.exists(os.path.join(spec.bundle_dir, name))
    if pid:
        assert not os.path.exists(f"/proc/{pid}"), "container process still exists"


# --- isolation -----------------------------------------------------------------------

def test_pid1_and_host_processes_invisible(runtime: LinuxRuntime, make_spec: Spec) -> None:
    code, out = run(runtime, sh(make_spec, "echo $$; ls /proc | grep -E '^[0-9]+$' | wc -l"))
    assert code == 0
    pid, count = out.split()
    assert pid == "1"
    assert int(count) <= 4  # sh, ls, grep, wc: nothing of the host's
    assert str(os.getpid()) not in out


def test_hostname_is_the_containers(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = sh(make_spec, "hostname; cat /etc/hostname")
    code, out = run(runtime, spec)
    assert code == 0
    assert out.split() == [spec.hostname, spec.hostname]
    assert os.uname().nodename != spec.hostname


def test_generated_etc_files_live_in_memory(runtime: LinuxRuntime, make_spec: Spec,
                                           busybox_rootfs: Path) -> None:
    """/etc/hosts, hostname and resolv.conf are generated, bound in, and
    writable, yet neither the image (which lacks them) nor the container's
    writable layer gets a copy: they live in the container's namespace."""
    spec = sh(make_spec, "cat /etc/hosts; echo '10.9.9.9 extra' >> /etc/hosts && "
                         "grep -c extra /etc/hosts; ls -d /proc /sys /dev")

    def bundle_holds_only_its_dirs() -> None:
        assert sorted(os.listdir(spec.bundle_dir)) == ["rootfs", "upper", "work"]
        assert os.listdir(os.path.join(spec.bundle_dir, "upper")) == []
        assert os.listdir(os.path.join(spec.bundle_dir, "rootfs")) == []

    code, out = run(runtime, spec, before_remove=bundle_holds_only_its_dirs)
    assert code == 0, out
    assert f"127.0.1.1\t{spec.hostname}" in out
    assert out.endswith("\n1\n/dev\n/proc\n/sys\n")
    assert not (busybox_rootfs / "etc" / "hosts").exists()


def test_readonly_rootfs_has_no_writable_layer(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = sh(make_spec, "touch /new 2>&1; echo rc=$?; echo x >> /etc/hosts && echo hosts-ok")
    spec.rootfs.readonly = True

    def nothing_on_disk_but_the_mountpoint() -> None:
        assert sorted(os.listdir(spec.bundle_dir)) == ["rootfs"]

    code, out = run(runtime, spec, before_remove=nothing_on_disk_but_the_mountpoint)
    assert code == 0, out
    assert "Read-only file system" in out and "rc=1" in out
    assert "hosts-ok" in out
    assert not os.path.exists(os.path.join(spec.bundle_dir, "rootfs"))


def test_host_filesystem_unreachable(runtime: LinuxRuntime, make_spec: Spec,
                                     tmp_path: Path) -> None:
    marker = tmp_path / "host-marker-orch"
    marker.write_text("host")
    spec = sh(make_spec, f"test -e {marker} && echo VISIBLE; "
                         "grep ' / / ' /proc/self/mountinfo")
    code, out = run(runtime, spec)
    assert code == 0
    assert "VISIBLE" not in out
    assert " - overlay " in out


def test_writes_stay_out_of_lower_and_other_containers(
        runtime: LinuxRuntime, make_spec: Spec, busybox_rootfs: Path) -> None:
    a = sh(make_spec, "echo a > /etc/written-by-a; echo a > /bin/new; rm /bin/ls; "
                      "sleep 5")
    r, w = os.pipe()
    ca = runtime.create(a, Stdio(stdout=w, stderr=w))
    os.close(w)
    try:
        runtime.start(ca)
        deadline = time.monotonic() + 5
        while os.path.lexists(f"/proc/{ca.pid}/root/bin/ls"):  # a's last change: it wrote the rest
            assert time.monotonic() < deadline
            time.sleep(0.02)
        b = sh(make_spec, "ls /etc/written-by-a /bin/new 2>&1; test -e /bin/ls && echo LS-OK")
        code, out = run(runtime, b)
        assert code == 0
        assert "No such file" in out and "LS-OK" in out
    finally:
        runtime.remove(ca)
        os.close(r)
    assert not (busybox_rootfs / "etc" / "written-by-a").exists()
    assert not (busybox_rootfs / "bin" / "new").exists()
    assert (busybox_rootfs / "bin" / "ls").is_symlink()


def test_mount_and_reboot_fail_with_eperm(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = sh(make_spec, "mount -t tmpfs t /tmp 2>&1; echo mount=$?; "
                         "reboot -f 2>&1; echo reboot=$?; echo alive")
    code, out = run(runtime, spec)
    assert code == 0
    assert "mount=0" not in out and "Operation not permitted" in out
    assert "alive" in out


def test_capabilities_bounded_and_no_new_privs(runtime: LinuxRuntime, make_spec: Spec) -> None:
    code, out = run(runtime, sh(make_spec, "grep -E 'Cap(Bnd|Eff)|NoNewPrivs|Seccomp:' "
                                           "/proc/self/status"))
    assert code == 0
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    assert int(fields["CapBnd"], 16) == to_mask(DEFAULT_CAPABILITIES)
    assert int(fields["CapEff"], 16) == to_mask(DEFAULT_CAPABILITIES)
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


def test_signals_start_with_default_dispositions(runtime: LinuxRuntime,
                                                 make_spec: Spec) -> None:
    """Signals the runtime's process ignores (Python ignores SIGPIPE) would
    stay ignored across exec: the container must start with none ignored."""
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # the premise
    code, out = run(runtime, make_spec(["/bin/grep", "SigIgn", "/proc/self/status"]))
    assert code == 0
    assert int(out.split()[1], 16) == 0, out


def test_non_root_user_loses_capabilities(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = sh(make_spec, "id -u; id -g; grep -E 'CapEff' /proc/self/status; echo $HOME",
              user="app")
    code, out = run(runtime, spec)
    assert code == 0
    lines = out.split("\n")
    assert lines[0] == "1000" and lines[1] == "1000"
    assert lines[2].split()[1] == "0000000000000000"
    assert lines[3] == "/home/app"


@pytest.mark.parametrize("user,expected", [
    ("", "0 0 0"),
    ("app", "1000 1000 1000 2000"),  # the image's groups list app in extra
    ("1000", "1000 1000 1000 2000"),
    ("app:root", "1000 0 0"),  # a group given: no supplementary ones
    ("4242", "4242 0 0"),  # a number need not be in /etc/passwd
    ("4242:77", "4242 77 77"),
])
def test_user_forms_resolve_through_the_images_files(runtime: LinuxRuntime, make_spec: Spec,
                                                     user: str, expected: str) -> None:
    code, out = run(runtime, sh(make_spec, "echo $(id -u) $(id -g) $(id -G)", user=user))
    assert code == 0, out
    assert out.split() == expected.split()


def test_unknown_group_fails_setup_naming_it(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = make_spec(["/bin/true"], user="app:nogroup")
    with pytest.raises(SetupError) as info:
        runtime.create(spec, Stdio())
    assert info.value.step == "resolve_user"
    assert "group 'nogroup': no matching entries in /etc/group" in str(info.value)
    assert_nothing_left(spec, 0)


def test_process_settings_reach_the_process(runtime: LinuxRuntime, make_spec: Spec) -> None:
    """A PATH search, the env, HOME from /etc/passwd, the rlimit, and a
    missing working directory made (as Docker does)."""
    spec = make_spec(["sh", "-c", "pwd; ulimit -Sn; ulimit -Hn; echo $HOME; echo \"$GREETING\""],
                     cwd="/made/on/demand", env=["GREETING=hi  there"],
                     rlimits=(Rlimit("RLIMIT_NOFILE", 1000, 2000),))
    code, out = run(runtime, spec)
    assert code == 0, out
    assert out.splitlines() == ["/made/on/demand", "1000", "2000", "/root", "hi  there"]


def test_masked_and_readonly_paths(runtime: LinuxRuntime, make_spec: Spec) -> None:
    # /proc/kcore needs CONFIG_PROC_KCORE; check every masked path the host has.
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list")
             if os.path.isfile(p)]
    dirs = [p for p in ("/proc/acpi", "/sys/firmware") if os.path.isdir(p)]
    if not files and not dirs:
        pytest.skip("no maskable path exists on this kernel")
    script = "".join(f"echo {p}=$(wc -c < {p}); " for p in files)
    script += "".join(f"echo {p}=$(ls -A {p} | wc -l); " for p in dirs)
    script += "echo 1 > /proc/sys/kernel/domainname 2>&1; echo write=$?"
    code, out = run(runtime, sh(make_spec, script))
    assert code == 0
    for p in files + dirs:
        assert f"{p}=0" in out, out
    assert "write=0" not in out and "Read-only file system" in out


# --- exit statuses and signals ----------------------------------------------------

def test_exit_code_propagates(runtime: LinuxRuntime, make_spec: Spec) -> None:
    assert run(runtime, sh(make_spec, "exit 3"))[0] == 3


def test_signal_death_propagates(runtime: LinuxRuntime, make_spec: Spec) -> None:
    # The kernel ignores SIGKILL sent to a pid namespace's init from inside
    # it, so "kill -9 self" is shown in a child shell and from the host.
    assert run(runtime, sh(make_spec, "sh -c 'kill -9 $$'; exit $?"))[0] == 137
    c = runtime.create(make_spec(["/bin/sleep", "60"]), Stdio())
    try:
        runtime.start(c)
        runtime.kill(c, signal.SIGKILL)
        status = runtime.wait(c, timeout=10)
        assert status is not None
        assert (status.exit_code, status.signal, status.oom_killed) == (137, 9, False)
    finally:
        runtime.remove(c)


def test_stop_with_trap_exits_fast(runtime: LinuxRuntime, make_spec: Spec) -> None:
    r, w = os.pipe()
    c = runtime.create(sh(make_spec, "trap 'exit 7' TERM; echo ready; "
                                     "while true; do sleep 0.05; done"), Stdio(stdout=w))
    os.close(w)
    try:
        runtime.start(c)
        assert os.read(r, 6) == b"ready\n"
        t0 = time.monotonic()
        status = runtime.stop(c, timeout=10)
        assert time.monotonic() - t0 < 3
        assert status.exit_code == 7
    finally:
        os.close(r)
        runtime.remove(c)


def test_stop_kills_ignoring_pid1_after_timeout(runtime: LinuxRuntime, make_spec: Spec) -> None:
    c = runtime.create(make_spec(["/bin/sleep", "60"]), Stdio())
    try:
        runtime.start(c)
        t0 = time.monotonic()
        status = runtime.stop(c, timeout=1)
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 5
        assert (status.exit_code, status.signal) == (137, signal.SIGKILL)
    finally:
        runtime.remove(c)


def test_wait_timeout_returns_none(runtime: LinuxRuntime, make_spec: Spec) -> None:
    c = runtime.create(make_spec(["/bin/sleep", "60"]), Stdio())
    try:
        runtime.start(c)
        assert runtime.wait(c, timeout=0.1) is None
    finally:
        runtime.remove(c)


# --- exec ----------------------------------------------------------------------------

def test_exec_joins_the_container(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = sh(make_spec, "echo inside > /tmp-file-orch; exec sleep 60")
    c = runtime.create(spec, Stdio())
    r, w = os.pipe()
    try:
        runtime.start(c)
        deadline = time.monotonic() + 5
        while not os.path.exists(f"/proc/{c.pid}/root/tmp-file-orch"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc = ProcessSpec(args=["/bin/sh", "-c", "hostname; cat /tmp-file-orch; "
                                 "readlink /proc/self/ns/pid; readlink /proc/1/ns/pid; "
                                 "grep CapBnd /proc/self/status"])
        pid = runtime.exec(c, proc, Stdio(stdout=w, stderr=w))
        os.close(w)
        w = -1
        my_cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        out = _read_all(r).split("\n")
        assert out[0] == spec.hostname
        assert out[1] == "inside"
        assert out[2] == out[3]  # same pid namespace as PID 1
        assert int(out[4].split()[1], 16) == to_mask(DEFAULT_CAPABILITIES)
        assert spec.cgroup_name in my_cgroups
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
        runtime.remove(c)
    assert_nothing_left(spec, c.pid)


def test_exec_command_not_found_raises(runtime: LinuxRuntime, make_spec: Spec) -> None:
    c = runtime.create(make_spec(["/bin/sleep", "60"]), Stdio())
    try:
        runtime.start(c)
        with pytest.raises(SetupError) as info:
            runtime.exec(c, ProcessSpec(args=["/no/such/command"]), Stdio())
        assert info.value.step == "exec"
    finally:
        runtime.remove(c)


# --- failures and cleanup ------------------------------------------------------------

def test_missing_lower_dir_fails_cleanly(runtime: LinuxRuntime, make_spec: Spec,
                                         tmp_path: Path) -> None:
    spec = make_spec(["/bin/true"])
    spec.rootfs.lower_dirs = [str(tmp_path / "does-not-exist")]
    with pytest.raises(SetupError) as info:
        runtime.create(spec, Stdio())
    assert info.value.step == "mount_rootfs"
    assert "does-not-exist" in str(info.value)
    assert runtime._live == {}
    assert_nothing_left(spec, 0)


def test_command_not_found_fails_at_start(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = make_spec(["no-such-command-orch"])
    c = runtime.create(spec, Stdio())
    with pytest.raises(SetupError) as info:
        runtime.start(c)
    assert info.value.step == "exec"
    assert "no-such-command-orch" in str(info.value)
    assert_nothing_left(spec, c.pid)
    runtime.remove(c)  # idempotent after the failure cleaned up


def launch_outcome(rt: LinuxRuntime, c: Container) -> bool:
    """Poll a launch as the supervisor does: whenever its fd is readable."""
    import select

    fd = rt.launch_fd(c)
    while True:
        select.select([fd], [], [], 30)
        if rt.launched(c):
            return True


def test_launch_runs_without_a_start_and_reports_the_exec(runtime: LinuxRuntime,
                                                          make_spec: Spec) -> None:
    r, w = os.pipe()
    spec = sh(make_spec, "echo launched; exit 7")
    try:
        c = runtime.launch(spec, Stdio(stdout=w))
    finally:
        os.close(w)
    try:
        assert launch_outcome(runtime, c)
        with pytest.raises(FailedPrecondition):
            runtime.launch_fd(c)  # over: nothing more to read
        status = runtime.wait(c, timeout=30)
        assert status is not None and status.exit_code == 7
        assert _read_all(r) == "launched\n"
        with pytest.raises(FailedPrecondition):
            runtime.start(c)  # a launch needs no start
    finally:
        os.close(r)
        runtime.remove(c)
    assert_nothing_left(spec, c.pid)


@pytest.mark.parametrize("command,step", [(["no-such-command-orch"], "exec"),
                                          (["/bin/true"], "resolve_user")])
def test_a_failed_launch_raises_its_step_with_everything_undone(
        runtime: LinuxRuntime, make_spec: Spec, command: list[str], step: str) -> None:
    spec = make_spec(command, **({"user": "nobody-orch"} if step == "resolve_user" else {}))
    c = runtime.launch(spec, Stdio())
    with pytest.raises(SetupError) as info:
        launch_outcome(runtime, c)
    assert info.value.step == step
    assert_nothing_left(spec, c.pid)
    runtime.remove(c)  # idempotent after the failure cleaned up


def test_unknown_user_fails_setup(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = make_spec(["/bin/true"], user="nobody-orch")
    with pytest.raises(SetupError) as info:
        runtime.create(spec, Stdio())
    assert info.value.step == "resolve_user"
    assert_nothing_left(spec, 0)


def test_remove_leaves_nothing(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = sh(make_spec, "sleep 60 & sleep 60")
    c = runtime.create(spec, Stdio())
    runtime.start(c)
    assert c.pid in processes_in_cgroup(spec)
    assert mounts_mentioning(spec.bundle_dir) == []  # mounts never reach the host
    runtime.remove(c)
    assert_nothing_left(spec, c.pid)
    runtime.remove(c)  # idempotent


def test_remove_of_created_but_not_started(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = make_spec(["/bin/true"])
    c = runtime.create(spec, Stdio())
    assert c.pid > 0
    # PID 1 moved itself into the group before any setup step ran
    assert set(processes_in_cgroup(spec)) == {c.pid}
    runtime.remove(c)
    assert_nothing_left(spec, c.pid)


def test_volatile_rootfs_mounts_volatile_and_restarts(runtime: LinuxRuntime,
                                                      make_spec: Spec) -> None:
    spec = sh(make_spec, "echo kept >> /data; cat /data; grep ' / ' /proc/self/mountinfo")
    spec.rootfs.volatile = True
    outputs = []
    for keep in (True, False):  # the restart mounts over the same writable layer
        r, w = os.pipe()
        try:
            c = runtime.create(spec, Stdio(stdout=w, stderr=w))
        finally:
            os.close(w)
        runtime.start(c)
        status = runtime.wait(c, timeout=30)
        outputs.append(_read_all(r).splitlines())
        os.close(r)
        runtime.remove(c, keep_rootfs=keep)
        assert status is not None and status.exit_code == 0, outputs
    assert outputs[0][0] == "kept" and "volatile" in outputs[0][1]
    assert outputs[1][:2] == ["kept", "kept"]
    assert_nothing_left(spec, c.pid)


def test_stats_and_adopt(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = make_spec(["/bin/sleep", "60"])
    c = runtime.create(spec, Stdio())
    try:
        runtime.start(c)
        stats = runtime.stats(c)
        assert stats.pids_current >= 1
        other = LinuxRuntime()
        adopted = other.adopt(spec, c.pid)
        assert isinstance(adopted, Container) and adopted.pid == c.pid
        assert other.wait(adopted, timeout=0.05) is None
        other._live.clear()  # the first runtime owns the cleanup
    finally:
        runtime.remove(c)


def test_oom_kill_is_reported(runtime: LinuxRuntime, make_spec: Spec) -> None:
    spec = sh(make_spec, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    spec.resources.memory_bytes = 32 << 20
    c = runtime.create(spec, Stdio())
    try:
        runtime.start(c)
        status = runtime.wait(c, timeout=60)
        assert status is not None
        assert (status.exit_code, status.signal, status.oom_killed) == (137, 9, True)
    finally:
        runtime.remove(c)


# --- networking ------------------------------------------------------------------------

def test_bridge_container_configures_its_side(cgroup_parent: str, make_spec: Spec,
                                              tmp_path: Path) -> None:
    """The init's network set-up: lo up (keeping ::1), eth0 with its address
    and no IPv6 (the network is IPv4 only), the default route via the
    bridge's gateway, which answers."""
    import secrets

    from nodeagent.network import BridgeNetwork

    bridge = "orcht" + secrets.token_hex(2)
    net = BridgeNetwork(str(tmp_path / "net"), bridge=bridge,
                        subnet=f"10.199.{secrets.randbelow(256)}.0/24")
    net.ensure()
    try:
        rt = LinuxRuntime(network=net)
        spec = sh(make_spec, "ip -o -4 addr show eth0; ip route; ip -o link show lo;"
                  " ip -o -6 addr; cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6;"
                  f" ping -c1 -W2 {net.gateway} >/dev/null && echo gateway-answers")
        spec.network = net.allocate(spec.id)
        cfg = spec.network
        code, out = run(rt, spec)
        net.release(spec.id)
    finally:
        net.teardown()
    assert code == 0, out
    lines = out.splitlines()
    assert f"inet {cfg.address}/{cfg.prefixlen}" in lines[0]
    assert f"default via {cfg.gateway} dev eth0" in out
    assert "<LOOPBACK,UP" in out
    assert "::1" in out and "eth0" not in "".join(x for x in lines if "inet6" in x)
    assert lines[-2] == "1"
    assert lines[-1] == "gateway-answers"
    assert not os.path.exists(f"/sys/class/net/{cfg.host_veth}")
