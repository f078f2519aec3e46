"""orch's Grafana dashboards, as code (grafana-foundation-sdk), and the JSON they make.

    python examples/grafana/dashboards.py          # rewrites dashboards/*.json
    python examples/grafana/dashboards.py --check  # exits 1 if a JSON file is stale

Three dashboards, linked to each other by their ``orch`` tag:

- ``orch-cluster``: nodes and tasks by state, running tasks' health,
  scheduling delay, the leader, reconcile passes, etcd and API calls, rollouts;
- ``orch-service`` (variable ``service``): replicas running, restarts, health,
  OOM kills, CPU, memory and network per task, rollout progress;
- ``orch-node`` (variable ``node``): capacity against allocation and use,
  containers and tasks by state, CPU, memory, network and disk per container,
  image pulls, the agent itself.

Invariants:

- every query names only metrics orch exports (the agent's cAdvisor-named
  ``container_*`` and ``machine_*``, its ``orch_node_*``, ``orch_container_*``,
  ``orch_image_*``, ``orch_agent_*``; the control plane's ``orch_manager_*``,
  ``orch_dispatcher_*``, ``orch_orchestrator_*``, ``orch_store_*``,
  ``orch_api_*``, ``orch_service_rollout_*``; the process collector's
  ``process_*``) and the labels they carry (tests/monitoring checks both);
- every panel and query uses the one datasource variable ``datasource``, so
  a user's Grafana picks its own Prometheus;
- several control-plane replicas export the same cluster-wide counts (each
  from its own copy of the store): those are taken with ``max``, never summed;
  what each replica observes itself (histograms, calls) is summed;
- the agents' metrics carry the node's name as ``node`` (the agent's own
  label, and the one ``/sd/agents`` gives its target), and the
  control-plane-only counts carry no node;
- :func:`panel_queries` lists every query of every panel, as written to the
  JSON, so a test can run each against a real Prometheus (:func:`concrete`
  fills in Grafana's variables).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as gcommon
from grafana_foundation_sdk.models import dashboard as gmodel
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = ["OUT_DIR", "PanelQuery", "build", "concrete", "main", "panel_queries", "render",
           "variable_queries"]

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
TAG = "orch"
DATASOURCE = gmodel.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"  # at least four scrapes: the datasource's timeInterval tells Grafana the interval
AGENT = 'job="orch-agent"'  # the job /sd/agents gives every agent target


class PanelQuery(NamedTuple):
    """One query of one panel: (dashboard uid, panel title, PromQL with Grafana's variables)."""

    dashboard: str
    panel: str
    expr: str


# ---- panels as data, built with the SDK below ----------------------------------------


@dataclass(frozen=True)
class Q:
    """A Prometheus query: its expression and legend ("" for the default)."""

    expr: str
    legend: str = ""


@dataclass
class P:
    """A panel: kind is "stat", "timeseries" or "table"."""

    kind: str
    title: str
    queries: list[Q]
    unit: str = "short"
    description: str = ""
    width: int = 8
    height: int = 8
    stacked: bool = False
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    text_mode: gcommon.BigValueTextMode = gcommon.BigValueTextMode.AUTO
    hide: list[str] = field(default_factory=list)  # table columns left out
    rename: dict[str, str] = field(default_factory=dict)  # table columns' headers


@dataclass
class D:
    """A dashboard: its uid, title, description, variables and rows of panels."""

    uid: str
    title: str
    description: str
    variables: list[str]  # "service", "node"
    rows: list[tuple[str, list[P]]]


def _stat(title: str, *queries: Q, unit: str = "short", description: str = "", width: int = 4,
          thresholds: list[tuple[float | None, str]] | None = None,
          text_mode: gcommon.BigValueTextMode = gcommon.BigValueTextMode.AUTO) -> P:
    return P("stat", title, list(queries), unit, description, width, 4,
             thresholds=thresholds or [(None, "green")], text_mode=text_mode)


def _graph(title: str, *queries: Q, unit: str = "short", description: str = "", width: int = 8,
           stacked: bool = False) -> P:
    return P("timeseries", title, list(queries), unit, description, width, 8, stacked=stacked)


def _table(title: str, *queries: Q, unit: str = "short", description: str = "", width: int = 24,
           hide: list[str] | None = None, rename: dict[str, str] | None = None) -> P:
    return P("table", title, list(queries), unit, description, width, 8, hide=hide or [],
             rename=rename or {})


def _zero_unless(expr: str, by: str, like: str) -> str:
    """``expr``, or 0 for each ``by`` group of ``like`` while ``expr`` has no
    series (a labelled counter has none until its first increment)."""
    return f"{expr} or sum by ({by}) ({like}) * 0"


def _quantiles(histogram: str) -> list[Q]:
    """The median, p90 and p99 of ``histogram``, over every replica's observations."""
    return [Q(f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))", f"p{int(q * 100)}")
            for q in (0.5, 0.9, 0.99)]


