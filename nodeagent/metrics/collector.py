"""The node's metrics, collected at scrape time: a prometheus_client custom collector.

One scrape is one supervisor ``list`` (every container's record: its state,
pid, labels, image, start time, health) and, per running container, a few
reads of its cgroup files and of its init's ``/proc/<pid>/net/dev``. No
thread or process per container; the writable layers' sizes come from the
one thread of ``fsusage``. Limits are read once per container start
(``cgroupstats.SpecCache``).

Names and labels are cAdvisor's, so dashboards and alert rules written for
it work unchanged:

- every container sample carries ``id`` (its cgroup, ``/orch/<id>``),
  ``name``, ``image``, its labels as ``container_label_<key>`` (the key's
  characters outside ``[a-zA-Z0-9_]`` become ``_``), and orch's ``service``,
  ``task``, ``slot`` (from its task's labels and name; "" for a container
  of no task) and ``node``;
- network samples add ``interface``; the health status adds ``status``.

The node's own: capacity (``machine_cpu_cores``, ``machine_memory_bytes``,
cAdvisor's names), allocation (the sum of the running containers' limits),
containers and tasks by state, and each container's health check. The
agent's process metrics come from prometheus_client's process collector,
registered beside this one (``server``).

A figure the host does not have (a controller not mounted, a kernel
without ``oom_kill``) is left out, never reported as 0.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from common.logging import get_logger
from nodeagent.metrics import _prom
from nodeagent.metrics.cgroupstats import CgroupReader, Limits, SpecCache, Usage
from nodeagent.metrics.fsusage import FsUsage, writable_layer
from nodeagent.metrics.netdev import Interface, read_net_dev

__all__ = ["CONTAINER_STATES", "HEALTH_STATUSES", "NodeCollector", "container_labels", "sanitize"]

log = get_logger("orch.metrics")

TASK_LABEL = "orch.task"  # as nodeagent.cluster.executor sets them (not imported: it loads grpc's protos)
SERVICE_LABEL = "orch.service"
CONTAINER_STATES = ("created", "running", "restarting", "exited", "removing")
HEALTH_STATUSES = ("starting", "healthy", "unhealthy")

# (family, type, help, Usage field): a container's cgroup figures.
_USAGE: tuple[tuple[str, str, str, str], ...] = (
    ("container_cpu_usage_seconds", "counter", "Cumulative cpu time consumed in seconds.", "cpu_seconds"),
    ("container_cpu_user_seconds", "counter", "Cumulative user cpu time consumed in seconds.",
     "cpu_user_seconds"),
    ("container_cpu_system_seconds", "counter", "Cumulative system cpu time consumed in seconds.",
     "cpu_system_seconds"),
    ("container_cpu_cfs_periods", "counter", "Number of elapsed enforcement period intervals.",
     "cfs_periods"),
    ("container_cpu_cfs_throttled_periods", "counter", "Number of throttled period intervals.",
     "cfs_throttled_periods"),
    ("container_cpu_cfs_throttled_seconds", "counter",
     "Total time duration the container has been throttled.", "cfs_throttled_seconds"),
    ("container_memory_usage_bytes", "gauge",
     "Current memory usage in bytes, including all memory regardless of when it was accessed.",
     "memory_usage"),
    ("container_memory_working_set_bytes", "gauge",
     "Current working set in bytes: usage minus inactive file cache.", "memory_working_set"),
    ("container_memory_rss", "gauge", "Size of RSS in bytes.", "memory_rss"),
    ("container_memory_cache", "gauge", "Number of bytes of page cache memory.", "memory_cache"),
    # cAdvisor's counter without _total: untyped, since prometheus_client would add the suffix.
    ("container_memory_failcnt", "unknown", "Number of memory usage hits limits.", "memory_failcnt"),
    ("container_oom_events", "counter", "Count of out of memory events observed for the container.",
     "oom_events"),
)

# (family, help, Interface field): each counter of a container's interface.
_NETWORK: tuple[tuple[str, str, str], ...] = tuple(
    (f"container_network_{way}_{what}", f"Cumulative count of {desc} {past}.", f"{short}_{field}")
    for way, past, short in (("receive", "received", "rx"), ("transmit", "transmitted", "tx"))
    for what, desc, field in (("bytes", "bytes", "bytes"), ("packets", "packets", "packets"),
                              ("errors", "errors encountered while", "errors"),
                              ("packets_dropped", "packets dropped while", "dropped"))
)

_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def sanitize(key: str) -> str:
    """A container label's key as a Prometheus label name (``container_label_`` + this)."""
    return _LABEL_CHARS.sub("_", key)


