"""Health checks on a real node engine: `orch run --health-*`, http and tcp
probes, timeouts, the image's HEALTHCHECK, as `orch ps` and `orch inspect`
show them. Short intervals; every wait is on a condition."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.conftest import Engine


def wait_for(fn: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in time")
        time.sleep(0.05)


def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(engine.orch("inspect", ref).stdout)[0]
    return doc


def health(engine: Engine, ref: str) -> dict[str, Any]:
    return inspect(engine, ref)["health"] or {}


def ps_status(engine: Engine, name: str) -> str:
    rows = json.loads(engine.orch("ps", "-o", "json").stdout)
    (row,) = [r for r in rows if r["name"] == name]
    # The table's STATUS column, as the CLI prints it:
    lines = engine.orch("ps").stdout.splitlines()
    (line,) = [ln for ln in lines if ln.rstrip().endswith(" " + name)]
    assert row["state"] == "running"
    return line


@pytest.fixture
def names(engine: Engine) -> Iterator[list[str]]:
    """Containers to remove at the end, whatever happened."""
    made: list[str] = []
    yield made
    for name in made:
        engine.orch("rm", "-f", name, check=False)


def run(engine: Engine, names: list[str], name: str, *args: str) -> None:
    names.append(name)
    engine.orch("run", "-d", "--name", name, *args)


def test_health_cmd_unhealthy_after_retries_then_healthy(engine: Engine, names: list[str]) -> None:
    run(engine, names, "hc1", "--health-cmd", "test -f /tmp/ok && echo fine || { echo missing; exit 3; }",
        "--health-interval", "200ms", "--health-retries", "2", "--health-timeout", "5s",
        "busybox", "sleep", "300")
    doc = inspect(engine, "hc1")
    assert doc["healthcheck"]["test"] == ["CMD-SHELL",
                                          "test -f /tmp/ok && echo fine || { echo missing; exit 3; }"]
    assert doc["health"]["status"] in ("starting", "unhealthy")
    h = wait_for(lambda: (x := health(engine, "hc1"))["status"] == "unhealthy" and x, what="unhealthy")
    assert h["failing_streak"] >= 2
    assert all(r["exit_code"] == 1 and r["output"] == "missing\n" for r in h["log"])
    assert 2 <= len(h["log"]) <= 5
    assert "(unhealthy)" in ps_status(engine, "hc1")
    # An unhealthy engine-mode container is only marked, as Docker does.
    assert inspect(engine, "hc1")["state"] == "running"

    engine.orch("exec", "hc1", "touch", "/tmp/ok")
    h = wait_for(lambda: (x := health(engine, "hc1"))["status"] == "healthy" and x, what="healthy")
    assert h["failing_streak"] == 0
    assert h["log"][-1]["exit_code"] == 0 and h["log"][-1]["output"] == "fine\n"
    assert h["log"][-1]["end"] >= h["log"][-1]["start"] > 0
    assert "(healthy)" in ps_status(engine, "hc1")
    # Saved in the record on the change: what a restarted agent reads.
    cid = inspect(engine, "hc1")["id"]
    saved = json.loads((engine.state / "containers" / cid / "record.json").read_text().splitlines()[-1])
    assert saved["health"]["status"] == "healthy"
    # A restart starts over from "starting" (its check still passes at once).
    engine.orch("stop", "-t", "1", "hc1")
    engine.orch("start", "hc1")
    h = health(engine, "hc1")
    assert h["status"] in ("starting", "healthy")


def test_failures_in_the_start_period_do_not_count(engine: Engine, names: list[str]) -> None:
    run(engine, names, "hc2", "--health-cmd", "head -c 10000 /dev/zero | tr '\\0' x; exit 1",
        "--health-interval", "200ms", "--health-start-interval", "100ms",
        "--health-start-period", "1h", "--health-retries", "1", "busybox", "sleep", "300")
    h = wait_for(lambda: len((x := health(engine, "hc2"))["log"]) >= 5 and x, what="5 results")
    assert h["status"] == "starting" and h["failing_streak"] == 0
    assert len(h["log"]) == 5
    assert all(r["output"] == "x" * 4096 for r in h["log"])  # capped at 4 KiB
    assert "(health: starting)" in ps_status(engine, "hc2")


def test_a_probe_past_its_timeout_fails_and_leaves_nothing(engine: Engine, names: list[str]) -> None:
    run(engine, names, "hc3", "--health-cmd", "sleep 100; true", "--health-timeout", "300ms",
        "--health-interval", "100ms", "--health-retries", "1", "busybox", "sleep", "300")
    h = wait_for(lambda: len((x := health(engine, "hc3"))["log"]) >= 3 and x, what="3 results")
    assert h["status"] == "unhealthy"
    assert all(r["output"] == "Health check exceeded timeout (0.3s)" and r["exit_code"] == -1
               for r in h["log"])
    # Three probes timed out: at most the one under way is left (its shell and its sleep).
    ps = engine.orch("exec", "hc3", "ps", "-o", "args").stdout.splitlines()
    assert len([line for line in ps if line.strip() == "sleep 100"]) <= 1, ps


def grpc_run(engine: Engine, name: str, command: list[str], network: str = "bridge", **check: Any) -> None:
    """Run a container with ``check`` (http and tcp probes have no `orch run` flags)."""
    import grpc

    from proto import agent_pb2, agent_pb2_grpc

    config = agent_pb2.ContainerConfig(image="busybox", name=name, network=network,
                                       command=agent_pb2.StringList(values=command),
                                       healthcheck=agent_pb2.HealthCheck(**check))
    with grpc.insecure_channel(f"unix:{engine.run}/agent.sock") as ch:
        for _ in agent_pb2_grpc.AgentStub(ch).Run(agent_pb2.RunRequest(config=config, attach=False),
                                                  timeout=30):
            pass


HTTPD = ["sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"]


def test_http_probe(engine: Engine, names: list[str]) -> None:
    from proto import agent_pb2

    names += ["web-ok", "web-404"]
    grpc_run(engine, "web-ok", HTTPD, interval=0.2, retries=1,
             http=agent_pb2.HttpProbe(port=8080, path="/index.html"))
    grpc_run(engine, "web-404", HTTPD, interval=0.2, retries=1,
             http=agent_pb2.HttpProbe(port=8080, path="/nope", status=200))
    ip = inspect(engine, "web-ok")["ip_address"]
    h = wait_for(lambda: (x := health(engine, "web-ok"))["status"] == "healthy" and x, what="healthy")
    assert h["log"][-1]["output"].startswith(f"GET http://{ip}:8080/index.html: HTTP/1.")
    assert " 200" in h["log"][-1]["output"]
    h = wait_for(lambda: (x := health(engine, "web-404"))["status"] == "unhealthy" and x, what="unhealthy")
    assert " 404" in h["log"][-1]["output"] and "(expected 200)" in h["log"][-1]["output"]


def test_tcp_probe(engine: Engine, names: list[str]) -> None:
    from proto import agent_pb2

    names += ["nc-open", "nc-closed", "nc-none"]
    listen = ["nc", "-ll", "-p", "9000", "-e", "/bin/true"]
    grpc_run(engine, "nc-open", listen, interval=0.2, retries=1, tcp=agent_pb2.TcpProbe(port=9000))
    grpc_run(engine, "nc-closed", listen, interval=0.2, retries=1, tcp=agent_pb2.TcpProbe(port=9001))
    h = wait_for(lambda: (x := health(engine, "nc-open"))["status"] == "healthy" and x, what="healthy")
    assert h["log"][-1]["output"].startswith("connected to ")
    h = wait_for(lambda: (x := health(engine, "nc-closed"))["status"] == "unhealthy" and x,
                 what="unhealthy")
    assert "Connection refused" in h["log"][-1]["output"]
    # No address to probe (network none): the probe fails, saying so.
    grpc_run(engine, "nc-none", listen, network="none", interval=0.2, retries=1,
             tcp=agent_pb2.TcpProbe(port=9000))
    h = wait_for(lambda: (x := health(engine, "nc-none"))["status"] == "unhealthy" and x,
                 what="unhealthy")
    assert "no address to probe" in h["log"][-1]["output"]


def test_the_images_healthcheck_and_no_healthcheck(engine: Engine, names: list[str],
                                                   tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text(
        "FROM busybox\n"
        "HEALTHCHECK --interval=200ms --retries=1 CMD test -f /tmp/ok\n")
    engine.orch("build", "-t", "hcimage:1", "-f", str(tmp_path / "Containerfile"), str(tmp_path),
                timeout=120)
    try:
        run(engine, names, "img1", "hcimage:1", "sleep", "300")
        assert inspect(engine, "img1")["healthcheck"]["test"] == ["CMD-SHELL", "test -f /tmp/ok"]
        wait_for(lambda: health(engine, "img1").get("status") == "unhealthy", what="unhealthy")
        # The run's fields over the image's: its command, with more retries.
        run(engine, names, "img2", "--health-retries", "4", "hcimage:1", "sleep", "300")
        check = inspect(engine, "img2")["healthcheck"]
        assert (check["test"], check["retries"], check["interval"]) == (
            ["CMD-SHELL", "test -f /tmp/ok"], 4, 0.2)
        run(engine, names, "img3", "--no-healthcheck", "hcimage:1", "sleep", "300")
        doc = inspect(engine, "img3")
        assert doc["healthcheck"] is None and doc["health"] is None
        assert ps_status(engine, "img3").count("(") == 0
    finally:
        for name in names:
            engine.orch("rm", "-f", name, check=False)
        engine.orch("image", "rm", "hcimage:1", check=False)


@pytest.mark.parametrize(("flags", "message"), [
    (["--health-interval", "5 s"], "invalid --health-interval '5 s'"),
    (["--health-timeout=-1s"], "invalid --health-timeout '-1s'"),
    (["--health-retries", "two"], "invalid --health-retries 'two'"),
    (["--health-start-period", "25h"], "invalid --health-start-period '25h'"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts"),
    (["--health-cmd", ""], "invalid --health-cmd ''"),
])
def test_bad_health_flags_get_one_line(engine: Engine, flags: list[str], message: str) -> None:
    p = engine.orch("run", "--rm", *flags, "busybox", "true", check=False)
    assert p.returncode != 0
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
