"""The cluster's pure model, shared by the CLI, the control plane, the
scheduler and the nodes: the objects (``objects``: services, tasks, nodes,
task states), quantities and units (``units``), and manifests in Compose
syntax (``manifest``).

Invariant: no I/O beyond reading a manifest file, no gRPC, no etcd; imports
nothing of orch's above it but ``common`` (checked by import-linter, see
pyproject.toml).
"""