def container_labels(rec: dict[str, Any], node: str) -> dict[str, str]:
    """The labels every sample of the container ``rec`` (a supervisor record) carries."""
    labels: dict[str, str] = rec.get("labels") or {}
    service, task, name = labels.get(SERVICE_LABEL, ""), labels.get(TASK_LABEL, ""), rec.get("name", "")
    slot = ""
    if task and service and name.startswith(service + "."):
        # A task's container is named SERVICE.SLOT.TASKID8 (model.objects.Task.name);
        # a global service's "slot" is its node's id prefix.
        slot = name[len(service) + 1:].rpartition(".")[0]
    out = {"id": "/" + _group(rec), "name": name, "image": str(rec.get("image", "")),
           "service": service, "task": task, "slot": slot, "node": node}
    for key in sorted(labels):  # sorted: of two keys that sanitize alike, the first wins
        out.setdefault("container_label_" + sanitize(key), str(labels[key]))
    return out


def _group(rec: dict[str, Any]) -> str:
    """The container's cgroup name: the engine names every group ``orch/<id>``
    (``agent.specbuild``; the runtime's default too)."""
    return f"orch/{rec['id']}"


class _Families:
    """Metric families by name, in the order first added."""

    def __init__(self) -> None:
        self.metric = _prom.load()["metrics_core"].Metric
        self.by_name: dict[str, Any] = {}

    def add(self, name: str, kind: str, doc: str, labels: dict[str, str], value: float) -> None:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = self.metric(name, doc, kind)
        family.add_sample(name + "_total" if kind == "counter" else name, labels, value)

    def declare(self, name: str, kind: str, doc: str) -> None:
        """A family that is there even with no sample (no container yet)."""
        if name not in self.by_name:
            self.by_name[name] = self.metric(name, doc, kind)


