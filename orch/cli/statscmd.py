"""``orch stats``: live resource use, like `docker stats`.

Cluster mode: ``orch stats [SERVICE...]`` shows the running tasks of those
services (of every service without names), one TaskStats call a reading;
the control plane asks each node once. Engine mode: ``orch stats
[CONTAINER...]`` shows the local agent's running containers, one StatsAll
call a reading. Every second a new reading is compared with the last and the
table drawn again: on a terminal over the last one (as Docker does), else
one table a reading, until Ctrl-C. ``--no-stream`` takes two readings a
second apart (so CPU % is real) and prints one table; ``-o json|yaml``
does the same, as a list of objects with the raw figures and the rates.

The agents send counters and the time they read them; the rates are made
here, from two readings (pure functions, tested alone):

- CPU %: CPU time used over wall time passed, times 100, as Docker's: two
  busy cores are 200 %;
- MEM USAGE / LIMIT and MEM %: the cgroup's usage over its limit ("--"
  without a limit);
- NET I/O and BLOCK I/O: the counters (received / sent, read / written);
  the JSON adds them per second.

A counter that went down (the container's cgroup was made anew) counts from
zero: no rate is ever negative. A row with no earlier reading (a task that
just started) shows "--" for its CPU %. Nodes that did not answer are named
in one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from model.units import format_bytes
from orch.cli.client import CLIError

__all__ = ["Entry", "Reading", "counter_delta", "cpu_percent", "memory_percent", "per_second",
           "rates", "row_cells", "run"]

INTERVAL = 1.0  # seconds between readings
CLEAR = "\x1b[2J\x1b[H"  # clear the terminal, cursor home: what `docker stats` redraws with
COMMON_HEADERS = ["CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
CLUSTER_HEADERS = ["TASK", "NODE", *COMMON_HEADERS]
ENGINE_HEADERS = ["CONTAINER ID", "NAME", *COMMON_HEADERS]

# The raw figures of a StatsResponse, as the JSON output names them.
FIGURES = ("memory_usage_bytes", "memory_limit_bytes", "cpu_usage_ns", "cpu_nr_periods",
           "cpu_nr_throttled", "cpu_throttled_ns", "pids_current", "pids_limit", "oom_kills",
           "network_rx_bytes", "network_tx_bytes", "block_read_bytes", "block_write_bytes", "time")
# Counters the JSON output also gives per second: (figure, rate's name).
PER_SECOND = (("network_rx_bytes", "network_rx_per_second"), ("network_tx_bytes", "network_tx_per_second"),
              ("block_read_bytes", "block_read_per_second"), ("block_write_bytes", "block_write_per_second"))


# ---- rates (pure) ------------------------------------------------------------

def counter_delta(before: int, after: int) -> int:
    """How much a counter grew; a counter that went down was reset and
    counts from zero (Prometheus' rule): never negative."""
    return after - before if after >= before else max(0, after)


def per_second(before: int, after: int, seconds: float) -> float:
    """The counter's growth per second; 0 when no time passed."""
    return counter_delta(before, after) / seconds if seconds > 0 else 0.0


def cpu_percent(before_ns: int, after_ns: int, seconds: float) -> float:
    """CPU time used over wall time, in percent: one busy core is 100."""
    return per_second(before_ns, after_ns, seconds) / 1e9 * 100.0


def memory_percent(usage: int, limit: int) -> float | None:
    """Usage over the limit, in percent; None without a limit (0)."""
    return usage / limit * 100.0 if limit > 0 else None


def rates(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, float | None]:
    """The rates between two readings of one container (``FIGURES`` dicts,
    ``before`` None when there is no earlier one)."""
    out: dict[str, float | None] = {"cpu_percent": None,
                                    "memory_percent": memory_percent(after["memory_usage_bytes"],
                                                                     after["memory_limit_bytes"])}
    for _, name in PER_SECOND:
        out[name] = None
    if before is None:
        return out
    seconds = float(after["time"]) - float(before["time"])
    out["cpu_percent"] = cpu_percent(before["cpu_usage_ns"], after["cpu_usage_ns"], seconds)
    for figure, name in PER_SECOND:
        out[name] = per_second(before[figure], after[figure], seconds)
    return out


def _percent(value: float | None) -> str:
    return "--" if value is None else f"{value:.2f}%"


def row_cells(figures: dict[str, Any], computed: dict[str, float | None]) -> list[str]:
    """The columns after the name ones (``COMMON_HEADERS``)."""
    limit = figures["memory_limit_bytes"]
    return [_percent(computed["cpu_percent"]),
            f"{format_bytes(figures['memory_usage_bytes'])} / "
            + (format_bytes(limit) if limit else "unlimited"),
            _percent(computed["memory_percent"]),
            f"{format_bytes(figures['network_rx_bytes'])} / {format_bytes(figures['network_tx_bytes'])}",
            f"{format_bytes(figures['block_read_bytes'])} / {format_bytes(figures['block_write_bytes'])}",
            str(figures["pids_current"])]


# ---- readings ------------------------------------------------------------------

@dataclass
class Entry:
    """One container in a reading: ``key`` pairs it with the last reading's
    (it names the container, so a new container never pairs with an old one),
    ``names`` are the first columns (and the JSON's first fields)."""

    key: tuple[str, ...]
    names: dict[str, str]
    figures: dict[str, Any]


@dataclass
class Reading:
    entries: list[Entry]
    unreachable: list[str] = field(default_factory=list)


def figures_of(stats: Any, received: float) -> dict[str, Any]:
    """A StatsResponse's raw figures; its time is the agent's, or ``received``
    for an agent that does not send one."""
    out = {name: getattr(stats, name) for name in FIGURES}
    out["time"] = float(out["time"]) or received
    return out


def cluster_reader(api: Any, services: list[str]) -> Callable[[], Reading]:
    from proto import cluster_pb2 as cpb

    request = cpb.TaskStatsRequest(services=services)

    def read() -> Reading:
        answer = api.call("TaskStats", request)
        now = time.time()
        return Reading([Entry((t.task, t.stats.id), {"task": t.task, "node": t.node, "service": t.service},
                              figures_of(t.stats, now)) for t in answer.tasks],
                       list(answer.unreachable))

    return read


def engine_reader(agent: Any, refs: list[str]) -> Callable[[], Reading]:
    """Readings of the containers ``refs`` name (all running ones without):
    each must name a running container now."""
    from proto import agent_pb2 as pb

    names: dict[str, str] = {}

    def learn_names() -> list[Any]:
        containers = list(agent.call("List", pb.ListRequest(all=True)).containers)
        names.update((c.id, c.name) for c in containers)
        return containers

    ids = _resolve(learn_names(), refs) if refs else []
    request = pb.StatsAllRequest(ids=ids)

    def read() -> Reading:
        stats = agent.call("StatsAll", request).stats
        now = time.time()
        if any(s.id not in names for s in stats):  # started since: learn its name
            learn_names()
        return Reading([Entry((s.id,), {"id": s.id, "name": names.get(s.id, "")}, figures_of(s, now))
                        for s in sorted(stats, key=lambda s: (names.get(s.id, ""), s.id))])

    return read


def _resolve(containers: list[Any], refs: list[str]) -> list[str]:
    """The ids of the running containers ``refs`` name (id, name or unique id
    prefix), or a one-line error for the first that names none."""
    out: list[str] = []
    for ref in refs:
        found = [c for c in containers if ref in (c.id, c.name)] or [
            c for c in containers if ref and c.id.startswith(ref)]
        if not found:
            raise CLIError(f"no such container: {ref}")
        if len(found) > 1:
            raise CLIError(f"container id prefix {ref!r} is ambiguous: "
                           + ", ".join(c.name for c in found[:5]))
        if found[0].state != "running":
            raise CLIError(f"container {found[0].name} is not running")
        out.append(found[0].id)
    return out


# ---- output ----------------------------------------------------------------------

def compare(before: Reading | None, after: Reading) -> list[tuple[Entry, dict[str, float | None]]]:
    """Each entry of ``after`` with its rates since ``before``."""
    last = {e.key: e.figures for e in before.entries} if before is not None else {}
    return [(e, rates(last.get(e.key), e.figures)) for e in after.entries]


def table_text(headers: list[str], rows: list[tuple[Entry, dict[str, float | None]]], engine: bool) -> str:
    from orch.cli.output import table

    def names(e: Entry) -> list[str]:
        return [e.names["id"][:12], e.names["name"]] if engine else [e.names["task"], e.names["node"]]

    return table(headers, [names(e) + row_cells(e.figures, computed) for e, computed in rows])


def documents(rows: list[tuple[Entry, dict[str, float | None]]]) -> list[dict[str, Any]]:
    """The JSON objects: names, the container's id, raw figures, then rates."""
    return [{**e.names, "id": e.key[-1], **e.figures, **computed} for e, computed in rows]


def run(read: Callable[[], Reading], output: str, stream: bool, engine: bool, *,
        out: TextIO | None = None, err: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    """Read, wait a second, read again and show; with ``stream`` (a table
    output only) go on every second until Ctrl-C."""
    from orch.cli.output import emit

    out = out or sys.stdout
    err = err or sys.stderr
    headers = ENGINE_HEADERS if engine else CLUSTER_HEADERS
    tty = out.isatty()
    said: list[str] | None = None
    try:
        before = read()
        tick = clock()
        drawn = 0
        while True:
            tick += INTERVAL
            sleep(max(0.0, tick - clock()))
            after = read()
            rows = compare(before, after)
            if not stream or output != "table":
                if output == "table":
                    out.write(table_text(headers, rows, engine) + "\n")
                else:
                    import contextlib

                    with contextlib.redirect_stdout(out):
                        emit(output, documents(rows), [], [])
                _unreachable(err, after.unreachable)
                return 0
            text = table_text(headers, rows, engine) + "\n"
            out.write(CLEAR + text if tty else ("\n" if drawn else "") + text)
            out.flush()
            drawn += 1
            if tty or after.unreachable != said:  # a redraw clears the screen: say it again
                _unreachable(err, after.unreachable)
                said = after.unreachable
            before = after
    except KeyboardInterrupt:
        return 0


def _unreachable(err: TextIO, nodes: list[str]) -> None:
    if nodes:
        err.write("orch: no figures from " + "; ".join(nodes) + "\n")
        err.flush()


# ---- the command -------------------------------------------------------------------

def cmd_cluster_stats(args: argparse.Namespace, api: Any) -> int:
    return run(cluster_reader(api, list(args.containers)), args.output, not args.no_stream, engine=False)


def cmd_engine_stats(args: argparse.Namespace, agent: Any) -> int:
    return run(engine_reader(agent, list(args.containers)), args.output, not args.no_stream, engine=True)
