"""`orch up --monitoring` on the real 3-node cluster: Debian's Prometheus
scrapes every control plane, every agent (found through /sd/agents) and
etcd, and every panel of the dashboards in examples/grafana answers there,
on a service with a health check, a memory limit and a rollout."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

from orch.cluster.monitoring import query
from orch.cluster.record import ClusterRecord
from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster_rollouts import _manifest, _status, _web

ROOT = Path(__file__).resolve().parents[2]
# Panels that show something only after an event this test does not cause:
# an image pull (the cluster's busybox is imported, not pulled).
NEEDS_AN_EVENT = ("pull",)


def _dashboards() -> ModuleType:
    pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk is a dev dependency")
    spec = importlib.util.spec_from_file_location("orch_grafana_dashboards_ct",
                                                  ROOT / "examples/grafana/dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _port(cluster: LocalCluster) -> int:
    rec = ClusterRecord.load(str(cluster.run))
    assert rec.prometheus, "the cluster was not started with --monitoring"
    return int(rec.prometheus.rpartition(":")[2])


def test_prometheus_scrapes_everything_and_every_panel_answers(cluster: LocalCluster,
                                                                tmp_path: Path) -> None:
    dashboards = _dashboards()
    port = _port(cluster)

    def targets() -> dict[str, float] | None:
        up = {f"{r['metric']['job']}/{r['metric'].get('node', r['metric']['instance'])}": float(r["value"][1])
              for r in query(port, "up")}
        jobs = [k.partition("/")[0] for k in up if up[k] == 1]
        ok = jobs.count("orch-controlplane") == 2 and jobs.count("orch-agent") == 3 and "etcd" in jobs
        return up if ok else None

    up = wait_for(targets, timeout=60)
    assert {k for k in up if k.startswith("orch-agent/")} == {f"orch-agent/n{i}" for i in (1, 2, 3)}

    limited = textwrap.indent("resources: {limits: {memory: 64M}}\n", "      ")
    path = _manifest(tmp_path, "mon", _web("v1", 3, "{monitor: 0s, parallelism: 0}").replace(
        "    deploy:\n", "    deploy:\n" + limited))
    cluster.orch("deploy", "-f", path)
    try:
        path = _manifest(tmp_path, "mon", _web("v2", 3, "{monitor: 0s, parallelism: 0}").replace(
            "    deploy:\n", "    deploy:\n" + limited))
        cluster.orch("deploy", "-f", path)  # a rollout, for the rollout panels
        assert _status(cluster)["state"] == "completed"
        # Every panel answers once Prometheus has scraped what the deploy made (the writable
        # layer's size comes with a container's second scrape): polled, not slept.
        def problems() -> tuple[list[str], list[str]]:
            empty, failed = [], []
            for q in dashboards.panel_queries():
                expr = dashboards.concrete(q.expr, service="web", rate="1m", range_="5m")
                try:
                    result = query(port, expr)
                except ValueError as err:
                    failed.append(f"{q.dashboard} / {q.panel}: {err}")
                    continue
                if not result and not any(word in q.panel.lower() for word in NEEDS_AN_EVENT):
                    empty.append(f"{q.dashboard} / {q.panel}: {expr}")
            return empty, failed

        last: list[tuple[list[str], list[str]]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            last[:] = [problems()]
            if last[0] == ([], []) or last[0][1]:
                break
            time.sleep(1)  # a scrape interval is 5 s: no faster way to see the next one
        empty, failed = last[0]
        assert not failed, "\n".join(failed)
        assert not empty, "panels with no data:\n" + "\n".join(empty)
        for uid, expr in dashboards.variable_queries():  # label_values(SELECTOR, LABEL): Grafana's
            selector, _, label = expr.removeprefix("label_values(").removesuffix(")").rpartition(",")
            values = {r["metric"].get(label.strip()) for r in query(port, selector)}
            assert values - {None}, (uid, expr)
    finally:
        cluster.orch("rm", "web", check=False)
