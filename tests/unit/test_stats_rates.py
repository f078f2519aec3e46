"""`orch stats` without an agent: the rates made from two readings (CPU %
as Docker computes it, per-second counters, counter resets), the cells of a
row, and the command's loop on a reader that answers from a list (its
clock and sleep injected: nothing waits)."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch.cli.statscmd import (
    CLEAR,
    CLUSTER_HEADERS,
    ENGINE_HEADERS,
    Entry,
    Reading,
    counter_delta,
    cpu_percent,
    memory_percent,
    per_second,
    rates,
    row_cells,
    run,
)

GiB = 1 << 30
MiB = 1 << 20


def figures(t: float, cpu_ns: int = 0, mem: int = 0, limit: int = 0, rx: int = 0, tx: int = 0,
            read: int = 0, written: int = 0, pids: int = 1) -> dict[str, Any]:
    return {"memory_usage_bytes": mem, "memory_limit_bytes": limit, "cpu_usage_ns": cpu_ns,
            "cpu_nr_periods": 0, "cpu_nr_throttled": 0, "cpu_throttled_ns": 0, "pids_current": pids,
            "pids_limit": 0, "oom_kills": 0, "network_rx_bytes": rx, "network_tx_bytes": tx,
            "block_read_bytes": read, "block_write_bytes": written, "time": t}


@pytest.mark.parametrize(("before", "after", "seconds", "percent"), [
    (0, 1_000_000_000, 1.0, 100.0),          # one busy core
    (0, 2_000_000_000, 1.0, 200.0),          # two busy cores: 200 %, as Docker shows it
    (5_000_000_000, 5_500_000_000, 2.0, 25.0),
    (10, 10, 1.0, 0.0),                      # idle
    (9_000_000_000, 300_000_000, 1.0, 30.0),  # reset (a new cgroup): counted from zero
    (0, 1_000_000_000, 0.0, 0.0),            # no time passed: no rate
])
def test_cpu_percent(before: int, after: int, seconds: float, percent: float) -> None:
    assert cpu_percent(before, after, seconds) == pytest.approx(percent)


def test_counter_delta_and_per_second() -> None:
    assert counter_delta(100, 250) == 150
    assert counter_delta(250, 100) == 100  # reset: what it counted since
    assert per_second(0, 3000, 2.0) == 1500.0
    assert per_second(0, 3000, -1.0) == 0.0


@given(st.integers(0, 1 << 64), st.integers(0, 1 << 64),
       st.floats(-10.0, 1e6, allow_nan=False, allow_infinity=False))
def test_rates_are_never_negative(before: int, after: int, seconds: float) -> None:
    assert counter_delta(before, after) >= 0
    assert cpu_percent(before, after, seconds) >= 0.0
    assert per_second(before, after, seconds) >= 0.0
    if after >= before and seconds > 0:  # no reset: exactly the growth over the time
        assert cpu_percent(before, after, seconds) == pytest.approx((after - before) / seconds / 1e7)


@given(st.lists(st.integers(0, 1 << 40), min_size=2, max_size=20))
def test_a_counter_that_only_grows_sums_its_deltas(values: list[int]) -> None:
    """Between resets, the deltas of consecutive readings add up to the growth."""
    values = sorted(values)
    total = sum(counter_delta(a, b) for a, b in itertools.pairwise(values))
    assert total == values[-1] - values[0]


def test_memory_percent() -> None:
    assert memory_percent(64 * MiB, 256 * MiB) == 25.0
    assert memory_percent(64 * MiB, 0) is None  # no limit


def test_rates_between_two_readings() -> None:
    before = figures(100.0, cpu_ns=1_000_000_000, rx=1000, tx=500, read=0, written=4096)
    after = figures(102.0, cpu_ns=2_000_000_000, mem=32 * MiB, limit=128 * MiB, rx=3000, tx=900,
                    read=8192, written=4096)
    assert rates(before, after) == {
        "cpu_percent": pytest.approx(50.0), "memory_percent": 25.0,
        "network_rx_per_second": 1000.0, "network_tx_per_second": 200.0,
        "block_read_per_second": 4096.0, "block_write_per_second": 0.0}
    first = rates(None, after)  # no earlier reading: no rate yet, but the memory share
    assert first["cpu_percent"] is None and first["memory_percent"] == 25.0
    assert first["network_rx_per_second"] is None


def test_row_cells() -> None:
    after = figures(2.0, cpu_ns=2_500_000_000, mem=48 * MiB, limit=GiB, rx=1536, tx=648,
                    read=3 * MiB, written=0, pids=7)
    assert row_cells(after, rates(figures(1.0, cpu_ns=1_000_000_000), after)) == [
        "150.00%", "48MiB / 1GiB", "4.69%", "1.5KiB / 648B", "3MiB / 0B", "7"]
    unlimited = {**after, "memory_limit_bytes": 0}
    assert row_cells(unlimited, rates(None, unlimited))[:3] == ["--", "48MiB / unlimited", "--"]


class Readings:
    """A reader answering from ``readings`` in turn; KeyboardInterrupt after the last."""

    def __init__(self, readings: list[Reading]) -> None:
        self.readings = list(readings)

    def __call__(self) -> Reading:
        if not self.readings:
            raise KeyboardInterrupt
        return self.readings.pop(0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def task(name: str, cid: str, fig: dict[str, Any], node: str = "n1") -> Entry:
    return Entry((name, cid), {"task": name, "node": node, "service": name.split(".")[0]}, fig)


def no_wait(clock: list[float]) -> Any:
    def sleep(seconds: float) -> None:
        clock[0] += seconds
    return sleep


def test_no_stream_prints_one_table_from_two_readings() -> None:
    reads = Readings([
        Reading([task("web.1.aaaa", "c1", figures(10.0, cpu_ns=0))], ["n3: deadline exceeded"]),
        Reading([task("web.1.aaaa", "c1", figures(11.0, cpu_ns=500_000_000)),
                 task("web.2.bbbb", "c2", figures(11.0), node="n2")], ["n3: deadline exceeded"])])
    out, err, clock = io.StringIO(), io.StringIO(), [0.0]
    assert run(reads, "table", stream=False, engine=False, out=out, err=err,
               sleep=no_wait(clock), clock=lambda: clock[0]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split("   ")[0] == "TASK" and "MEM USAGE / LIMIT" in lines[0]
    assert lines[1].split()[:3] == ["web.1.aaaa", "n1", "50.00%"]
    assert lines[2].split()[:3] == ["web.2.bbbb", "n2", "--"]  # no earlier reading
    assert err.getvalue() == "orch: no figures from n3: deadline exceeded\n"
    assert clock[0] == pytest.approx(1.0)  # a second between the readings


def test_json_has_raw_figures_and_rates() -> None:
    reads = Readings([Reading([task("web.1.aaaa", "c1", figures(10.0, cpu_ns=0, rx=0))]),
                      Reading([task("web.1.aaaa", "c1", figures(12.0, cpu_ns=4_000_000_000, rx=2048,
                                                                mem=MiB, limit=4 * MiB))])])
    out, clock = io.StringIO(), [0.0]
    # -o json is one reading's objects even without --no-stream.
    assert run(reads, "json", stream=True, engine=False, out=out, err=io.StringIO(),
               sleep=no_wait(clock), clock=lambda: clock[0]) == 0
    [doc] = json.loads(out.getvalue())
    assert (doc["task"], doc["node"], doc["service"], doc["id"]) == ("web.1.aaaa", "n1", "web", "c1")
    assert doc["cpu_usage_ns"] == 4_000_000_000 and doc["network_rx_bytes"] == 2048
    assert doc["cpu_percent"] == pytest.approx(200.0)
    assert doc["memory_percent"] == 25.0 and doc["network_rx_per_second"] == 1024.0


def test_stream_redraws_until_interrupted() -> None:
    def reading(t: float, ns: int) -> Reading:
        return Reading([Entry(("c1" * 32,), {"id": "c1" * 32, "name": "web"}, figures(t, cpu_ns=ns))])

    reads = Readings([reading(0.0, 0), reading(1.0, 250_000_000), reading(2.0, 1_250_000_000)])
    clock = [0.0]
    plain = io.StringIO()
    assert run(reads, "table", stream=True, engine=True, out=plain, err=io.StringIO(),
               sleep=no_wait(clock), clock=lambda: clock[0]) == 0  # Ctrl-C: exit 0
    tables = plain.getvalue().split("\n\n")
    assert len(tables) == 2 and CLEAR not in plain.getvalue()  # not a terminal: one table a reading
    assert [t.splitlines()[0].split("   ")[0] for t in tables] == [ENGINE_HEADERS[0]] * 2
    assert tables[0].splitlines()[1].split()[:3] == ["c1c1c1c1c1c1", "web", "25.00%"]
    assert tables[1].splitlines()[1].split()[2] == "100.00%"

    reads = Readings([reading(0.0, 0), reading(1.0, 0), reading(2.0, 0)])
    term = Terminal()
    run(reads, "table", stream=True, engine=True, out=term, err=io.StringIO(),
        sleep=no_wait(clock), clock=lambda: clock[0])
    assert term.getvalue().count(CLEAR) == 2 and term.getvalue().startswith(CLEAR)


def test_headers_are_dockers() -> None:
    assert CLUSTER_HEADERS == ["TASK", "NODE", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                               "BLOCK I/O", "PIDS"]
    assert ENGINE_HEADERS[:2] == ["CONTAINER ID", "NAME"] and ENGINE_HEADERS[2:] == CLUSTER_HEADERS[2:]
