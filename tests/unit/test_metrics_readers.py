"""The agent's metrics without an agent: the cgroup v1 and v2 readers against
temp-dir cgroupfs fakes, /proc/<pid>/net/dev parsing, the label rules, the
layers' sizes, the text format against prometheus_client's own, and the
HTTP server on loopback."""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.metrics import default_address
from nodeagent.metrics.cgroupstats import SpecCache, V1Reader, V2Reader
from nodeagent.metrics.collector import NodeCollector, container_labels, sanitize
from nodeagent.metrics.exposition import render
from nodeagent.metrics.fsusage import FsUsage, disk_usage, writable_layer
from nodeagent.metrics.netdev import parse_net_dev
from nodeagent.metrics.server import MetricsServer

CID = "c" * 64
GROUP = f"orch/{CID}"

V2_FILES = {
    "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
                "nr_periods 40\nnr_throttled 3\nthrottled_usec 1500000\n",
    "cpu.max": "50000 100000\n",
    "memory.current": "10485760\n",
    "memory.max": "67108864\n",
    "memory.stat": "anon 4194304\nfile 6291456\nactive_file 2097152\ninactive_file 4194304\n",
    "memory.events": "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n",
}

V1_FILES = {
    "cpuacct": {"cpuacct.usage": "3000000000\n", "cpuacct.stat": "user 200\nsystem 50\n"},
    "cpu": {"cpu.stat": "nr_periods 10\nnr_throttled 1\nthrottled_time 250000000\n",
            "cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"},
    "memory": {"memory.usage_in_bytes": "8388608\n", "memory.failcnt": "4\n",
               "memory.limit_in_bytes": "9223372036854771712\n",
               "memory.stat": "cache 1\nrss 2\ntotal_cache 3145728\ntotal_rss 2097152\n"
                              "total_inactive_file 1048576\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"},
}


def fake_v2(root: Path) -> V2Reader:
    group = root / GROUP
    group.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    for name, text in V2_FILES.items():
        (group / name).write_text(text)
    return V2Reader(str(root))


def fake_v1(root: Path) -> V1Reader:
    hierarchies = {}
    for controller, files in V1_FILES.items():
        group = root / controller / GROUP
        group.mkdir(parents=True)
        for name, text in files.items():
            (group / name).write_text(text)
        hierarchies[controller] = str(root / controller)
    return V1Reader(hierarchies)


def test_v2_reader(tmp_path: Path) -> None:
    reader = fake_v2(tmp_path)
    u = reader.usage(GROUP)
    assert u is not None
    assert (u.cpu_seconds, u.cpu_user_seconds, u.cpu_system_seconds) == (2.5, 2.0, 0.5)
    assert (u.cfs_periods, u.cfs_throttled_periods, u.cfs_throttled_seconds) == (40, 3, 1.5)
    assert u.memory_usage == 10485760
    assert u.memory_working_set == 10485760 - 4194304
    assert (u.memory_rss, u.memory_cache, u.memory_failcnt, u.oom_events) == (4194304, 6291456, 7, 2)
    limits = reader.limits(GROUP)
    assert (limits.memory_bytes, limits.cpus) == (67108864, 0.5)
    assert reader.usage("orch/" + "d" * 64) is None


def test_v2_reader_without_limits_or_memory_controller(tmp_path: Path) -> None:
    reader = fake_v2(tmp_path)
    group = tmp_path / GROUP
    (group / "memory.max").write_text("max\n")
    (group / "cpu.max").write_text("max 100000\n")
    assert reader.limits(GROUP).memory_bytes is None and reader.limits(GROUP).cpus is None
    for name in ("memory.current", "memory.stat", "memory.events"):
        (group / name).unlink()
    u = reader.usage(GROUP)
    assert u is not None and u.cpu_seconds == 2.5 and u.memory_usage is None and u.oom_events is None


