"""The issue's "kill etcd for 10 s and restart it", on a cluster with one
etcd member: while it is gone the containers run on and `orch ps` answers
from the control plane's cache; once a timer (``restart_etcd_after``)
starts it again on its address, the control plane carries on by itself.
It ends with the desired counts exactly, and on the host exactly one
container init process per running task of the store, none other; `orch
down --purge` then leaves nothing, not even a restart timer still waiting.

Its own cluster (2 nodes, private names, ports and subnet 10.225.x.0/24)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orch.cluster.etcdchaos import kill_etcd, restart_etcd_after
from orch.pids import alive
from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import looping
from tests.cluster.test_etcd_members import (
    converged,
    etcd_processes,
    leftovers,
    new_cluster,
    running_tasks,
    torn_down,
    up,
)

OUTAGE = 10.0  # seconds, as the issue says


@pytest.fixture(scope="module")
def eo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    c = new_cluster(tmp_path_factory.mktemp("etcd-outage"), "w", 225, 24000)
    try:
        up(c)
        yield c
    finally:
        torn_down(c)


def test_etcd_killed_for_10_s_then_restarted(eo: LocalCluster, tmp_path: Path) -> None:
    members = eo.record()["etcd_members"]
    assert len(members) == 1 and members[0]["data_dir"] == str(eo.state / "etcd")
    eo.orch("deploy", "-f", looping(tmp_path, "steady", 4))
    converged(eo, {"steady": 4})
    planes = eo.record()["controlplane_pids"]

    killed = kill_etcd(str(eo.run), 1)
    assert killed.startswith("etcd member 1 (orch, pid ") and etcd_processes(eo.state) == []
    restart_etcd_after(str(eo.run), 1, OUTAGE)
    gone = time.monotonic()
    # Meanwhile: the containers run on, and ps answers from the cache.
    assert sorted(t["service"] for t in running_tasks(eo)) == ["steady"] * 4
    time.sleep(max(0.0, OUTAGE - 1 - (time.monotonic() - gone)))
    assert etcd_processes(eo.state) == [], "the timer started etcd early"

    back = wait_for(lambda: etcd_processes(eo.state), timeout=30)
    rec = eo.record()
    assert back == [rec["etcd_pid"]] and rec["etcd_endpoint"] == members[0]["client"]
    converged(eo, {"steady": 4})
    eo.orch("scale", "steady=6")
    converged(eo, {"steady": 6})
    assert eo.record()["controlplane_pids"] == planes and all(alive(pid) for pid in planes)


def test_down_purge_leaves_nothing(eo: LocalCluster) -> None:
    """Also not a restart timer still waiting (the sweep finds it by its --run-dir)."""
    kill_etcd(str(eo.run), 1)
    restart_etcd_after(str(eo.run), 1, 600)
    assert wait_for(lambda: [line for line in leftovers(eo) if "orch.cluster.etcdchaos" in line], timeout=10)
    eo.down(purge=True)
    assert etcd_processes(eo.state) == []
    assert leftovers(eo) == []
