"""The node engine end to end: CLI -> agent -> supervisor -> runtime, for real."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agent.conftest import Engine
from tests.http_helpers import get_page


def wait_for(fn, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def inspect(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(engine.orch("inspect", ref).stdout)[0]


def test_foreground_run_streams_output_and_exit_code(engine: Engine) -> None:
    p = engine.orch("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
                    check=False)
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert p.stderr == "err\n"


def test_installed_launcher_runs_quick_and_full_commands(engine: Engine) -> None:
    """`.venv/bin/orch` (written by scripts/setup) starts Python without
    `site`: `run` takes the quick path, other commands load the packages."""
    launcher = Path(sys.executable).parent / "orch"
    assert launcher.read_text().splitlines()[0].endswith(" -S")

    def orch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(launcher), *args], env=engine.env, text=True,
                              capture_output=True, timeout=60)

    p = orch("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; exit 4")
    assert (p.returncode, p.stdout, p.stderr) == (4, "out\n", "")
    p = orch("run", "--rm", "busybox", "/no/such/binary")
    assert p.returncode == 127 and "/no/such/binary" in p.stderr
    p = orch("images", "-o", "json")
    assert p.returncode == 0 and "busybox" in p.stdout, p.stderr


def test_signal_death_propagates(engine: Engine) -> None:
    # PID 1 of a pid namespace cannot be SIGKILLed from inside, so kill it
    # from the host side, as `docker kill` does.
    engine.orch("run", "-d", "--name", "sig1", "busybox", "sleep", "300")
    engine.orch("kill", "-s", "KILL", "sig1")
    assert engine.orch("wait", "sig1").stdout.strip() == "137"
    doc = inspect(engine, "sig1")
    assert (doc["exit_code"], doc["signal"]) == (137, 9)
    engine.orch("rm", "sig1")


def test_detached_logs_capture_both_streams(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "logs1", "busybox", "sh", "-c",
                "for i in 1 2 3; do echo out$i; echo err$i >&2; done")
    engine.orch("wait", "logs1")
    p = engine.orch("logs", "logs1")
    assert p.stdout.split() == ["out1", "out2", "out3"]
    assert p.stderr.split() == ["err1", "err2", "err3"]
    # Each stream keeps its order; between the two pipes, which the
    # supervisor read first is not fixed (as with Docker). So the log's last
    # line is the last of one stream.
    tail = engine.orch("logs", "--tail", "1", "logs1")
    assert tail.stdout.split() + tail.stderr.split() in (["out3"], ["err3"])
    tail = engine.orch("logs", "--tail", "6", "logs1")
    assert (tail.stdout.split(), tail.stderr.split()) == (["out1", "out2", "out3"],
                                                          ["err1", "err2", "err3"])
    engine.orch("rm", "logs1")


def test_exec_runs_inside_the_container(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "ex1", "--hostname", "box1", "busybox", "sleep", "300")
    try:
        p = engine.orch("exec", "ex1", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '")
        assert p.stdout.split("\n")[0] == "box1"
        assert "sleep 300" in p.stdout
        assert engine.orch("exec", "ex1", "sh", "-c", "exit 4", check=False).returncode == 4
    finally:
        engine.orch("rm", "-f", "ex1")


def _host_address() -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout.split()
    return out[3].split("/")[0] if len(out) > 3 else "127.0.0.1"


def test_published_port_answers_from_the_host(engine: Engine) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine.orch("run", "-d", "--name", "web1", "-p", f"{port}:80", "busybox",
                "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        for addr in ("127.0.0.1", _host_address()):
            assert "orch" in get_page(f"http://{addr}:{port}/")
    finally:
        engine.orch("rm", "-f", "web1")


def test_containers_reach_each_other_by_ip(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "srv1", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        ip = inspect(engine, "srv1")["ip_address"]
        assert ip
        p = engine.orch("run", "--rm", "busybox", "wget", "-q", "-O", "-", f"http://{ip}/",
                        check=False)
        assert p.returncode == 0, p.stderr
        assert "orch" in p.stdout
    finally:
        engine.orch("rm", "-f", "srv1")


def test_restart_on_failure_with_backoff(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "rs1", "--restart", "on-failure:3", "busybox",
                "sh", "-c", "cut -d' ' -f1 /proc/uptime; exit 1")

    def done() -> dict | None:  # type: ignore[type-arg]
        doc = inspect(engine, "rs1")
        return doc if doc["state"] == "exited" and doc["restart_count"] == 3 else None

    try:
        doc = wait_for(done, timeout=20)
        assert doc["exit_code"] == 1
        starts = [float(x) for x in engine.orch("logs", "rs1").stdout.split()]
        assert len(starts) == 4
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # 0.1 s, 0.2 s, 0.4 s: each wait longer than the one before.
        assert gaps[0] < gaps[2], gaps
    finally:
        engine.orch("rm", "-f", "rs1")


def test_restart_always_restarts_a_clean_exit(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "rs2", "--restart", "always", "busybox", "true")
    try:
        wait_for(lambda: inspect(engine, "rs2")["restart_count"] >= 2, timeout=20)
        engine.orch("stop", "rs2")
        assert inspect(engine, "rs2")["state"] == "exited"
    finally:
        engine.orch("rm", "-f", "rs2")


def test_stop_honours_the_grace_period(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "st1", "busybox", "sh", "-c",
                "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    engine.orch("run", "-d", "--name", "st2", "busybox", "sleep", "300")
    try:
        t0 = time.monotonic()
        engine.orch("stop", "-t", "5", "st1")
        assert time.monotonic() - t0 < 3
        assert inspect(engine, "st1")["exit_code"] == 0
        t0 = time.monotonic()
        engine.orch("stop", "-t", "1", "st2")  # PID 1 without a TERM handler ignores it
        elapsed = time.monotonic() - t0
        assert 0.9 < elapsed < 5
        doc = inspect(engine, "st2")
        assert doc["exit_code"] == 137 and doc["signal"] == 9
    finally:
        engine.orch("rm", "-f", "st1", "st2")


def test_memory_limit_oom_kill_is_reported(engine: Engine) -> None:
    p = engine.orch("run", "--name", "oom1", "--memory", "16Mi", "busybox",
                    "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1", check=False)
    assert p.returncode == 137
    doc = inspect(engine, "oom1")
    assert doc["oom_killed"] is True
    assert "OOMKilled" in engine.orch("ps", "-a").stdout
    engine.orch("rm", "oom1")


def test_bad_input_gets_one_line_errors(engine: Engine) -> None:
    cases = [
        (["run", "--rm", "nosuchimage"], "not found"),
        (["run", "--rm", "--memory", "12x", "busybox", "true"], "memory"),
        (["run", "--rm", "--cpus", "-1", "busybox", "true"], "cpu"),
        (["run", "--rm", "-p", "99999:80", "busybox", "true"], "port"),
        (["run", "--rm", "busybox"], "no command"),
        (["run", "--rm", "busybox", "/no/such/binary"], "/no/such/binary"),
        (["logs", "nosuchcontainer"], "no such container"),
        (["run", "--rm", "--restart", "sometimes", "busybox", "true"], "restart"),
    ]
    for args, needle in cases:
        p = engine.orch(*args, check=False)
        assert p.returncode != 0, args
        assert "Traceback" not in p.stderr, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0].lower(), (args, p.stderr)
    engine.orch("run", "-d", "--name", "dup1", "busybox", "sleep", "300")
    try:
        p = engine.orch("run", "-d", "--name", "dup1", "busybox", "true", check=False)
        assert p.returncode != 0 and "already in use" in p.stderr
    finally:
        engine.orch("rm", "-f", "dup1")
    # Nothing leaked from the failed runs.
    assert engine.orch("ps", "-a", "-q").stdout.strip() == ""


def test_agent_not_running_says_how_to_start_it(engine: Engine) -> None:
    env = {**engine.env, "ORCH_HOST": "unix:///run/orch-test-none/agent.sock"}
    p = subprocess.run([sys.executable, "-m", "orch", "ps"], env=env, text=True, capture_output=True)
    assert p.returncode == 1
    assert "orch agent --detach" in p.stderr and "Traceback" not in p.stderr


def test_containers_are_adopted_after_an_agent_restart(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "ad1", "busybox", "sh", "-c",
                "echo before; trap 'exit 0' TERM; while true; do sleep 0.1; done")
    engine.orch("run", "-d", "--name", "ad2", "busybox", "sh", "-c",
                "until [ -e /exit-now ]; do sleep 0.1; done; exit 5")
    info = engine.info()
    ad2 = inspect(engine, "ad2")["pid"]
    os.kill(info["agent_pid"], signal.SIGKILL)
    wait_for(lambda: _gone(info["agent_pid"]))
    Path(f"/proc/{ad2}/root/exit-now").touch()  # ad2 exits while no agent runs,
    wait_for(lambda: not Path(f"/proc/{ad2}").exists())  # and its supervisor reaps it
    engine.start()
    try:
        assert engine.info()["supervisor_pid"] == info["supervisor_pid"]
        ps = engine.orch("ps", "-o", "json").stdout
        assert [c["name"] for c in json.loads(ps)] == ["ad1"]
        assert inspect(engine, "ad2")["exit_code"] == 5
        assert engine.orch("logs", "ad1").stdout == "before\n"
        assert engine.orch("exec", "ad1", "echo", "hi").stdout == "hi\n"
        engine.orch("stop", "ad1")
        assert inspect(engine, "ad1")["exit_code"] == 0
    finally:
        engine.orch("rm", "-f", "ad1", "ad2")


def _gone(pid: int) -> bool:
    """Dead: no /proc entry, or a zombie (the runtime tests make pytest a
    subreaper, so an orphaned agent may end up as pytest's unreaped child)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat[stat.rindex(")") + 2] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return True
    return False


def _leftovers(engine: Engine, cid: str) -> list[str]:
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if cid in dirs:
            found.append(f"cgroup {root}/{cid}")
        if root.count("/") > 5:
            dirs.clear()
    mounts = Path("/proc/self/mountinfo").read_text()
    if cid in mounts:
        found.append("mount")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    if f"vo{cid[:10]}" in links:
        found.append("veth")
    if (engine.state / "containers" / cid).exists():
        found.append("bundle")
    # A removed container's files are deleted once the removal is answered,
    # by an rm of the supervisor's.
    deadline = time.monotonic() + 30
    while any((engine.state / "containers" / ".trash").glob("*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    if any((engine.state / "containers" / ".trash").glob("*")):
        found.append("trash")
    return found


def test_nothing_is_left_after_rm(engine: Engine) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cid = engine.orch("run", "-d", "-p", f"{port}:80", "--memory", "32Mi", "busybox",
                      "sleep", "300").stdout.strip()
    engine.orch("rm", "-f", cid)
    assert _leftovers(engine, cid) == []
    rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert str(port) not in rules


def test_requests_about_a_container_being_launched_wait_for_the_launch(engine: Engine) -> None:
    """The supervisor starts a container and reads its next request while the
    container's PID 1 sets up. A request about that container, sent right
    behind the start, is answered once the launch has ended: the start is
    answered running, the removal after it, and nothing is left."""
    from nodeagent.supervisor import wire

    cid = engine.orch("create", "busybox", "sleep", "300").stdout.strip()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(engine.run / "supervisor.sock"))
        sock.sendall(wire.encode({"rid": 1, "op": "start", "args": {"id": cid}})
                     + wire.encode({"rid": 2, "op": "get", "args": {"id": cid}})
                     + wire.encode({"rid": 3, "op": "remove", "args": {"id": cid, "force": True}}))
        reader, replies = wire.Reader(), []
        while len(replies) < 3:
            got = wire.recv(sock, reader)
            assert got is not None, "the supervisor closed the connection"
            replies += [msg for msg, _ in got if "rid" in msg]
    assert [r["rid"] for r in replies] == [1, 2, 3]
    assert all(r["ok"] for r in replies), replies
    assert replies[0]["result"]["state"] == "running"
    assert replies[1]["result"]["state"] == "running" and replies[1]["result"]["pid"] > 0
    assert _leftovers(engine, cid) == []


def test_starts_beyond_the_launch_limit_wait_their_turn(engine: Engine) -> None:
    """More starts than the supervisor launches at once, sent in one go: each
    is answered running (launches may end in any order), and a request about
    a container whose start is still waiting is answered after that start."""
    from nodeagent.supervisor import MAX_LAUNCHING, wire

    n = MAX_LAUNCHING + 2
    cids = [engine.orch("create", "busybox", "sleep", "300").stdout.strip() for _ in range(n)]
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(engine.run / "supervisor.sock"))
            sock.sendall(b"".join(wire.encode({"rid": i, "op": "start", "args": {"id": cid}})
                                  for i, cid in enumerate(cids))
                         # about the last, whose start waits its turn: after that start
                         + wire.encode({"rid": n, "op": "get", "args": {"id": cids[-1]}}))
            reader, replies = wire.Reader(), []
            while len(replies) < n + 1:
                got = wire.recv(sock, reader)
                assert got is not None, "the supervisor closed the connection"
                replies += [msg for msg, _ in got if "rid" in msg]
        order = [r["rid"] for r in replies]
        assert sorted(order) == list(range(n + 1))
        assert order.index(n - 1) < order.index(n)
        assert [r["result"]["state"] for r in replies] == ["running"] * (n + 1), replies
    finally:
        engine.orch("rm", "-f", *cids)


def test_containers_that_exit_at_once_are_each_reported(engine: Engine) -> None:
    """A process gone the moment it exec'd: its exit (SIGCHLD) and the end of
    its launch arrive together. Every start is answered, every exit reported,
    and the supervisor stays up."""
    from nodeagent.supervisor import wire

    n = 12
    cids = [engine.orch("create", "busybox", "true").stdout.strip() for _ in range(n)]
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(engine.run / "supervisor.sock"))
            sock.sendall(wire.encode({"rid": 0, "op": "subscribe", "args": {"events": ["exited"]}})
                         + b"".join(wire.encode({"rid": i + 1, "op": "start", "args": {"id": cid}})
                                    for i, cid in enumerate(cids)))
            reader, replies, exited = wire.Reader(), [], set()
            while len(replies) < n + 1 or len(exited) < n:
                got = wire.recv(sock, reader)
                assert got is not None, "the supervisor closed the connection"
                replies += [msg for msg, _ in got if "rid" in msg]
                exited |= {msg["data"]["id"] for msg, _ in got if msg.get("event") == "exited"}
        assert all(r["ok"] for r in replies), replies
        assert exited == set(cids)
        assert all(inspect(engine, cid)["exit_code"] == 0 for cid in cids)
    finally:
        engine.orch("rm", "-f", *cids)


