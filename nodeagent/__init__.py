"""The node side: one agent per host, running containers for the local engine
API (``orch run``) and for the cluster (the worker's session).

Process model::

    agent: gRPC, images      --unix socket, JSON lines-->   supervisor: containers
    (agent/, cluster/, images/)                             (supervisor/, runtime/, network/)

- The agent serves gRPC and never forks: it starts the supervisor with exec
  before any gRPC thread exists (``agent.daemon``), and keeps one session
  with a control plane when joined (``cluster``).
- The supervisor is long-lived and single-threaded, without gRPC: it owns the
  containers. Each container's PID 1 is its child (``orch-init`` clones it
  onto the supervisor with CLONE_PARENT), so it reaps them and records their
  exits; they die with it. A restarted agent reconnects to the supervisor and
  finds every container as it was.
- The engine (``agent.engine``) is the one way to containers: a request
  becomes a supervisor record (image lookup, ``agent.specbuild``) and the
  supervisor's verbs; the local API (``agent.service``) and the cluster's
  executor (``cluster.executor``: a task becomes a request) both use it.
- The runtime turns a complete ``runtime.spec.ContainerSpec`` into a
  contained process; a failed setup step never execs and is reported as a
  ``common.errors.SetupError`` naming the step and its arguments.

Each package's docstring states its contract: ``runtime`` (and its
``cgroups``), ``network``, ``images``, ``supervisor``, ``cluster``; the
modules ``logs`` (JSON-lines logs), ``restart`` (policies, back-off) and
``hostns``. Errors are ``common.errors`` kinds. nodeagent never imports the
control plane (an import-linter contract in pyproject.toml).
"""
