"""The agent's Prometheus metrics: its containers (cAdvisor's names), the node, the agent itself.

Parts, one concern each::

    server       GET /metrics on one thread (``--metrics-listen``)
      exposition   the text format of the collectors below, labels rendered once per container
        collector    NodeCollector: one supervisor list + cgroup/proc reads per scrape
          cgroupstats  v1/v2 cgroup files -> Usage, Limits (limits cached per start)
          netdev       /proc/<pid>/net/dev -> interfaces
          fsusage      writable layers' sizes, one thread, off the scrape path
        prometheus_client's process collector (the agent's CPU, RSS, fds)

Invariants:
- collection happens at scrape time, except the layers' sizes (one thread
  for the node): no thread or process per container;
- nothing here is imported unless metrics are on, and prometheus_client
  is loaded without its HTTP side (``_prom``): an agent without metrics
  pays nothing, one with them a few MiB at most;
- the metrics port is one of the node's protected ports: containers cannot
  reach it (the agent fences it with the node API's).

Errors: a bad or taken ``--metrics-listen`` address is ``common.errors.AgentError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from common.errors import AgentError

__all__ = ["Metrics", "default_address"]


def default_address(listen: str) -> str:
    """The metrics address of a node whose API is on ``listen``: its host,
    the next port ("" if there is none)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) >= 65535:
        return ""
    return f"{host}:{int(port) + 1}"


class Metrics:
    """The node's ``/metrics`` on ``address``: bound here, served from :meth:`start`.

    ``containers``: every container's supervisor record; ``tasks``: the
    states of the node's tasks (a node of a cluster) or None."""

    def __init__(self, address: str, containers: Callable[[], list[dict[str, Any]]], node: str,
                 tasks: Callable[[], Iterable[str]] | None = None) -> None:
        from nodeagent.metrics import _prom
        from nodeagent.metrics.cgroupstats import reader_for
        from nodeagent.metrics.collector import NodeCollector
        from nodeagent.metrics.fsusage import FsUsage
        from nodeagent.metrics.server import MetricsServer
        from nodeagent.runtime.cgroups import detect

        self.fs = FsUsage()
        self.collector = NodeCollector(containers, reader_for(detect()), node, self.fs, tasks)
        self.process = _prom.load()["process_collector"].ProcessCollector(registry=None)
        try:
            self.server = MetricsServer(address, self.render)
        except ValueError as err:
            raise AgentError(f"--metrics-listen: {err}")
        except OSError as err:
            raise AgentError(f"--metrics-listen: cannot listen on {address}: {err.strerror or err}")
        self.port = self.server.port

    def render(self) -> bytes:
        from nodeagent.metrics.exposition import render

        return render([self.collector, self.process])

    def start(self) -> None:
        self.fs.start()
        self.server.start()

    def close(self) -> None:
        self.server.close()
        self.fs.close()