def test_a_subscriber_gets_the_events_it_names(engine: Engine) -> None:
    from nodeagent.supervisor import wire

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(engine.run / "supervisor.sock"))
        sock.sendall(wire.encode({"rid": 1, "op": "subscribe", "args": {"events": ["exited"]}}))
        reader = wire.Reader()
        assert wire.recv(sock, reader) == [({"rid": 1, "ok": True, "result": True}, [])]
        cid = engine.orch("run", "-d", "busybox", "true").stdout.strip()
        events = []
        while not events:
            got = wire.recv(sock, reader)
            assert got is not None
            events += [msg["event"] for msg, _ in got if msg.get("data", {}).get("id") == cid]
    assert events == ["exited"]  # not created, not started
    engine.orch("rm", cid)


@pytest.mark.parametrize("agent_crashed", [False, True])
def test_nothing_is_left_after_the_agent_shuts_down(tmp_path, agent_crashed: bool) -> None:  # type: ignore[no-untyped-def]
    from tests.agent.conftest import Engine, busybox_rootfs

    tag = os.urandom(2).hex()
    eng = Engine(state=tmp_path / "state", run=tmp_path / "run", bridge=f"orchs{tag}",
                 subnet=f"10.216.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix://{tmp_path}/run/agent.sock"})
    eng.start()
    eng.orch("image", "import", str(busybox_rootfs(tmp_path / "bb")), "busybox")
    eng.orch("run", "-d", "--name", "a", "-p", "18093:80", "--stop-timeout", "1", "busybox",
             "sleep", "300")
    eng.orch("run", "-d", "--name", "b", "--network", "none", "--stop-timeout", "1", "busybox",
             "sleep", "300")
    pids = eng.info()
    if agent_crashed:
        # `orch agent stop --all` must still clean up, through the supervisor.
        os.kill(pids["agent_pid"], signal.SIGKILL)
        wait_for(lambda: _gone(pids["agent_pid"]))
    p = eng.orch("agent", "stop", "--all", "--state-dir", str(eng.state), "--run-dir", str(eng.run))
    assert "stopped" in p.stdout
    for pid in pids.values():
        assert _gone(pid), pid
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"orchs{tag}" not in links
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"orchs{tag}" not in tables
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