class NodeCollector:
    """``collect()``: the node's and its containers' families, read now.

    ``containers``: every container's supervisor record (``Engine.containers(all=True)``);
    ``tasks``: the states of the tasks the node knows (a node of a cluster), or None.
    """

    def __init__(self, containers: Callable[[], list[dict[str, Any]]], reader: CgroupReader, node: str,
                 fs: FsUsage | None = None, tasks: Callable[[], Iterable[str]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.containers = containers
        self.reader = reader
        self.specs = SpecCache(reader)
        self.node = node
        self.fs = fs
        self.tasks = tasks
        self.clock = clock
        self.node_labels = {"node": node}
        self.cpus = float(os.cpu_count() or 1)
        self.memory = _mem_total()

    def describe(self) -> list[Any]:
        return []  # unchecked collector: what it yields depends on the containers

    def collect(self) -> Iterator[Any]:
        out = _Families()
        try:
            recs, up = self.containers(), 1
        except Exception as err:  # the supervisor being replaced: the rest is still worth a scrape
            log.warning("metrics: the supervisor did not answer", error=str(err))
            recs, up = [], 0
        out.add("orch_agent_supervisor_up", "gauge", "Whether the supervisor answered this scrape.",
                self.node_labels, up)
        running = [r for r in recs if r.get("state") == "running" and r.get("pid")]
        self.specs.keep({r["id"] for r in running})
        layers = {r["id"]: writable_layer(os.path.dirname(r["log_path"]))
                  for r in running if r.get("log_path")}
        sizes = self.fs.figures(layers) if self.fs is not None else {}
        now = self.clock()
        for name, kind, doc, _ in _USAGE:
            out.declare(name, kind, doc)
        allocated_cpus = allocated_memory = 0.0
        for rec in running:
            limits = self._container(out, rec, sizes.get(rec["id"]), now)
            allocated_cpus += limits.cpus or 0.0
            allocated_memory += limits.memory_bytes or 0
        self._node(out, recs, allocated_cpus, allocated_memory)
        yield from out.by_name.values()

    def _container(self, out: _Families, rec: dict[str, Any], fs_bytes: int | None, now: float) -> Limits:
        labels = container_labels(rec, self.node)
        group = _group(rec)
        usage = self.reader.usage(group)
        limits = self.specs.get(rec["id"], float(rec.get("started_at") or 0), group)
        if usage is not None:
            _usage(out, labels, usage)
        out.add("container_spec_memory_limit_bytes", "gauge", "Memory limit for the container (0: none).",
                labels, limits.memory_bytes or 0)
        if limits.cpu_quota_us is not None:
            out.add("container_spec_cpu_quota", "gauge", "CPU quota of the container.", labels,
                    limits.cpu_quota_us)
            out.add("container_spec_cpu_period", "gauge", "CPU period of the container.", labels,
                    limits.cpu_period_us or 0)
        for iface in read_net_dev(int(rec["pid"])):
            _network(out, labels, iface)
        if fs_bytes is not None:
            out.add("container_fs_usage_bytes", "gauge",
                    "Number of bytes that are consumed by the container's writable layer.", labels, fs_bytes)
        out.add("container_start_time_seconds", "gauge", "Start time of the container since unix epoch "
                "in seconds.", labels, float(rec.get("started_at") or 0))
        out.add("container_last_seen", "gauge", "Last time a container was seen by the exporter.",
                labels, now)
        _health(out, labels, rec.get("health"))
        return limits

    def _node(self, out: _Families, recs: list[dict[str, Any]], cpus: float, memory: float) -> None:
        nl = self.node_labels
        out.add("machine_cpu_cores", "gauge", "Number of logical CPU cores.", nl, self.cpus)
        out.add("machine_memory_bytes", "gauge", "Amount of memory installed on the machine.", nl,
                self.memory)
        out.add("orch_node_allocated_cpus", "gauge",
                "CPUs the running containers are limited to, summed (unlimited ones count 0).", nl, cpus)
        out.add("orch_node_allocated_memory_bytes", "gauge",
                "Memory the running containers are limited to, summed (unlimited ones count 0).", nl,
                memory)
        states = dict.fromkeys(CONTAINER_STATES, 0)
        for rec in recs:
            state = str(rec.get("state", ""))
            states[state] = states.get(state, 0) + 1
        for state, count in states.items():
            out.add("orch_node_containers", "gauge", "The node's containers by state.",
                    {"node": self.node, "state": state}, count)
        from nodeagent.images import pullstats

        pulls, seconds = pullstats.snapshot()
        for result, count in sorted(pulls.items()):
            out.add("orch_image_pulls", "counter", "Image pulls on this node, by result.",
                    {"node": self.node, "result": result}, count)
        out.add("orch_image_pull_seconds", "counter", "Seconds this node spent pulling images.",
                nl, seconds)
        if self.tasks is not None:
            from model.objects import TaskState

            counts = {s.label(): 0 for s in TaskState}
            for state in self.tasks():
                counts[state] = counts.get(state, 0) + 1
            for state, count in counts.items():
                out.add("orch_node_tasks", "gauge", "The tasks this node last reported, by state.",
                        {"node": self.node, "state": state}, count)


def _usage(out: _Families, labels: dict[str, str], usage: Usage) -> None:
    for name, kind, doc, field in _USAGE:
        value = getattr(usage, field)
        if value is not None:
            out.add(name, kind, doc, labels, value)


def _network(out: _Families, labels: dict[str, str], iface: Interface) -> None:
    with_iface = {**labels, "interface": iface.name}  # one dict for the interface's samples
    for name, doc, field in _NETWORK:
        out.add(name, "counter", doc, with_iface, getattr(iface, field))


def _health(out: _Families, labels: dict[str, str], health: dict[str, Any] | None) -> None:
    """A container with a health check: its status (1 for the current one),
    its failing streak, and its last probe's duration and exit code."""
    if not health:
        return
    status = health.get("status", "")
    for candidate in HEALTH_STATUSES:
        out.add("orch_container_health_status", "gauge",
                "The container's health-check status (1: the current one).",
                {**labels, "status": candidate}, 1 if candidate == status else 0)
    out.add("orch_container_health_failing_streak", "gauge",
            "Failed health-check probes in a row.", labels, int(health.get("failing_streak") or 0))
    probes = health.get("log") or []
    if probes:
        last = probes[-1]
        out.add("orch_container_health_probe_duration_seconds", "gauge",
                "How long the last health-check probe took.", labels,
                max(0.0, float(last.get("end", 0)) - float(last.get("start", 0))))
        out.add("orch_container_health_probe_exit_code", "gauge",
                "The last health-check probe's result (0: success; -1: it could not run).", labels,
                int(last.get("exit_code", 0)))


def _mem_total() -> int:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
