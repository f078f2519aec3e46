"""IP address management for one bridge subnet.

The pure core is :class:`AddressPool`: given a subnet and the current leases it
picks the next address. :class:`LeaseFile` persists the leases as one small JSON
file and serialises every read-modify-write with an ``fcntl`` lock on a sibling
lock file (the JSON file itself is replaced atomically by rename, so it cannot
carry the lock).

Invariants:
- the network address, the broadcast address and the gateway (first host,
  ``.1``) are never leased;
- an address is leased to at most one container id at a time;
- allocating twice for the same container id returns the same address;
- when every host address is leased, allocation raises :class:`AgentError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from common.errors import AgentError, FailedPrecondition, InvalidArgument
from nodeagent import jsonlines


class PoolExhausted(FailedPrecondition):
    """Every host address of the subnet is leased."""


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"bad subnet {subnet!r}: {exc}") from None
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {subnet!r} is too small: need at least a /30")
    return net


def gateway_of(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The bridge's own address: the first host address (``.1``)."""
    return net.network_address + 1


@dataclass
class AddressPool:
    """Leases of one subnet, keyed by container id (pure logic, no I/O)."""

    subnet: ipaddress.IPv4Network
    leases: dict[str, str] = field(default_factory=dict)

    def allocate(self, container_id: str) -> ipaddress.IPv4Address:
        """The container's address: its existing lease, else the lowest free one."""
        if not container_id:
            raise InvalidArgument("container id must not be empty")
        held = self.leases.get(container_id)
        if held is not None:
            return ipaddress.IPv4Address(held)
        # inet_aton: IPv4Address() per lease made each allocation O(leases) in slow Python.
        taken = {int.from_bytes(socket.inet_aton(a), "big") for a in self.leases.values()}
        first = int(gateway_of(self.subnet)) + 1
        last = int(self.subnet.broadcast_address) - 1
        for candidate in range(first, last + 1):
            if candidate not in taken:
                addr = ipaddress.IPv4Address(candidate)
                self.leases[container_id] = str(addr)
                return addr
        raise PoolExhausted(
            f"no free address left in {self.subnet} ({len(self.leases)} leased); "
            "remove containers or use a larger subnet"
        )

    def release(self, container_id: str) -> None:
        """Forget the container's lease; a missing lease is not an error."""
        self.leases.pop(container_id, None)


class _Known(NamedTuple):
    """The lease file as this process last read or wrote it."""

    inode: int
    size: int
    leases: dict[str, str]
    whole: bool  # ends with a whole line; else the next change rewrites it
    # (an older single-document file, or a torn line)


class LeaseFile:
    """The leases of one subnet on disk, under ``state_dir``.

    The file is JSON lines: a snapshot ``{"subnet", "leases"}`` first, then
    one change per line, ``{"set": {id: address}, "del": [id, ...]}``,
    appended in one write (see ``nodeagent.jsonlines`` for why). A torn
    last line (a crash mid-write) is ignored. Past :data:`COMPACT_BYTES` the
    file is rewritten as one snapshot. The parsed leases are kept while the
    file stays as this process last left it (same inode and size), so a
    lease under the lock reads nothing."""

    COMPACT_BYTES = 64 * 1024

    def __init__(self, state_dir: str, name: str, subnet: ipaddress.IPv4Network) -> None:
        self.path = os.path.join(state_dir, f"ipam-{name}.json")
        self.lock_path = self.path + ".lock"
        self.subnet = subnet
        self._known: _Known | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[AddressPool]:
        """Yield the pool under an exclusive lock; write it back on success."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            pool = AddressPool(self.subnet, self._read())
            before = dict(pool.leases)
            yield pool
            if pool.leases != before:
                self._write(before, pool.leases)
        finally:
            os.close(fd)

    def leases(self) -> dict[str, str]:
        with self.locked() as pool:
            return dict(pool.leases)

    def remove(self) -> None:
        self._known = None
        for path in (self.path, self.lock_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _read(self) -> dict[str, str]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                known = self._known
                if known is not None and (known.inode, known.size) == (st.st_ino, st.st_size):
                    return dict(known.leases)
                data = f.read()
        except FileNotFoundError:
            self._known = None
            return {}
        except OSError as exc:
            raise AgentError(f"cannot read IP leases {self.path}: {exc}") from None
        lines = data.split(b"\n")
        try:
            head = json.loads(lines[0])
        except ValueError as exc:
            raise AgentError(f"cannot read IP leases {self.path}: {exc}") from None
        if not isinstance(head, dict) or head.get("subnet") != str(self.subnet):
            subnet = head.get("subnet") if isinstance(head, dict) else None
            raise AgentError(
                f"IP leases {self.path} are for subnet {subnet!r}, "
                f"not {self.subnet}; remove the file if the network was reconfigured"
            )
        leases = {str(k): str(v) for k, v in head.get("leases", {}).items()}
        for line in lines[1:]:
            try:
                change = json.loads(line) if line else None
            except ValueError:
                continue  # torn by a crash mid-write: the change never happened
            if isinstance(change, dict):
                leases.update((str(k), str(v)) for k, v in change.get("set", {}).items())
                for cid in change.get("del", []):
                    leases.pop(str(cid), None)
        self._known = _Known(st.st_ino, st.st_size, dict(leases), data.endswith(b"\n"))
        return leases

    def _write(self, before: dict[str, str], leases: dict[str, str]) -> None:
        known = self._known
        if known is None or known.size > self.COMPACT_BYTES or not known.whole:
            self._rewrite(leases)
            return
        change = {"set": {k: v for k, v in leases.items() if before.get(k) != v},
                  "del": [k for k in before if k not in leases]}
        line = (json.dumps(change, sort_keys=True) + "\n").encode()
        try:
            size = jsonlines.append(self.path, line)
        except OSError:
            self._rewrite(leases)  # e.g. a short write: the whole file, or the error
            return
        self._known = _Known(known.inode, size, dict(leases), True)

    def _rewrite(self, leases: dict[str, str]) -> None:
        snapshot = json.dumps({"subnet": str(self.subnet), "leases": leases}, sort_keys=True)
        jsonlines.replace(self.path, (snapshot + "\n").encode())
        st = os.stat(self.path)
        self._known = _Known(st.st_ino, st.st_size, dict(leases), True)