def test_a_new_supervisor_deletes_what_an_interrupted_removal_left(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.agent.conftest import Engine

    tag = os.urandom(2).hex()
    eng = Engine(state=tmp_path / "state", run=tmp_path / "run", bridge=f"orcht{tag}",
                 subnet=f"10.217.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix://{tmp_path}/run/agent.sock"})
    leftover = eng.state / "containers" / ".trash" / ("ab" * 32)
    (leftover / "upper" / "etc").mkdir(parents=True)
    (leftover / "upper" / "etc" / "written").write_text("x")
    (leftover / "record.json").write_text("{}")
    eng.start()
    try:
        assert not leftover.exists()
        assert json.loads(eng.orch("ps", "-a", "-o", "json").stdout) == []
    finally:
        eng.orch("agent", "stop", "--all", "--state-dir", str(eng.state), "--run-dir", str(eng.run))


def test_fork_bomb_stops_at_the_pids_limit(engine: Engine) -> None:
    p = engine.orch("run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
                    "for i in $(seq 30); do sleep 2 & done; wait", check=False)
    assert "can't fork" in p.stderr.lower() or "resource temporarily" in p.stderr.lower(), p.stderr


def test_cpu_quota_throttles_and_stats_show_it(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "cpu1", "--cpus", "0.2", "busybox", "sh", "-c",
                "while true; do :; done")
    try:
        def throttled() -> dict | None:  # type: ignore[type-arg]
            stats = json.loads(engine.orch("stats", "-o", "json", "cpu1").stdout)[0]
            return stats if int(stats["cpu_nr_throttled"]) >= 10 else None

        stats = wait_for(throttled, timeout=30, interval=0.2)
        # 0.2 CPUs: the loop got well under half of each 100 ms period it ran in.
        assert int(stats["cpu_usage_ns"]) < int(stats["cpu_nr_periods"]) * 0.5 * 100e6
    finally:
        engine.orch("rm", "-f", "cpu1")


