"""examples/grafana: the committed JSON is what dashboards.py makes, every
panel has a query that Prometheus' parser (promtool) accepts, the queries
name only metrics and labels orch exports, and every query goes to the one
datasource variable."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.monitoring.promql_names import ROOT, TARGET_LABELS, Exports, names_in

GRAFANA = ROOT / "examples" / "grafana"
SCRIPT = GRAFANA / "dashboards.py"


@pytest.fixture(scope="module")
def dashboards() -> ModuleType:
    pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk is a dev dependency")
    spec = importlib.util.spec_from_file_location("orch_grafana_dashboards", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _json() -> dict[str, dict[str, Any]]:
    paths = sorted((GRAFANA / "dashboards").glob("*.json"))
    return {path.name: json.loads(path.read_text()) for path in paths}


def test_committed_json_is_current(dashboards: ModuleType) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert set(_json()) == {"orch-cluster.json", "orch-service.json", "orch-node.json"}


def test_check_finds_a_stale_file(dashboards: ModuleType, tmp_path: Path) -> None:
    assert dashboards.main(["--out", str(tmp_path)]) == 0
    assert dashboards.main(["--check", "--out", str(tmp_path)]) == 0
    path = tmp_path / "orch-node.json"
    path.write_text(path.read_text().replace("orch / Node", "orch / Nodes"))
    assert dashboards.main(["--check", "--out", str(tmp_path)]) == 1


def test_panel_queries_are_the_json_queries(dashboards: ModuleType) -> None:
    from_json = [(d["uid"], p["title"], t["expr"]) for d in _json().values() for p in d["panels"]
                 for t in p.get("targets", [])]
    assert sorted(from_json) == sorted(tuple(q) for q in dashboards.panel_queries())


def test_every_panel_has_a_query_on_the_datasource_variable() -> None:
    for name, board in _json().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        titles = [p["title"] for p in board["panels"] if p["type"] != "row"]
        assert len(titles) == len(set(titles)), f"{name}: two panels share a title"
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: two panels share an id"
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            where = f"{name}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["expr"].strip(), where
                assert target["datasource"] == panel["datasource"], where
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == "${datasource}", name


def test_dashboards_have_their_variables() -> None:
    boards = {b["uid"]: b for b in _json().values()}
    for uid, wanted in (("orch-cluster", set()), ("orch-service", {"service"}), ("orch-node", {"node"})):
        names = {v["name"] for v in boards[uid]["templating"]["list"]} - {"datasource"}
        assert names == wanted, uid
        used = {var for p in boards[uid]["panels"] for t in p.get("targets", []) for var in wanted
                if f"${var}" in t["expr"]}
        assert used == wanted, uid


def test_every_query_parses(dashboards: ModuleType, promtool: str, tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, as a recording rule: promtool parses it."""
    queries = dashboards.panel_queries()
    rules = [{"record": f"panel:{i}", "expr": dashboards.concrete(q.expr, service="web", node="n1")}
             for i, q in enumerate(queries)]
    rules += [{"record": f"variable:{i}", "expr": expr.removeprefix("label_values(").rpartition(",")[0]}
              for i, (_, expr) in enumerate(dashboards.variable_queries())]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}, sort_keys=False))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
    assert not any("$" in rule["expr"] for rule in rules)


def test_queries_use_only_what_orch_exports(dashboards: ModuleType, exported: Exports) -> None:
    known_labels = exported.labels | TARGET_LABELS
    queries = [(q.dashboard, q.panel, q.expr) for q in dashboards.panel_queries()]
    queries += [(uid, "variable", expr) for uid, expr in dashboards.variable_queries()]
    for uid, title, expr in queries:
        metrics, labels = names_in(expr)
        where = f"{uid}: {title}: {expr}"
        assert metrics, where
        assert metrics <= exported.metrics, f"{where}: not exported: {metrics - exported.metrics}"
        assert labels <= known_labels, f"{where}: no such label: {labels - known_labels}"


def test_names_in_finds_metrics_and_labels() -> None:
    expr = ('sum by (le, op) (rate(foo_bucket{job="x", a=~"b|c"}[5m])) / on (op) group_left (z) '
            'bar:rate5m offset 5m or vector(0) and label_replace(baz, "n", "$1", "m", "(.*)")')
    assert names_in(expr) == ({"foo_bucket", "bar:rate5m", "baz"}, {"le", "op", "job", "a", "z"})
    assert names_in('label_values(machine_cpu_cores{job="orch-agent"}, node)') == (
        {"machine_cpu_cores"}, {"job", "node"})


def test_what_orch_exports_is_found(exported: Exports) -> None:
    """The lists the checks above compare against hold what they should, and nothing invented."""
    for name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
                 "container_fs_usage_bytes", "orch_container_health_status", "orch_image_pulls_total",
                 "orch_manager_nodes", "orch_dispatcher_scheduling_delay_seconds_bucket",
                 "orch_store_errors_total", "orch_service_rollout_state", "process_resident_memory_bytes"):
        assert name in exported.metrics, name
    for label in ("service", "task", "slot", "node", "name", "image", "id", "status", "state", "op",
                  "method"):
        assert label in exported.labels, label
    assert "container_replicas_wanted" not in exported.metrics


def test_provisioning_files() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards.yaml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"] and providers[0]["options"]["path"]
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources.yaml").read_text())["datasources"]
    assert [s["type"] for s in sources] == ["prometheus"]
