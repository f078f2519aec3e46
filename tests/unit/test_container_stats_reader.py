"""The agent's Stats/StatsAll readings without an agent: cgroup v1 and v2
temp-dir fakes (the metrics readers plus pids and block I/O), the network
counters of a real /proc/<pid>/net/dev, and how StatsAll's refs pick
containers."""

from __future__ import annotations

import os
from pathlib import Path

from nodeagent.metrics.cgroupstats import V1Reader, V2Reader
from nodeagent.metrics.containerstats import StatsReader, pick, read_block_v1, read_block_v2, read_pids
from nodeagent.metrics.netdev import read_net_dev

CID = "c" * 64
GROUP = f"orch/{CID}"
REC = {"id": CID, "name": "web", "pid": 0, "started_at": 1.0}

V2_FILES = {
    "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
                "nr_periods 40\nnr_throttled 3\nthrottled_usec 1500000\n",
    "memory.current": "10485760\n",
    "memory.max": "67108864\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n",
    "pids.current": "3\n",
    "pids.max": "max\n",
    "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
               "8:16 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
}


def fake_v2(root: Path) -> StatsReader:
    group = root / GROUP
    group.mkdir(parents=True)
    for name, text in V2_FILES.items():
        (group / name).write_text(text)
    return StatsReader(V2Reader(str(root)), str(root), str(root), clock=lambda: 1234.5)


def fake_v1(root: Path) -> StatsReader:
    files = {
        "cpuacct": {"cpuacct.usage": "3000000007\n"},
        "cpu": {"cpu.stat": "nr_periods 10\nnr_throttled 1\nthrottled_time 250000000\n"},
        "memory": {"memory.usage_in_bytes": "8388608\n", "memory.limit_in_bytes": "9223372036854771712\n"},
        "pids": {"pids.current": "2\n", "pids.max": "100\n"},
        "blkio": {"blkio.throttle.io_service_bytes": "8:0 Read 512\n8:0 Write 1024\n8:0 Sync 0\n"
                                                     "8:0 Async 1536\n8:0 Total 1536\nTotal 1536\n"},
    }
    for controller, names in files.items():
        group = root / controller / GROUP
        group.mkdir(parents=True)
        for name, text in names.items():
            (group / name).write_text(text)
    reader = V1Reader({c: str(root / c) for c in ("cpu", "cpuacct", "memory")})
    return StatsReader(reader, str(root / "pids"), str(root / "blkio"), clock=lambda: 99.0)


def test_v2_reading(tmp_path: Path) -> None:
    assert fake_v2(tmp_path).read(REC) == {
        "memory_usage_bytes": 10485760, "memory_limit_bytes": 67108864, "cpu_usage_ns": 2_500_000_000,
        "cpu_nr_periods": 40, "cpu_nr_throttled": 3, "cpu_throttled_ns": 1_500_000_000,
        "pids_current": 3, "pids_limit": 0, "oom_kills": 1, "network_rx_bytes": 0, "network_tx_bytes": 0,
        "block_read_bytes": 4196, "block_write_bytes": 8192, "time": 1234.5}


def test_v1_reading(tmp_path: Path) -> None:
    got = fake_v1(tmp_path).read(REC)
    assert got is not None
    assert (got["cpu_usage_ns"], got["cpu_nr_periods"], got["cpu_nr_throttled"]) == (3000000007, 10, 1)
    assert (got["memory_usage_bytes"], got["memory_limit_bytes"]) == (8388608, 0)  # v1's "unlimited"
    assert (got["pids_current"], got["pids_limit"]) == (2, 100)
    assert (got["block_read_bytes"], got["block_write_bytes"]) == (512, 1024)
    assert got["time"] == 99.0


def test_the_recursive_blkio_file_wins(tmp_path: Path) -> None:
    (tmp_path / "blkio.throttle.io_service_bytes").write_text("8:0 Read 1\n8:0 Write 2\n")
    (tmp_path / "blkio.throttle.io_service_bytes_recursive").write_text("8:0 Read 10\n8:0 Write 20\n")
    assert read_block_v1(str(tmp_path)) == (10, 20)


def test_missing_files_read_as_absent(tmp_path: Path) -> None:
    assert read_pids(str(tmp_path)) is None
    assert read_block_v1(str(tmp_path)) is None and read_block_v2(str(tmp_path)) is None
    reader = fake_v2(tmp_path)
    for name in ("pids.current", "io.stat"):
        (tmp_path / GROUP / name).unlink()
    got = reader.read(REC)
    assert got is not None and (got["pids_current"], got["block_read_bytes"]) == (0, 0)
    # A group that is gone (the container stopped between the list and the read): no reading.
    assert reader.read({**REC, "id": "d" * 64}) is None
    hostless = StatsReader(V2Reader(str(tmp_path)), None, None)  # no pids or io hierarchy
    got = hostless.read(REC)
    assert got is not None and got["pids_current"] == 0 and got["block_write_bytes"] == 0


def test_limits_are_cached_per_start_and_forgotten(tmp_path: Path) -> None:
    reader = fake_v2(tmp_path)
    assert reader.read(REC)["memory_limit_bytes"] == 67108864  # type: ignore[index]
    (tmp_path / GROUP / "memory.max").write_text("1048576\n")
    assert reader.read(REC)["memory_limit_bytes"] == 67108864  # type: ignore[index]
    reader.keep(set())  # no longer running: forgotten, read again next time
    assert reader.read(REC)["memory_limit_bytes"] == 1048576  # type: ignore[index]


def test_network_counters_sum_every_interface_but_lo(tmp_path: Path) -> None:
    reader = fake_v2(tmp_path)
    before = read_net_dev(os.getpid())
    got = reader.read({**REC, "pid": os.getpid()})  # this process's network namespace
    after = read_net_dev(os.getpid())
    assert got is not None and all(i.name != "lo" for i in before)
    assert sum(i.rx_bytes for i in before) <= got["network_rx_bytes"] <= sum(i.rx_bytes for i in after)
    assert sum(i.tx_bytes for i in before) <= got["network_tx_bytes"] <= sum(i.tx_bytes for i in after)


def test_pick_by_id_name_or_unique_prefix() -> None:
    recs = [{"id": "abc123", "name": "web"}, {"id": "abd456", "name": "db"}, {"id": "ffff", "name": "abc"}]
    assert [r["id"] for r in pick(recs, ["db", "abc123", "ff", "web"])] == ["abd456", "abc123", "ffff"]
    assert pick(recs, ["ab"]) == []  # ambiguous prefix
    assert pick(recs, ["nosuch", ""]) == []
    assert [r["id"] for r in pick(recs, ["abc"])] == ["ffff"]  # a name beats an id prefix