# A slot's restarts: a task that ends is replaced by a new one in its slot
# (a new container, so a new series), so the number of a slot's containers
# seen in a window, less one, counts its replacements (a rollout replaces
# each slot once too). A container that lives less than a scrape interval
# is not seen.
def _restarts(selector: str, window: str) -> str:
    return (f"count by (service, slot) (count_over_time(container_start_time_seconds{{{selector}}}"
            f"[{window}])) - 1")


# ---- the dashboards -----------------------------------------------------------------


def _cluster() -> D:
    not_ready = 'sum(max by (state) (orch_manager_nodes{state!="ready"}))'
    leader = "orch_manager_info * on (instance) group_left () (orch_manager_leader == 1)"
    paused = ('count(max by (service, state) (orch_service_rollout_state{state=~".*paused"}) == 1) '
              "or vector(0)")
    red_above_0: list[tuple[float | None, str]] = [(None, "green"), (1, "red")]
    overview = [
        _stat("Nodes ready", Q('max(orch_manager_nodes{state="ready"})')),
        _stat("Nodes down or unknown", Q(not_ready), thresholds=red_above_0),
        _stat("Running tasks", Q('max(orch_manager_tasks{state="running"})')),
        _stat("Unhealthy tasks", Q('max(orch_manager_tasks_health{health="unhealthy"})'),
              thresholds=red_above_0),
        _stat("Leader", Q(leader, "{{replica}}"), text_mode=gcommon.BigValueTextMode.NAME,
              description="The control-plane replica that runs the controllers."),
        _stat("Rollouts paused", Q(paused), thresholds=[(None, "green"), (1, "orange")]),
    ]
    nodes_and_tasks = [
        _graph("Nodes by state", Q("max by (state) (orch_manager_nodes)", "{{state}}")),
        _table("Nodes", Q("max by (node, state) (orch_node_state) == 1"), width=8, hide=["Time", "Value"],
               description="Each node and the state the control plane holds for it."),
        _graph("Tasks by state", Q("max by (state) (orch_manager_tasks) > 0", "{{state}}"), stacked=True,
               description="Tasks the store holds, by their current state (ended ones until pruned)."),
        _graph("Running tasks by health", Q("max by (health) (orch_manager_tasks_health)", "{{health}}"),
               description="Running tasks that have a health check."),
        _graph("Running containers by node",
               Q(f'sum by (node) (orch_node_containers{{{AGENT}, state="running"}})', "{{node}}"),
               stacked=True),
        _graph("CPU allocated by node",
               Q(f"sum by (node) (orch_node_allocated_cpus{{{AGENT}}}) / "
                 f"sum by (node) (machine_cpu_cores{{{AGENT}}})", "{{node}}"),
               unit="percentunit", description="Running containers' CPU limits over the node's cores."),
        _graph("Memory allocated by node",
               Q(f"sum by (node) (orch_node_allocated_memory_bytes{{{AGENT}}}) / "
                 f"sum by (node) (machine_memory_bytes{{{AGENT}}})", "{{node}}"),
               unit="percentunit", description="Running containers' memory limits over the node's memory."),
    ]
    store_errors = _zero_unless(f"sum by (op) (rate(orch_store_errors_total[{RATE}]))", "op",
                                f"rate(orch_store_request_seconds_count[{RATE}])")
    api_errors = _zero_unless(f"sum by (method, code) (rate(orch_api_errors_total[{RATE}]))", "method",
                              f"rate(orch_api_request_seconds_count[{RATE}])")
    control_plane = [
        _graph("Scheduling delay (created to running)",
               *_quantiles("orch_dispatcher_scheduling_delay_seconds"), unit="s"),
        _graph("Tasks started", Q(f"sum(rate(orch_dispatcher_scheduling_delay_seconds_count[{RATE}]))",
                                  "tasks/s"), unit="ops"),
        _graph("Leader by replica",
               Q("max by (replica) (orch_manager_leader * on (instance) group_left (replica) "
                 "orch_manager_info)", "{{replica}}"),
               description="1 on the replica that runs the controllers."),
        _graph("Reconcile pass duration", *_quantiles("orch_orchestrator_pass_seconds"), unit="s"),
        _graph("etcd request latency (p99)", _p99("orch_store_request_seconds", "op"), unit="s"),
        _graph("etcd errors", Q(store_errors, "{{op}}"), unit="ops"),
        _graph("API request latency (p99)", _p99("orch_api_request_seconds", "method"), unit="s"),
        _graph("API requests",
               Q(f"sum by (method) (rate(orch_api_request_seconds_count[{RATE}]))", "{{method}}"),
               unit="reqps"),
        _graph("API errors", Q(api_errors, "{{method}} {{code}}"), unit="reqps"),
    ]
    rollouts = [
        _table("Rollouts", Q("max by (service, state) (orch_service_rollout_state) == 1"), width=8,
               hide=["Time", "Value"], description="Each service's last rollout and the state it is in."),
        _graph("Rollout progress", *_rollout_progress(""), width=16),
    ]
    return D("orch-cluster", "orch / Cluster",
             "The cluster as the control plane sees it: nodes, tasks, scheduling, the leader, rollouts.",
             [], [("Overview", overview), ("Nodes and tasks", nodes_and_tasks),
                  ("Scheduling and the control plane", control_plane), ("Rollouts", rollouts)])


