"""Fixtures for network tests: real bridges, nft tables and network namespaces.

Every resource has an ``orch`` prefix plus random hex and is removed in a
finalizer, even when the test fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nodeagent.network import BridgeNetwork
from nodeagent.network.nftables import table_exists, table_name


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.fixture
def bridge_name() -> str:
    return "orcht" + secrets.token_hex(2)


@pytest.fixture
def subnet() -> str:
    return f"10.199.{secrets.randbelow(256)}.0/24"


@pytest.fixture
def net(tmp_path: Path, bridge_name: str, subnet: str) -> Iterator[BridgeNetwork]:
    """An ensured bridge network; torn down (and checked) afterwards."""
    network = BridgeNetwork(str(tmp_path / "state"), bridge=bridge_name, subnet=subnet)
    try:
        network.ensure()
        yield network
    finally:
        network.teardown()
    assert bridge_name not in _links()
    assert not table_exists(table_name(bridge_name))


@pytest.fixture
def make_ns() -> Iterator[Callable[[], int]]:
    """Factory of stand-in containers: a ``sleep`` in a fresh net ns (its pid)."""
    procs: list[subprocess.Popen[bytes]] = []
    own = os.readlink("/proc/self/ns/net")

    def make() -> int:
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        procs.append(proc)
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{proc.pid}/ns/net") == own:
            assert time.monotonic() < deadline, "unshare --net did not take effect"
            time.sleep(0.005)
        return proc.pid

    try:
        yield make
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


@pytest.fixture
def ns_procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Helper processes started inside namespaces; killed afterwards."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