def test_v1_reader(tmp_path: Path) -> None:
    reader = fake_v1(tmp_path)
    u = reader.usage(GROUP)
    assert u is not None
    tick = os.sysconf("SC_CLK_TCK")
    assert (u.cpu_seconds, u.cpu_user_seconds, u.cpu_system_seconds) == (3.0, 200 / tick, 50 / tick)
    assert (u.cfs_periods, u.cfs_throttled_periods, u.cfs_throttled_seconds) == (10, 1, 0.25)
    assert (u.memory_usage, u.memory_working_set) == (8388608, 8388608 - 1048576)
    assert (u.memory_rss, u.memory_cache, u.memory_failcnt, u.oom_events) == (2097152, 3145728, 4, 1)
    limits = reader.limits(GROUP)  # "unlimited" spelled as v1 spells it
    assert limits.memory_bytes is None and limits.cpus is None


def test_working_set_never_negative(tmp_path: Path) -> None:
    reader = fake_v2(tmp_path)
    (tmp_path / GROUP / "memory.stat").write_text("inactive_file 99999999999\n")
    u = reader.usage(GROUP)
    assert u is not None and u.memory_working_set == 0


def test_limits_are_read_once_per_start(tmp_path: Path) -> None:
    reader = fake_v2(tmp_path)
    cache = SpecCache(reader)
    assert cache.get(CID, 1.0, GROUP).memory_bytes == 67108864
    (tmp_path / GROUP / "memory.max").write_text("1048576\n")
    assert cache.get(CID, 1.0, GROUP).memory_bytes == 67108864  # same start: cached
    assert cache.get(CID, 2.0, GROUP).memory_bytes == 1048576  # a restart reads again
    cache.keep(set())
    assert not cache._cache


def test_net_dev_leaves_out_loopback() -> None:
    data = (b"Inter-|   Receive                                                |  Transmit\n"
            b" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
            b"drop fifo colls carrier compressed\n"
            b"    lo:     100       2    0    0    0     0          0         0      100       2    0 "
            b"   0    0     0       0          0\n"
            b"  eth0:    5000      40    1    2    0     0          0         0     3000      30    3 "
            b"   4    0     0       0          0\n")
    (eth0,) = parse_net_dev(data)
    assert (eth0.name, eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped) == \
        ("eth0", 5000, 40, 1, 2)
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped) == (3000, 30, 3, 4)
    assert parse_net_dev(b"") == []


def test_labels_of_a_task_container() -> None:
    rec = {"id": CID, "name": "web.3.abcdef12", "image": "busybox:latest",
           "labels": {"orch.task": "t" * 25, "orch.service": "web", "com.example/tier": "front",
                      "com_example_tier": "shadowed"}}
    labels = container_labels(rec, "n1")
    assert labels["id"] == "/" + GROUP and labels["name"] == "web.3.abcdef12"
    assert (labels["service"], labels["task"], labels["slot"], labels["node"]) == ("web", "t" * 25, "3", "n1")
    assert labels["container_label_orch_service"] == "web"
    assert labels["container_label_com_example_tier"] == "front"  # the first key sorted wins
    plain = container_labels({"id": CID, "name": "x", "image": "i", "labels": {}}, "n1")
    assert (plain["service"], plain["task"], plain["slot"]) == ("", "", "")
    assert sanitize("a.b-c/d") == "a_b_c_d"


def test_default_address() -> None:
    assert default_address("10.89.0.11:7701") == "10.89.0.11:7702"
    assert default_address("[::1]:9000") == "[::1]:9001"
    assert default_address("h:65535") == ""


def test_disk_usage_counts_each_inode_once(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    upper = bundle / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "f").write_bytes(os.urandom(64 * 1024))
    os.link(upper / "d" / "f", upper / "hard")
    assert writable_layer(str(bundle)) == str(upper)
    size = disk_usage(str(upper))
    assert size is not None and 64 * 1024 <= size < 2 * 64 * 1024
    assert disk_usage(str(tmp_path / "gone")) is None
    (bundle / "layer" / "upper").mkdir(parents=True)  # a layer with its own filesystem
    assert writable_layer(str(bundle)) == str(bundle / "layer" / "upper")


def test_layer_sizes_are_measured_when_missing_or_stale() -> None:
    now = [100.0]
    measured: list[str] = []

    def measure(path: str) -> int:
        measured.append(path)
        return len(path)

    fs = FsUsage(refresh=60, clock=lambda: now[0], measure=measure)
    assert fs.figures({"a": "/x/a"}) == {}  # not measured yet: absent, not 0
    fs.pass_once()
    assert fs.figures({"a": "/x/a", "b": "/x/bb"}) == {"a": 4}
    fs.pass_once()
    assert measured == ["/x/a", "/x/bb"]
    now[0] += 61
    fs.pass_once()
    assert measured[2:] == ["/x/a", "/x/bb"]
    assert fs.figures({"b": "/x/bb"}) == {"b": 5}  # a's container is gone: so is its figure
    assert fs.figures({"a": "/x/a"}) == {}