def _p99(histogram: str, by: str) -> Q:
    return Q(f"histogram_quantile(0.99, sum by (le, {by}) (rate({histogram}_bucket[{RATE}])))",
             f"{{{{{by}}}}}")


def _rollout_progress(selector: str) -> list[Q]:
    sel = f"{{{selector}}}" if selector else ""
    return [Q(f"max by (service) (orch_service_rollout_updated_tasks{sel})", "{{service}} updated"),
            Q(f"max by (service) (orch_service_rollout_tasks{sel})", "{{service}} to update"),
            Q(f"max by (service) (orch_service_rollout_failed_tasks{sel})", "{{service}} failed")]


def _per(by: str, family: str, selector: str, rate: bool = False) -> str:
    """``family``'s samples under ``selector``, summed by ``by`` (their rate if ``rate``)."""
    series = f"{family}{{{selector}}}"
    return f"sum by ({by}) ({f'rate({series}[{RATE}])' if rate else series})"


def _service() -> D:
    svc = f'{AGENT}, service=~"$service"'
    rollout = 'max by (service, state) (orch_service_rollout_state{service=~"$service"}) == 1'
    replicas = [
        _stat("Replicas running", Q(f"count by (service) (container_last_seen{{{svc}}})", "{{service}}")),
        _stat("Replicas desired",
              Q('max by (service) (orch_service_replicas_desired{service=~"$service"})', "{{service}}"),
              description="What the service asks for (a global service: its tasks told to run)."),
        _stat("Restarts (time range)", Q(f"sum by (service) ({_restarts(svc, '$__range')})", "{{service}}"),
              thresholds=[(None, "green"), (1, "orange")],
              description="Tasks replaced in their slot, by a restart or a rollout."),
        _stat("Unhealthy tasks",
              Q(_per("service", "orch_container_health_status", f'{svc}, status="unhealthy"'), "{{service}}"),
              thresholds=[(None, "green"), (1, "red")],
              description="Tasks whose health check fails (services with a check)."),
        _stat("OOM kills (time range)",
              Q(f"sum by (service) (increase(container_oom_events_total{{{svc}}}[$__range]))", "{{service}}"),
              thresholds=[(None, "green"), (1, "red")]),
        _stat("Rollout", Q(rollout, "{{state}}"), text_mode=gcommon.BigValueTextMode.NAME, width=8,
              description="The state of the service's last rollout."),
        _table("Tasks",
               Q(f"max by (service, slot, name, task, node, image) (container_start_time_seconds{{{svc}}}) "
                 "* 1000"),
               unit="dateTimeAsIso", hide=["Time"], rename={"Value": "started"},
               description="The running tasks and when each started."),
    ]
    health = [
        _graph("Health by status", Q(_per("status", "orch_container_health_status", svc), "{{status}}"),
               stacked=True),
        _graph("Failing probes in a row",
               Q(f"max by (name) (orch_container_health_failing_streak{{{svc}}})", "{{name}}")),
        _graph("Health probe duration",
               Q(f"max by (name) (orch_container_health_probe_duration_seconds{{{svc}}})", "{{name}}"),
               unit="s"),
        _graph("Restarts by slot (15 min)", Q(_restarts(svc, "15m"), "{{service}}.{{slot}}"), width=12,
               description="Tasks replaced in each slot in the 15 minutes before."),
        _graph("OOM kills",
               Q(f"sum by (name) (increase(container_oom_events_total{{{svc}}}[{RATE}]))", "{{name}}"),
               width=12),
    ]
    resources = [
        _graph("CPU per task",
               Q(_per("name", "container_cpu_usage_seconds_total", svc, rate=True), "{{name}}"),
               description="CPU seconds per second (cores)."),
        _graph("Memory per task (working set)",
               Q(_per("name", "container_memory_working_set_bytes", svc), "{{name}}"),
               Q(f"max by (name) (container_spec_memory_limit_bytes{{{svc}}} > 0)", "{{name}} limit"),
               unit="bytes"),
        _graph("Memory of its limit",
               Q(f"max by (name) (container_memory_working_set_bytes{{{svc}}} / "
                 f"(container_spec_memory_limit_bytes{{{svc}}} > 0))", "{{name}}"),
               unit="percentunit", description="Tasks with a memory limit."),
        _graph("Network received per task",
               Q(_per("name", "container_network_receive_bytes_total", svc, rate=True), "{{name}}"),
               unit="Bps", width=12),
        _graph("Network sent per task",
               Q(_per("name", "container_network_transmit_bytes_total", svc, rate=True), "{{name}}"),
               unit="Bps", width=12),
    ]
    return D("orch-service", "orch / Service",
             "One service's tasks: replicas, restarts, health, and CPU, memory and network per task.",
             ["service"], [("Replicas", replicas), ("Health and restarts", health),
                           ("Resources per task", resources),
                           ("Rollout", [_graph("Rollout progress", *_rollout_progress('service=~"$service"'),
                                               width=24)])])


