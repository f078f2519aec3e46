"""The worker: keeps this node's containers equal to its assignment set.

A thin composition of three parts, each with one thread and one job:
- ``session``: the gRPC stream to the control plane (registration,
  heartbeats, reconnects with backoff); it only records what is assigned,
  and applies the network state to ``network`` (the node's
  ``NetworkStateHub``, which the data plane and DNS follow);
- ``reconcile``: assignments against the containers that exist; starts and
  stops them through the executor (``executor``: task -> container request
  -> the node's engine -> the supervisor);
- ``status``: what the node last said of each task, sent in batches.

They share the stop event; the status reporter asks the reconciler whether
the node has settled and whether a task is still assigned, and the
reconciler reports to it. Log lines carry ``node``, and per task
``service`` and ``task`` (the engine adds ``container``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from common.identity import NodeIdentity, Renewer
from common.logging import get_logger
from nodeagent.cluster.executor import Executor
from nodeagent.cluster.reconcile import Reconciler
from nodeagent.cluster.session import Session
from nodeagent.cluster.status import StatusReporter
from nodeagent.network.state import NetworkStateHub
from nodeagent.supervisor import default_max_launching

__all__ = ["Worker"]

log = get_logger("orch.worker")


class Worker:
    def __init__(self, executor: Executor, join: str, token: str, name: str, address: str,
                 labels: dict[str, str], state_dir: str, max_starting: int = 0,
                 on_fatal: Callable[[str], None] | None = None,
                 network: NetworkStateHub | None = None, metrics_address: str = "",
                 identity: NodeIdentity | None = None) -> None:
        self._stopped = threading.Event()
        # What the control plane says of service networking; the agent makes it
        # and passes it, so the data plane and DNS can follow it from the start.
        self.network = network if network is not None else NetworkStateHub()
        # Called when this node can never join (a wrong token): the agent exits.
        self._on_fatal = on_fatal
        self.log = log.bind(node=name)
        # One start more than the supervisor launches at once: the next is
        # there the moment a launch ends.
        max_in_flight = (max_starting or default_max_launching()) + 1
        self.status = StatusReporter(self._stopped, settled=lambda: self.reconciler.settled(),
                                     assigned=lambda tid: self.reconciler.is_assigned(tid))
        self.reconciler = Reconciler(executor, self.status, max_in_flight, self._stopped, self.log)
        self.session = Session(executor, self.reconciler, self.status, join, token, name, address,
                               labels, state_dir, self._stopped, self.log, self._fatal,
                               self.network, metrics_address, identity)
        self.renewer = Renewer(identity, self.session.renew, self._stopped, self.log) if identity else None

    def start(self) -> None:
        self.reconciler.adopt()
        loops = [(self.session.run, "session"), (self.reconciler.run, "reconcile"),
                 (self.status.run, "status")]
        if self.renewer is not None:
            loops.append((self.renewer.run, "renew"))
        for target, name in loops:
            threading.Thread(target=target, name=f"worker-{name}", daemon=True).start()

    def stop(self) -> None:
        """Leave the cluster: no more starts, and no more status. Called
        before a node shutdown stops its containers: those exits are the
        node going down, not task failures; the control plane sees the node
        go and decides (its tasks are orphaned and replaced, or, when the
        whole cluster comes back up, the node starts them again)."""
        self._stopped.set()
        self.reconciler.wake()
        self.status.stop()
        self.session.stop()

    def resync(self) -> None:
        """A new supervisor replaced a dead one (see the agent's
        SupervisorWatch): pick up the containers of starts that were out
        then, which its predecessor's death ended, and report them."""
        self.reconciler.adopt()
        self.reconciler.wake()

    def task_states(self) -> list[str]:
        """The state of each task the node last reported ("running", ...), for its metrics."""
        return [status.state.label() for status in list(self.status.reported.values())]

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        """Supervisor events (the agent's EventHub passes them all)."""
        self.reconciler.on_event(event, data)

    @property
    def removed(self) -> bool:
        """The cluster removed this node (``orch node rm``): its certificate is revoked."""
        return self.session.removed

    def _fatal(self, reason: str) -> None:
        self.stop()
        if self._on_fatal is not None:
            self._on_fatal(reason)
