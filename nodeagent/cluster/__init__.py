"""The agent's side of cluster membership: one session with the control plane.

The worker registers the node, heartbeats, receives its *full* assignment set
and then changes, runs each assigned task as a container through the
executor, and reports task status in batches. Anything running that is not
in the full set is stopped and removed (swarmkit's rule), so a node that was
cut off and comes back converges to what the control plane decided meanwhile.

Modules: ``worker`` (the composition), ``session`` (the stream),
``reconcile`` (assignments against containers), ``status`` (batched task
status), ``executor`` (a task's container through the node's engine,
``agent.engine``: swarmkit's ``agent/exec`` shape).
"""

from nodeagent.cluster.executor import TaskExecutor
from nodeagent.cluster.worker import Worker

__all__ = ["TaskExecutor", "Worker"]