def _node() -> D:
    node = f'{AGENT}, node=~"$node"'
    running = f'{node}, state="running"'
    capacity = [
        _stat("CPU cores", Q(_per("node", "machine_cpu_cores", node), "{{node}}")),
        _stat("CPUs allocated", Q(_per("node", "orch_node_allocated_cpus", node), "{{node}}")),
        _stat("Memory", Q(_per("node", "machine_memory_bytes", node), "{{node}}"), unit="bytes"),
        _stat("Memory allocated", Q(_per("node", "orch_node_allocated_memory_bytes", node), "{{node}}"),
              unit="bytes"),
        _stat("Running containers", Q(_per("node", "orch_node_containers", running), "{{node}}")),
        _stat("Supervisor up", Q(f"min by (node) (orch_agent_supervisor_up{{{node}}})", "{{node}}"),
              thresholds=[(None, "red"), (1, "green")],
              description="Whether the node's supervisor answered the last scrape."),
        _graph("CPU: capacity, allocation, use",
               Q(_per("node", "machine_cpu_cores", node), "{{node}} cores"),
               Q(_per("node", "orch_node_allocated_cpus", node), "{{node}} allocated"),
               Q(_per("node", "container_cpu_usage_seconds_total", node, rate=True), "{{node}} used"),
               width=12, description="Allocated: the running containers' CPU limits, summed."),
        _graph("Memory: capacity, allocation, use",
               Q(_per("node", "machine_memory_bytes", node), "{{node}} memory"),
               Q(_per("node", "orch_node_allocated_memory_bytes", node), "{{node}} allocated"),
               Q(_per("node", "container_memory_working_set_bytes", node), "{{node}} used"),
               unit="bytes", width=12,
               description="Allocated: the running containers' memory limits, summed."),
    ]
    containers = [
        _graph("Containers by state", Q(_per("node, state", "orch_node_containers", node) + " > 0",
                                        "{{node}} {{state}}"), width=12, stacked=True),
        _graph("Tasks by state",
               Q(_per("node, state", "orch_node_tasks", node) + " > 0", "{{node}} {{state}}"), width=12,
               stacked=True, description="The tasks the node last reported."),
        _table("Containers",
               Q(f"max by (node, name, service, slot, task, image) (container_start_time_seconds{{{node}}}) "
                 "* 1000"),
               unit="dateTimeAsIso", hide=["Time"], rename={"Value": "started"},
               description="Running containers and when each started."),
    ]
    per_container = [
        _graph("CPU per container",
               Q(_per("node, name", "container_cpu_usage_seconds_total", node, rate=True), "{{name}}"),
               width=12, description="CPU seconds per second (cores)."),
        _graph("Memory per container (working set)",
               Q(_per("node, name", "container_memory_working_set_bytes", node), "{{name}}"),
               unit="bytes", width=12),
        _graph("Network received per container",
               Q(_per("node, name", "container_network_receive_bytes_total", node, rate=True), "{{name}}"),
               unit="Bps"),
        _graph("Network sent per container",
               Q(_per("node, name", "container_network_transmit_bytes_total", node, rate=True), "{{name}}"),
               unit="Bps"),
        _graph("Writable layer per container",
               Q(_per("node, name", "container_fs_usage_bytes", node), "{{name}}"), unit="bytes"),
    ]
    agent = [
        _graph("Image pulls",
               Q(f"sum by (node, result) (increase(orch_image_pulls_total{{{node}}}[{RATE}]))",
                 "{{node}} {{result}}"),
               Q(_per("node", "orch_image_pull_seconds_total", node, rate=True),
                 "{{node}} seconds pulling per second")),
        _graph("Agent CPU", Q(_per("node", "process_cpu_seconds_total", node, rate=True), "{{node}}"),
               description="The agent process's CPU seconds per second."),
        _graph("Agent memory (RSS)", Q(_per("node", "process_resident_memory_bytes", node), "{{node}}"),
               unit="bytes"),
    ]
    return D("orch-node", "orch / Node",
             "One node: its capacity against what its containers are allowed and use, and each container.",
             ["node"], [("Capacity", capacity), ("Containers and tasks", containers),
                        ("Per container", per_container), ("The agent", agent)])


