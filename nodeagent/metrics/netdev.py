"""A container's network counters: ``/proc/<pid>/net/dev`` of its init.

The file shows the network namespace of the process it belongs to, so the
agent reads a container's interfaces without entering its namespace. The
loopback is left out, as cAdvisor leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodeagent.metrics.cgroupstats import read_file

__all__ = ["Interface", "parse_net_dev", "read_net_dev"]


@dataclass(frozen=True)
class Interface:
    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def parse_net_dev(data: bytes) -> list[Interface]:
    """The interfaces of a ``net/dev`` file (two header lines, then
    ``name: 8 receive counters 8 transmit counters``), but ``lo``."""
    out: list[Interface] = []
    for line in data.splitlines()[2:]:
        name, sep, rest = line.partition(b":")
        fields = rest.split()
        if not sep or len(fields) < 16:
            continue
        name = name.strip()
        if name == b"lo":
            continue
        try:
            rx_bytes, rx_packets, rx_errs, rx_drop = (int(f) for f in fields[0:4])
            tx_bytes, tx_packets, tx_errs, tx_drop = (int(f) for f in fields[8:12])
        except ValueError:
            continue
        out.append(Interface(name.decode(errors="replace"), rx_bytes, rx_packets, rx_errs, rx_drop,
                             tx_bytes, tx_packets, tx_errs, tx_drop))
    return out


def read_net_dev(pid: int) -> list[Interface]:
    """The container's interfaces, by its init's pid ([] if it is gone)."""
    if pid <= 0:
        return []
    data = read_file(f"/proc/{pid}/net/dev")
    return parse_net_dev(data) if data else []
