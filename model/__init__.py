"""The cluster's pure model, shared by the CLI, the control plane, the
scheduler and the nodes: the objects (``objects``: services, tasks, nodes,
task states), quantities and units (``units``), the placement grammar
(``constraints``), and manifests in Compose syntax (``manifest``); ``wire``
converts the objects to and from their proto messages, at the gRPC edge.

Invariant: no I/O beyond reading a manifest file, no gRPC, no etcd; of
orch's packages it imports only those below it: ``registry``, ``common``
and ``proto`` (checked by import-linter, see pyproject.toml).
"""