DASHBOARDS = (_cluster, _service, _node)

# Template variables: (label, query). Values come from the agents' own series.
_VARIABLES = {
    "service": ("Service", f'label_values(container_last_seen{{{AGENT}, service!=""}}, service)'),
    "node": ("Node", f"label_values(machine_cpu_cores{{{AGENT}}}, node)"),
}


# ---- building with the SDK ----------------------------------------------------------


def _query(q: Q, ref: str, instant: bool, as_table: bool) -> Dataquery:
    out = Dataquery().expr(q.expr).ref_id(ref).datasource(DATASOURCE)
    out = out.instant() if instant else out.range()
    if q.legend:
        out = out.legend_format(q.legend)
    if as_table:
        out = out.format(PromQueryFormat.TABLE)
    return out


def _panel(p: P, panel_id: int) -> Any:
    builder: Any
    if p.kind == "stat":
        builder = (stat.Panel().text_mode(p.text_mode).graph_mode(gcommon.BigValueGraphMode.NONE)
                   .color_mode(gcommon.BigValueColorMode.VALUE)
                   .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    elif p.kind == "table":
        builder = table.Panel().with_transformation(gmodel.DataTransformerConfig(
            id_val="organize", options={"excludeByName": dict.fromkeys(p.hide, True),
                                        "renameByName": p.rename}))
    else:
        builder = (timeseries.Panel().fill_opacity(10 if p.stacked else 0)
                   .legend(VizLegendOptions().display_mode(gcommon.LegendDisplayMode.LIST)
                           .placement(gcommon.LegendPlacement.BOTTOM).show_legend(True))
                   .tooltip(VizTooltipOptions().mode(gcommon.TooltipDisplayMode.MULTI)
                            .sort(gcommon.SortOrder.DESCENDING)))
        if p.stacked:
            builder = builder.stacking(StackingConfig().mode(gcommon.StackingMode.NORMAL))
    builder = (builder.id(panel_id).title(p.title).datasource(DATASOURCE).unit(p.unit)
               .height(p.height).span(p.width))
    if p.description:
        builder = builder.description(p.description)
    if p.kind == "stat":
        builder = builder.thresholds(gdash.ThresholdsConfig().mode(gmodel.ThresholdsMode.ABSOLUTE).steps(
            [gmodel.Threshold(value=v, color=c) for v, c in p.thresholds]))
    for i, q in enumerate(p.queries):
        builder = builder.with_target(_query(q, chr(ord("A") + i), instant=p.kind != "timeseries",
                                             as_table=p.kind == "table"))
    return builder


def _variable(name: str) -> Any:
    label, query = _VARIABLES[name]
    return (gdash.QueryVariable(name).label(label).query(query).datasource(DATASOURCE)
            .refresh(gmodel.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(gmodel.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".+"))


def build(d: D) -> gmodel.Dashboard:
    """The dashboard ``d`` as the SDK's model."""
    out = (gdash.Dashboard(d.title).uid(d.uid).description(d.description).tags([TAG])
           .editable().tooltip(gmodel.DashboardCursorSync.CROSSHAIR).time("now-1h", "now").refresh("30s")
           .timezone("browser")
           .link(gdash.DashboardLink("orch").type(gmodel.DashboardLinkType.DASHBOARDS).tags([TAG])
                 .as_dropdown(True).include_vars(False).keep_time(True))
           .with_variable(gdash.DatasourceVariable("datasource").label("Data source").type("prometheus")))
    for name in d.variables:
        out = out.with_variable(_variable(name))
    panel_id = 0
    for title, panels in d.rows:
        panel_id += 1
        out = out.with_row(gdash.Row(title).id(panel_id))
        for p in panels:
            panel_id += 1
            out = out.with_panel(_panel(p, panel_id))
    return out.build()


def _specs() -> Iterator[D]:
    for make in DASHBOARDS:
        yield make()


def render() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {f"{d.uid}.json": encoder.encode(build(d)) + "\n" for d in _specs()}


def panel_queries() -> list[PanelQuery]:
    """Every query of every panel, as the JSON has it."""
    out = []
    for d in _specs():
        for panel in build(d).panels or []:
            for target in getattr(panel, "targets", None) or []:
                out.append(PanelQuery(d.uid, str(panel.title), str(target.expr)))
    return out


def variable_queries() -> list[tuple[str, str]]:
    """(dashboard uid, query) of every query variable."""
    return [(d.uid, _VARIABLES[name][1]) for d in _specs() for name in d.variables]


def concrete(expr: str, service: str = ".+", node: str = ".+", rate: str = "1m", range_: str = "1h") -> str:
    """``expr`` with Grafana's variables filled in, to run on Prometheus itself."""
    for var, value in (("$__rate_interval", rate), ("$__range", range_), ("$service", service),
                       ("$node", node)):
        expr = expr.replace(var, value)
    return expr


# ---- the command --------------------------------------------------------------------


def _stale(out_dir: Path, files: dict[str, str]) -> list[str]:
    """What differs between ``files`` and ``out_dir``, one line each, with a diff."""
    problems = []
    for name, text in sorted(files.items()):
        path = out_dir / name
        have = path.read_text() if path.exists() else ""
        if have != text:
            diff = difflib.unified_diff(have.splitlines(), text.splitlines(), str(path), "generated",
                                        lineterm="", n=1)
            problems.append(f"{path}: {'stale' if have else 'missing'}\n" + "\n".join(list(diff)[:40]))
    problems += [f"{path}: not generated (remove it)" for path in sorted(out_dir.glob("*.json"))
                 if path.name not in files]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write orch's Grafana dashboards as JSON.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON files are not current")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"where the JSON goes ({OUT_DIR})")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        problems = _stale(args.out, files)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(f"run: python {Path(__file__).name} to write them again", file=sys.stderr)
        return 1 if problems else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = args.out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
