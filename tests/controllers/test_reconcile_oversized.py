"""A stored service beyond the replica limit (written before the limit existed, or
straight into etcd) is skipped by the reconciler: no task is created, removed or
changed for it, and every other service is reconciled as usual."""

from __future__ import annotations

import dataclasses

from controllers_helpers import Ids, node, nodes_of, service, services_of, task

from controlplane.controllers import diff, oversized
from model.objects import TaskState
from model.units import MAX_REPLICAS


def test_a_service_beyond_the_limit_gets_no_changes() -> None:
    huge = service("s1", replicas=10**12)
    tasks = [task("t1", huge, slot=1), task("t2", huge, slot=2, node_id="gone"),  # its node is unknown
             task("t3", huge, slot=7, state=TaskState.FAILED)]
    changes = diff(services_of(huge), tasks, nodes_of(node("n1")), now=100.0, new_id=Ids())
    assert changes.empty


def test_other_services_are_reconciled_beside_it() -> None:
    huge, small = service("s1", replicas=MAX_REPLICAS + 1), service("s2", replicas=3)
    changes = diff(services_of(huge, small), [], nodes_of(node("n1")), now=0.0, new_id=Ids())
    assert sorted((t.service_id, t.slot) for t in changes.create) == [("s2", 1), ("s2", 2), ("s2", 3)]


def test_the_limit_itself_is_reconciled() -> None:
    at_limit = service("s1", replicas=MAX_REPLICAS)
    assert not oversized(at_limit)
    assert oversized(service("s1", replicas=MAX_REPLICAS + 1))
    # A global service's replicas count is unused: never oversized.
    assert not oversized(dataclasses.replace(at_limit, spec=dataclasses.replace(
        at_limit.spec, mode="global", replicas=10**12)))


def test_scaling_it_back_down_reconciles_again() -> None:
    huge = service("s1", replicas=10**12)
    tasks = [task("t1", huge, slot=1)]
    fixed = dataclasses.replace(huge, spec=dataclasses.replace(huge.spec, replicas=2))
    changes = diff(services_of(fixed), tasks, nodes_of(node("n1")), now=0.0, new_id=Ids())
    assert [t.slot for t in changes.create] == [2]
