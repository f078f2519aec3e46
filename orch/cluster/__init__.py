"""Local test clusters: ``orch up`` / ``orch down``.

A cluster on one machine: etcd, one control plane, and N node agents; with
N > 1 every agent runs in its own network namespace, a "host" with its own
address on a private bridge, so the cluster behaves like N machines.
"""
