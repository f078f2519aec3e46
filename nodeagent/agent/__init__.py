"""The agent process: the node-local gRPC API and the engine behind it.

Modules: ``daemon`` (start-up: the supervisor first, then gRPC, logging and
the cluster worker when joined), ``engine`` (container requests -> supervisor
records and calls, shared by the API and the worker), ``service`` (the one
servicer gRPC registers, composed of ``containerapi`` and ``imageapi``;
``edge`` maps errors to status codes), ``specbuild`` (a request plus its
image -> a checked runtime spec), ``details`` (inspect and disk-use
messages), ``events`` (the supervisor's events, fanned out).

Invariant: every container request, from `orch run` or from a cluster task,
becomes a supervisor record in ``engine.Engine.record`` and nowhere else.
"""
