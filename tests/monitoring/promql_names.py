"""What orch exports, and what a PromQL expression uses, for the monitoring examples' tests.

- :func:`agent_exports`: the metric and label names of an agent's
  ``/metrics``, from a real render of its collectors (``NodeCollector`` over a
  temp-dir cgroup v2 tree with a running container that has a health check,
  a writable layer and a counted image pull; the process collector);
- :func:`controlplane_exports`: the control plane's, read from the metric
  definitions in ``controlplane/metrics.py`` (each needs a store to render);
- :func:`names_in`: the metric names and label names an expression uses.
  A tokenizer, not a parser: ``promtool`` checks the syntax; this only has to
  find every name in the expressions orch's examples write.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Labels Prometheus puts on every scraped sample, and those /sd/agents gives
# an agent's target (controlplane.metrics.Metrics.agent_targets).
TARGET_LABELS = frozenset({"job", "instance", "node", "node_id"})


@dataclass
class Exports:
    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)

    def __or__(self, other: Exports) -> Exports:
        return Exports(self.metrics | other.metrics, self.labels | other.labels)


from tests.unit.test_metrics_readers import V2_FILES  # noqa: E402

# ---- the agent: a real render -------------------------------------------------------

_CGROUP_V2 = V2_FILES  # the metrics readers' test's cgroup v2 files


def agent_exports(tmp: Path) -> Exports:
    """Every family a node with one running, health-checked task container renders."""
    from prometheus_client.parser import text_string_to_metric_families

    from nodeagent.images import pullstats
    from nodeagent.metrics import _prom
    from nodeagent.metrics.cgroupstats import V2Reader
    from nodeagent.metrics.collector import NodeCollector
    from nodeagent.metrics.exposition import render
    from nodeagent.metrics.fsusage import FsUsage

    cid = "c" * 64
    group = tmp / "cgroup" / "orch" / cid
    group.mkdir(parents=True)
    (tmp / "cgroup" / "cgroup.controllers").write_text("cpu memory pids\n")
    for name, text in _CGROUP_V2.items():
        (group / name).write_text(text)
    bundle = tmp / "bundle"
    (bundle / "upper").mkdir(parents=True)
    (bundle / "upper" / "file").write_bytes(b"x" * 4096)
    record: dict[str, Any] = {
        "id": cid, "name": "web.1.abcdef12", "image": "busybox:latest", "state": "running",
        "pid": os.getpid(), "started_at": 1000.0, "log_path": str(bundle / "container.log"),
        "labels": {"orch.service": "web", "orch.task": "t1", "com.example.team": "a"},
        "health": {"status": "healthy", "failing_streak": 0,
                   "log": [{"start": 1.0, "end": 1.5, "exit_code": 0, "output": ""}]},
    }
    fs = FsUsage()  # not started: pass_once below measures in this thread
    collector = NodeCollector(lambda: [record], V2Reader(str(tmp / "cgroup")), "n1", fs,
                              tasks=lambda: ["running"])
    render([collector])  # the first scrape asks for the layer's size...
    fs.pass_once()  # ...which the next one has
    with pullstats.counting():
        pass
    process = _prom.load()["process_collector"].ProcessCollector(registry=None)
    out = Exports()
    for family in text_string_to_metric_families(render([collector, process]).decode()):
        for sample in family.samples:
            out.metrics.add(sample.name)
            out.labels.update(sample.labels)
    return out


def agent_network_families() -> set[str]:
    """The interface counters' names: a render has them only for a process
    with an interface besides lo, which a test's namespace may lack."""
    from nodeagent.metrics.collector import _NETWORK

    return {name + "_total" for name, _, _ in _NETWORK}


# ---- the control plane: its definitions ---------------------------------------------

_SUFFIXES = {"Histogram": ("_bucket", "_sum", "_count"), "PromCounter": ("_total",), "Counter": ("_total",),
             "Gauge": ("",), "GaugeMetricFamily": ("",), "CounterMetricFamily": ("_total",),
             "Summary": ("_sum", "_count")}


def controlplane_exports(path: Path = ROOT / "controlplane" / "metrics.py") -> Exports:
    """The families ``path`` defines (prometheus_client's metric classes and
    metric families, called with the name as a string), with the suffixes
    each type's samples carry, and their label names; plus the process
    collector's (it registers one) and histograms' ``le``."""
    out = Exports(labels={"le"})
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if func not in _SUFFIXES or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        name = str(node.args[0].value)
        out.metrics.update(name + suffix for suffix in _SUFFIXES[func])
        labels = [kw.value for kw in node.keywords if kw.arg in ("labels", "labelnames")]
        labels += node.args[2:3]  # Histogram(name, doc, [labels], ...)
        for value in labels:
            if isinstance(value, ast.List | ast.Tuple):
                out.labels.update(str(e.value) for e in value.elts if isinstance(e, ast.Constant))
    from prometheus_client import ProcessCollector

    out.metrics.update(m.name if m.type != "counter" else m.name + "_total"
                       for m in ProcessCollector(registry=None).collect())
    return out


# ---- what an expression uses --------------------------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_BRACES = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                       "group_left", "group_right", "inf", "nan", "Inf", "NaN", "atan2"})


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) that ``expr`` uses: in selectors, label
    matchers and grouping clauses. A Grafana ``label_values(SELECTOR, LABEL)``
    counts its selector and label."""
    found = _LABEL_VALUES.match(expr)
    if found:
        inner_metrics, inner_labels = names_in(found.group(1))
        return inner_metrics, inner_labels | {found.group(2)}
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for braces in _BRACES.findall(text):
        labels.update(_MATCHER.findall(braces))
    for grouping in _GROUPING.findall(text):
        labels.update(part.strip() for part in grouping.split(",") if part.strip())
    text = _GROUPING.sub(" ", _RANGE.sub(" ", _BRACES.sub(" ", text)))
    metrics = {name for name, call in _IDENT.findall(text) if not call and name not in _KEYWORDS}
    return metrics, labels
