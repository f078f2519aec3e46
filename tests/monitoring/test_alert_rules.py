"""examples/prometheus: the alert rules pass promtool's checks and their unit
tests (alerts_test.yml), the example configuration is valid, and the rules
use only metrics and labels orch exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.promql_names import ROOT, TARGET_LABELS, Exports, names_in

EXAMPLES = ROOT / "examples" / "prometheus"


def _promtool(promtool: str, *args: str, cwd: Path = EXAMPLES) -> str:
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((EXAMPLES / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_pass_promtool_check(promtool: str) -> None:
    out = _promtool(promtool, "check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(_rules())} rules found" in out


def test_rules_pass_their_unit_tests(promtool: str) -> None:
    _promtool(promtool, "test", "rules", "alerts_test.yml")


def test_unit_tests_cover_every_alert_firing_and_not() -> None:
    tests = yaml.safe_load((EXAMPLES / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in _rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no test sees it fire"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no test sees it quiet"


def test_a_broken_expectation_fails(promtool: str, tmp_path: Path) -> None:
    """promtool really compares: the same tests expecting another severity fail."""
    (tmp_path / "alerts.yml").write_text((EXAMPLES / "alerts.yml").read_text())
    text = (EXAMPLES / "alerts_test.yml").read_text().replace("severity: critical", "severity: page")
    (tmp_path / "alerts_test.yml").write_text(text)
    done = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "OrchNodesDown" in done.stdout + done.stderr


def test_example_config_is_valid(promtool: str) -> None:
    out = _promtool(promtool, "check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out


def test_example_config_discovers_agents_through_the_control_plane() -> None:
    config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert config["rule_files"] == ["alerts.yml"]
    sd = jobs["orch-agent"]["http_sd_configs"]
    assert sd and all(entry["url"].endswith("/sd/agents") for entry in sd)
    replicas = {t for c in jobs["orch-controlplane"]["static_configs"] for t in c["targets"]}
    assert {entry["url"].split("/")[2] for entry in sd} == replicas


def test_rules_use_only_what_orch_exports(exported: Exports) -> None:
    for rule in _rules():
        metrics, labels = names_in(rule["expr"])
        assert metrics, rule["alert"]
        assert metrics <= exported.metrics, f"{rule['alert']}: not exported: {metrics - exported.metrics}"
        known = exported.labels | TARGET_LABELS
        assert labels <= known, f"{rule['alert']}: no such label: {labels - known}"
        used = {m for text in rule["annotations"].values() for m in re.findall(r"\$labels\.(\w+)", text)}
        assert used <= known, f"{rule['alert']}: annotations name no such label: {used - known}"


def test_rules_have_a_severity_and_say_what() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
