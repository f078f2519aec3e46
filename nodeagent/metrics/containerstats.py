"""A running container's figures as `orch stats` shows them: one reading.

The agent's Stats and StatsAll answer from here (``agent.engine``). A
reading is the metrics readers' (``cgroupstats`` for CPU and memory,
``netdev`` for the network) plus what a scrape does not need: the pids
count and limit and the block I/O counters, read here from the same
hierarchy the runtime uses::

    supervisor record (id, pid)
      -> cgroupstats.V1Reader/V2Reader  cpu, throttling, memory, oom kills
      -> SpecCache                      memory limit, once per start
      -> pids.current, pids.max         (v1: the pids hierarchy)
      -> io.stat / blkio.throttle.io_service_bytes[_recursive]
      -> /proc/<pid>/net/dev            every interface but lo, summed
      -> the time of the reading        rates come from two readings

Invariants:
- a few file reads per container, in the caller's thread: no thread or
  process per container, however many a StatsAll names;
- a figure the host does not keep per container (block I/O where the io /
  blkio controller is not on for the group) reads 0, as the proto says of
  an absent figure; a container whose cgroup is gone has no reading (None);
- every root is a parameter (:meth:`StatsReader.for_driver` takes the
  runtime's driver), so tests read a temp-dir cgroupfs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nodeagent.metrics.cgroupstats import CgroupReader, SpecCache, read_file, reader_for
from nodeagent.metrics.netdev import read_net_dev

__all__ = ["StatsReader", "node_reader", "pick", "read_block_v1", "read_block_v2", "read_pids"]


def _group(cid: str) -> str:
    """The container's cgroup: the engine names every group ``orch/<id>`` (``agent.specbuild``)."""
    return f"orch/{cid}"


def read_pids(directory: str) -> tuple[int, int] | None:
    """``pids.current`` and ``pids.max`` of a group (0: no limit); None without the files."""
    current = read_file(os.path.join(directory, "pids.current"))
    if current is None:
        return None
    limit = read_file(os.path.join(directory, "pids.max"))
    try:
        return int(current), int(limit) if limit and limit.strip() != b"max" else 0
    except ValueError:
        return None


def read_block_v2(directory: str) -> tuple[int, int] | None:
    """Bytes read and written, every device summed, from ``io.stat``
    (``MAJ:MIN rbytes=N wbytes=N rios=N ...`` a line); None without it."""
    data = read_file(os.path.join(directory, "io.stat"))
    if data is None:
        return None
    read = written = 0
    for line in data.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition(b"=")
            if key == b"rbytes" and value.isdigit():
                read += int(value)
            elif key == b"wbytes" and value.isdigit():
                written += int(value)
    return read, written


def read_block_v1(directory: str) -> tuple[int, int] | None:
    """Bytes read and written, every device summed, from the blkio
    controller's ``MAJ:MIN Read N`` lines (the recursive file when the
    kernel has it, as Docker reads it); None without it."""
    data = read_file(os.path.join(directory, "blkio.throttle.io_service_bytes_recursive"))
    if data is None:
        data = read_file(os.path.join(directory, "blkio.throttle.io_service_bytes"))
    if data is None:
        return None
    read = written = 0
    for line in data.splitlines():
        fields = line.split()
        if len(fields) != 3 or not fields[2].isdigit():
            continue  # "Total N", or a line that does not fit
        if fields[1] == b"Read":
            read += int(fields[2])
        elif fields[1] == b"Write":
            written += int(fields[2])
    return read, written


class StatsReader:
    """Readings of running containers (supervisor records with ``id`` and
    ``pid``) from ``cgroups``; ``pids_root`` and ``block_root`` are the
    hierarchies of the pids and io/blkio controllers (None: not mounted).
    Thread-safe: gRPC handlers share one."""

    def __init__(self, cgroups: CgroupReader, pids_root: str | None, block_root: str | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cgroups = cgroups
        self.pids_root = pids_root
        self.block_root = block_root
        self.read_block = read_block_v1 if cgroups.version == 1 else read_block_v2
        self.clock = clock
        self._specs = SpecCache(cgroups)
        self._lock = threading.Lock()  # the SpecCache's dict, read and pruned by concurrent calls

    @classmethod
    def for_driver(cls, driver: Any) -> StatsReader:
        """The reader for a runtime cgroup driver (``V1Driver`` or ``V2Driver``)."""
        if driver.version == 1:
            blkio = os.path.join(str(driver.root), "blkio")
            return cls(reader_for(driver), driver.hierarchies.get("pids"),
                       blkio if os.path.isdir(blkio) else None)
        return cls(reader_for(driver), str(driver.root), str(driver.root))

    def read(self, rec: dict[str, Any]) -> dict[str, int | float] | None:
        """The container's figures, by StatsResponse field; None if its cgroup is gone."""
        group = _group(rec["id"])
        usage = self.cgroups.usage(group)
        if usage is None:
            return None
        with self._lock:
            limits = self._specs.get(rec["id"], float(rec.get("started_at") or 0), group)
        pids = read_pids(os.path.join(self.pids_root, group)) if self.pids_root else None
        block = self.read_block(os.path.join(self.block_root, group)) if self.block_root else None
        rx = tx = 0
        for iface in read_net_dev(int(rec.get("pid") or 0)):
            rx, tx = rx + iface.rx_bytes, tx + iface.tx_bytes
        return {
            "memory_usage_bytes": usage.memory_usage or 0,
            "memory_limit_bytes": limits.memory_bytes or 0,
            # Rounded back: the readers keep seconds; the counter stays monotonic.
            "cpu_usage_ns": round((usage.cpu_seconds or 0.0) * 1e9),
            "cpu_nr_periods": usage.cfs_periods or 0,
            "cpu_nr_throttled": usage.cfs_throttled_periods or 0,
            "cpu_throttled_ns": round((usage.cfs_throttled_seconds or 0.0) * 1e9),
            "pids_current": pids[0] if pids else 0,
            "pids_limit": pids[1] if pids else 0,
            "oom_kills": usage.oom_events or 0,
            "network_rx_bytes": rx,
            "network_tx_bytes": tx,
            "block_read_bytes": block[0] if block else 0,
            "block_write_bytes": block[1] if block else 0,
            "time": self.clock(),
        }

    def keep(self, ids: set[str]) -> None:
        """Forget the limits of containers not in ``ids`` (no longer running)."""
        with self._lock:
            self._specs.keep(ids)


_NODE: list[StatsReader] = []
_NODE_LOCK = threading.Lock()


def node_reader() -> StatsReader:
    """This host's reader (the hierarchy the runtime would choose), made once."""
    with _NODE_LOCK:
        if not _NODE:
            from nodeagent.runtime.cgroups import detect

            _NODE.append(StatsReader.for_driver(detect()))
        return _NODE[0]


def pick(records: Iterable[dict[str, Any]], refs: Sequence[str]) -> list[dict[str, Any]]:
    """The records ``refs`` name, each once, in their order: by id, by name,
    or by an id prefix that only one has; a ref that names none is left out."""
    recs = list(records)
    out: dict[str, dict[str, Any]] = {}
    for ref in refs:
        found = [r for r in recs if r["id"] == ref or r.get("name") == ref]
        if not found and ref:
            found = [r for r in recs if r["id"].startswith(ref)]
        if len(found) == 1:
            out.setdefault(found[0]["id"], found[0])
    return list(out.values())