def test_network_modes(engine: Engine) -> None:
    none = engine.orch("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").stdout
    assert none.split() == ["lo"]
    bridge = engine.orch("run", "--rm", "busybox", "ls", "/sys/class/net").stdout
    assert sorted(bridge.split()) == ["eth0", "lo"]
    host = engine.orch("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net").stdout
    assert engine.bridge in host.split()


def test_logs_follow_ends_when_the_container_stops(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "lf1", "busybox", "sh", "-c",
                "echo one; sleep 1; echo two >&2; sleep 0.5; echo three")
    try:
        p = engine.orch("logs", "-f", "lf1", timeout=20)
        assert p.stdout.split() == ["one", "three"]
        assert p.stderr.split() == ["two"]
    finally:
        engine.orch("rm", "-f", "lf1")


def test_push_and_pull_through_the_cli(engine: Engine, tmp_path: Path) -> None:
    from tests.registry.registry_helpers import run_registry

    with run_registry(tmp_path) as reg:
        remote = f"{reg.addr}/busybox:cli"
        p = engine.orch("push", "busybox:latest", remote)
        assert "pushed" in p.stdout
        engine.orch("image", "rm", remote, check=False)
        p = engine.orch("pull", remote)
        assert "pulled" in p.stdout
        images = json.loads(engine.orch("images", "-o", "json").stdout)
        assert any(remote in i["repo_tags"] for i in images)  # the full reference, as Docker keeps it
        out = engine.orch("run", "--rm", remote, "echo", "from the registry").stdout
        assert out == "from the registry\n"
        engine.orch("image", "rm", remote)
        df = json.loads(engine.orch("system", "df", "-o", "json").stdout)
        assert df and all("logical_size" in row for row in df)


