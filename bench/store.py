"""Store write throughput: tasks created, then moved to a node, in batched transactions.

Starts its own embedded etcd in a temp dir (fsync on, as in production), writes
N tasks with ``Store.batch`` (128 ops per transaction, etcd's default limit),
updates them all once, and prints tasks per second for both, plus how long a
``list_all`` of everything takes and how long an informer takes to sync it.

    python bench/store.py [N]        (default N=20000)
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import tempdir
from controlplane.etcd import EmbeddedEtcd
from controlplane.store import Informer, Op, Store
from model.objects import Service, ServiceSpec, Task


def tasks_for(service: Service, n: int) -> list[Task]:
    return [Task(id=f"t{i:07d}", service_id=service.id, service_name=service.spec.name, slot=i + 1,
                 spec=service.spec) for i in range(n)]


def timed_batch(store: Store, ops: list[Op]) -> tuple[list[Task], float]:
    start = time.perf_counter()
    results = store.batch(ops)
    elapsed = time.perf_counter() - start
    return [r for r in results if isinstance(r, Task)], elapsed


def main(n: int) -> None:
    with tempdir() as tmp, EmbeddedEtcd(Path(tmp) / "etcd") as etcd, Store([etcd.endpoint]) as store:
        svc = store.create(Service(id="bench", spec=ServiceSpec(name="bench", image="busybox", replicas=n)))
        created, t_create = timed_batch(store, [Op.create(t) for t in tasks_for(svc, n)])
        moved, t_update = timed_batch(store, [Op.update(dataclasses.replace(t, node_id="node-1"))
                                              for t in created])
        start = time.perf_counter()
        snapshot, _ = store.list_all()
        t_list = time.perf_counter() - start
        start = time.perf_counter()
        with Informer(store) as informer:
            informer.wait_synced(60)
            t_sync = time.perf_counter() - start
        print(f"tasks: {n}, {store.max_txn_ops} ops per transaction")
        print(f"create: {n / t_create:,.0f} tasks/s ({t_create:.2f}s)")
        print(f"update: {len(moved) / t_update:,.0f} tasks/s ({t_update:.2f}s)")
        print(f"list_all: {t_list:.2f}s for {sum(len(v) for v in snapshot.values())} objects")
        print(f"informer sync: {t_sync:.2f}s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