def _collector(tmp_path: Path, recs: list[dict[str, Any]], **kw: Any) -> NodeCollector:
    return NodeCollector(lambda: recs, fake_v2(tmp_path), "n1", clock=lambda: 1234.5, **kw)


def _record(**kw: Any) -> dict[str, Any]:
    return {"id": CID, "name": "web.1.abcdef12", "image": "busybox:latest", "state": "running",
            "pid": os.getpid(), "started_at": 1000.0, "log_path": "/nonexistent/container.log",
            "labels": {"orch.service": "web", "orch.task": "t1"}, **kw}


def _parse(text: bytes) -> dict[str, list[Any]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_collector_families_parse_with_prometheus_client(tmp_path: Path) -> None:
    health = {"status": "unhealthy", "failing_streak": 3,
              "log": [{"start": 10.0, "end": 10.25, "exit_code": 1, "output": "no"}]}
    recs = [_record(health=health), {**_record(), "id": "e" * 64, "state": "exited", "pid": 0}]
    samples = _parse(render([_collector(tmp_path, recs, tasks=lambda: ["running", "running", "failed"])]))
    (cpu,) = samples["container_cpu_usage_seconds_total"]
    assert cpu.value == 2.5 and cpu.labels["service"] == "web" and cpu.labels["slot"] == "1"
    assert samples["container_oom_events_total"][0].value == 2
    assert samples["container_spec_memory_limit_bytes"][0].value == 67108864
    assert samples["container_last_seen"][0].value == 1234.5
    assert samples["container_start_time_seconds"][0].value == 1000.0
    # the record's pid is this process: its namespace's interfaces, but lo
    received = samples.get("container_network_receive_bytes_total", [])
    assert "lo" not in {s.labels["interface"] for s in received}
    status = {s.labels["status"]: s.value for s in samples["orch_container_health_status"]}
    assert status == {"starting": 0, "healthy": 0, "unhealthy": 1}
    assert samples["orch_container_health_probe_duration_seconds"][0].value == 0.25
    assert samples["orch_container_health_failing_streak"][0].value == 3
    by_state = {s.labels["state"]: s.value for s in samples["orch_node_containers"]}
    assert by_state["running"] == 1 and by_state["exited"] == 1
    tasks = {s.labels["state"]: s.value for s in samples["orch_node_tasks"]}
    assert tasks["running"] == 2 and tasks["failed"] == 1 and tasks["pending"] == 0
    assert samples["orch_node_allocated_cpus"][0].value == 0.5
    assert samples["orch_node_allocated_memory_bytes"][0].value == 67108864
    assert samples["machine_cpu_cores"][0].value == os.cpu_count()


def test_image_pulls_are_counted_by_result(tmp_path: Path) -> None:
    from nodeagent.images import pullstats

    collector = _collector(tmp_path, [])

    def pulls() -> dict[str, float]:
        samples = _parse(render([collector]))
        return {s.labels["result"]: s.value for s in samples["orch_image_pulls_total"]}

    before = pulls()
    with pullstats.counting():
        pass
    with pytest.raises(OSError), pullstats.counting():
        raise OSError("registry unreachable")
    after = pulls()
    assert (after["ok"] - before["ok"], after["failed"] - before["failed"]) == (1, 1)
    assert "orch_image_pull_seconds_total" in _parse(render([collector]))


def test_a_supervisor_that_does_not_answer_still_gives_a_scrape(tmp_path: Path) -> None:
    def fails() -> list[dict[str, Any]]:
        raise ConnectionError("supervisor gone")

    collector = NodeCollector(fails, fake_v2(tmp_path), "n1")
    samples = _parse(render([collector]))
    assert samples["orch_agent_supervisor_up"][0].value == 0
    assert "container_cpu_usage_seconds_total" not in samples


_names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_names, st.sampled_from(["counter", "gauge", "unknown", "info"]),
                          st.lists(st.tuples(st.dictionaries(_names, _values, max_size=3),
                                             st.floats(allow_nan=False)), max_size=4)),
                max_size=4, unique_by=lambda f: f[0]))