def test_build_run_and_rebuild_from_cache(engine: Engine) -> None:
    root = Path(__file__).resolve().parents[2]
    args = ["build", "-t", "site:1", "-f", str(root / "examples/Containerfile"),
            "--build-arg", "VERSION=9.9", str(root / "examples")]
    first = engine.orch(*args, timeout=120)
    assert "built sha256:" in first.stdout
    second = engine.orch(*args, timeout=120)
    assert second.stdout.count("CACHED") >= 8, second.stdout
    assert first.stdout.split()[-2] == second.stdout.split()[-2]  # the same image id
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine.orch("run", "-d", "--name", "site1", "-p", f"{port}:8080", "site:1")
    try:
        page = get_page(f"http://127.0.0.1:{port}/")
        assert "built by orch build" in page and "version 9.9" in page
    finally:
        engine.orch("rm", "-f", "site1")
    bad = engine.orch("build", "-f", str(root / "examples/Containerfile"), "--target", "nope",
                      str(root / "examples"), check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


# Holds about 32 MiB for as long as it runs (a shell variable of that size).
HOLD_MEMORY = "x=$(yes abcdefghijklmnopqrstuvwxyz | head -c 33554432); while :; do sleep 1; done"


def _cgroup_memory(cid: str) -> int:
    """What the container's cgroup says it uses now (v1 or v2, as the runtime chose)."""
    from typing import Any

    from nodeagent.runtime.cgroups import detect

    driver: Any = detect()
    if driver.version == 1:
        return int(Path(driver.hierarchies["memory"], "orch", cid, "memory.usage_in_bytes").read_text())
    return int(Path(str(driver.root), "orch", cid, "memory.current").read_text())


def test_stats_reads_the_running_containers_in_one_call(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "st-burn", "busybox", "sh", "-c", "while :; do :; done")
    engine.orch("run", "-d", "--name", "st-hold", "--memory", "256Mi", "busybox", "sh", "-c", HOLD_MEMORY)
    try:
        def sample() -> dict | None:  # type: ignore[type-arg]
            # No names: every running container (others of this session's tests too).
            out = engine.orch("stats", "--no-stream", "-o", "json").stdout
            docs = {d["name"]: d for d in json.loads(out)}
            hold, burn = docs.get("st-hold"), docs.get("st-burn")
            # The burner busy: on a loaded machine it may get little of a core at times.
            return docs if hold and burn and hold["memory_usage_bytes"] > 32 << 20 \
                and (burn["cpu_percent"] or 0) > 20 else None

        docs = wait_for(sample, timeout=60, interval=0.2)
        burn, hold = docs["st-burn"], docs["st-hold"]
        assert burn["cpu_percent"] > 20, burn  # a busy loop: most of a core
        assert burn["id"] == inspect(engine, "st-burn")["id"]
        assert hold["memory_limit_bytes"] == 256 << 20
        assert hold["memory_percent"] == pytest.approx(hold["memory_usage_bytes"] / (256 << 20) * 100)
        now = _cgroup_memory(hold["id"])
        assert abs(hold["memory_usage_bytes"] - now) <= max(4 << 20, now // 10), (hold, now)
        assert hold["pids_current"] >= 1 and burn["pids_current"] >= 1
        # The counters are the container's own eth0's, not the host's.
        dev = engine.orch("exec", "st-burn", "cat", "/proc/net/dev").stdout
        own = sum(int(line.split(":")[1].split()[0]) for line in dev.splitlines()[2:]
                  if line.split(":")[0].strip() != "lo")
        assert 0 <= burn["network_rx_bytes"] <= own
        assert burn["time"] > 0 and burn["block_read_bytes"] >= 0

        named = json.loads(engine.orch("stats", "--no-stream", "-o", "json", "st-burn").stdout)
        assert [d["name"] for d in named] == ["st-burn"]
        table = engine.orch("stats", "--no-stream", "st-hold", "st-burn").stdout.splitlines()
        assert table[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and "MEM USAGE / LIMIT" in table[0]
        assert [row.split()[1] for row in table[1:]] == ["st-burn", "st-hold"]
        assert "256MiB" in table[2]

        p = engine.orch("stats", "--no-stream", "st-nosuch", check=False)
        assert (p.returncode, p.stdout, p.stderr) == (1, "", "orch: error: no such container: st-nosuch\n")

        # Streaming: a table a second (not a terminal: one after the other) until Ctrl-C, which exits 0.
        # As from a terminal: Ctrl-C's SIGINT is not ignored, even when the
        # suite runs in the background (a shell's `&` ignores SIGINT, and a
        # child inherits that).
        ctrl_c = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "sys.argv = ['orch', 'stats', 'st-burn']; runpy.run_module('orch', run_name='__main__')")
        live = subprocess.Popen([sys.executable, "-c", ctrl_c], env=engine.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert live.stdout is not None
        headers = 0
        while headers < 2:
            line = live.stdout.readline()
            assert line, live.stderr.read() if live.stderr else ""
            headers += line.startswith("CONTAINER ID")
        live.send_signal(signal.SIGINT)
        _, err = live.communicate(timeout=30)
        assert (live.returncode, err) == (0, "")
    finally:
        engine.orch("rm", "-f", "st-burn", "st-hold")
