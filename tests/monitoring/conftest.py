"""Fixtures of the monitoring examples' tests: promtool, and what orch exports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.monitoring.promql_names import Exports, agent_exports, agent_network_families, controlplane_exports


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; ./scripts/setup installs it)")
    return found


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    """The metric and label names an agent and a control plane export."""
    tmp: Path = tmp_path_factory.mktemp("agent-metrics")
    out = agent_exports(tmp) | controlplane_exports()
    out.metrics |= agent_network_families()
    return out