def test_render_is_what_prometheus_client_writes(families: list[Any]) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.core import Metric

    class Fixed:
        def collect(self) -> list[Any]:
            out = []
            for name, kind, samples in families:
                metric = Metric(name, f"help of {name}\\ with \n", kind)
                suffix = {"counter": "_total", "info": "_info"}.get(kind, "")
                shared: dict[str, str] = {}
                for labels, value in samples:
                    labels = labels or shared  # the same dict for several samples, as the collector does
                    metric.add_sample(name + suffix, labels, value)
                out.append(metric)
            return out

    class Registry:
        def collect(self) -> list[Any]:
            return Fixed().collect()

    assert render([Fixed()]) == generate_latest(Registry())  # type: ignore[arg-type]


def test_process_metrics_load_without_the_http_side() -> None:
    code = ("import sys; from nodeagent.metrics import _prom; m = _prom.load(); "
            "m['process_collector'].ProcessCollector(registry=None).collect(); "
            "bad = [n for n in ('ssl', 'http.server', 'urllib.request', 'email') if n in sys.modules]; "
            "assert not bad, bad; assert 'prometheus_client' not in sys.modules; "
            "import prometheus_client; from prometheus_client import generate_latest; print('ok')")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "ok", out.stderr


def _get(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def server() -> Any:
    srv = MetricsServer(f"127.0.0.1:{_free_port()}", lambda: b"m 1.0\n")
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_serves_metrics_only(server: MetricsServer) -> None:
    ok = _get(server.port, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\nm 1.0\n")
    assert b"Content-Type: text/plain; version=0.0.4" in ok
    assert _get(server.port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert _get(server.port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert _get(server.port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400")
    head = _get(server.port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")


def test_a_stalled_client_does_not_stop_the_server(server: MetricsServer) -> None:
    stalled = socket.create_connection(("127.0.0.1", server.port))
    try:
        stalled.sendall(b"GET /metr")  # and nothing more: the server gives up on it
        done = threading.Event()
        answer: list[bytes] = []

        def scrape() -> None:
            answer.append(_get(server.port, b"GET /metrics HTTP/1.1\r\n\r\n"))
            done.set()

        threading.Thread(target=scrape, daemon=True).start()
        assert done.wait(30)
        assert answer[0].startswith(b"HTTP/1.1 200")
    finally:
        stalled.close()


def test_a_taken_or_bad_address_is_an_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError):
            MetricsServer(f"127.0.0.1:{taken.getsockname()[1]}", lambda: b"")
    for bad in ("nohost", "h:0", "h:65536", "h:x"):
        with pytest.raises(ValueError, match="invalid address"):
            MetricsServer(bad, lambda: b"")


@pytest.mark.parametrize(("flags", "expected"), [
    ([], ("", False)),
    (["--listen", "10.89.0.11:7701"], ("10.89.0.11:7702", True)),
    (["--listen", "10.89.0.11:7701", "--metrics-listen", "none"], ("", False)),
    (["--listen", "10.89.0.11:7701", "--metrics-listen", "0.0.0.0:9100"], ("0.0.0.0:9100", False)),
    (["--metrics-listen", "127.0.0.1:9100"], ("127.0.0.1:9100", False)),
])
def test_metrics_listen_flag(flags: list[str], expected: tuple[str, bool]) -> None:
    import argparse

    from orch.cli.agentcmd import _metrics_listen, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert _metrics_listen(parser.parse_args(["agent", *flags])) == expected


@pytest.mark.parametrize("flags", [["--metrics-listen", "nohost"],
                                   ["--listen", "10.0.0.1:7701", "--metrics-listen", "10.0.0.1:7701"]])
def test_metrics_listen_flag_refuses(flags: list[str]) -> None:
    import argparse

    from orch.cli.agentcmd import _metrics_listen, register
    from orch.cli.client import CLIError

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    with pytest.raises(CLIError, match="--metrics-listen"):
        _metrics_listen(parser.parse_args(["agent", *flags]))
