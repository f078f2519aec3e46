"""The object a request names, found in this replica's cache, and reading
one's own writes: shared by the API's parts.

A reference that matches nothing ends the call NOT_FOUND; a task reference
that matches several running tasks ends it INVALID_ARGUMENT, naming a few.
Lookups read the informer's cache only, never etcd.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc

from controlplane.store import Informer, Kind
from model.objects import Node, Service, Task, TaskState

T = TypeVar("T")


def find_service(informer: Informer, ref: str, context: grpc.ServicerContext) -> Service:
    """A service by id or name."""
    found = informer.get(Kind.SERVICE, ref)
    if not isinstance(found, Service):
        found = next((s for s in informer.services() if s.spec.name == ref), None)
    if found is None:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no such service: {ref}")
    assert isinstance(found, Service)
    return found


def find_node(informer: Informer, ref: str, context: grpc.ServicerContext) -> Node:
    """A node by id, name or unique id prefix."""
    nodes = informer.nodes()
    found = next((n for n in nodes if n.id == ref or n.name == ref), None)
    if found is None:
        matches = [n for n in nodes if n.id.startswith(ref)]
        found = matches[0] if len(matches) == 1 else None
    if found is None:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no such node: {ref}")
    assert found is not None
    return found


def find_running_task(informer: Informer, ref: str, context: grpc.ServicerContext) -> Task:
    """A running task by id, id prefix or name (``web.1`` means slot 1's running task;
    of several, the one meant to keep running)."""
    tasks = informer.tasks()
    exact = [t for t in tasks if t.id == ref or t.name == ref]
    matches = exact or [t for t in tasks if t.id.startswith(ref) or t.name.startswith(ref + ".")
                        or t.name.startswith(ref)]
    running = [t for t in matches if t.status.state == TaskState.RUNNING]
    if len(running) > 1:  # one meant to run beats ones being stopped (a removed service's, a replaced one)
        running = [t for t in running if t.desired_state == TaskState.RUNNING] or running
    if len(running) == 1:
        return running[0]
    if len(running) > 1:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"task {ref!r} is ambiguous: {', '.join(t.name for t in running[:5])}")
    if not matches:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no such task: {ref}")
    context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"task {ref} is not running")
    raise AssertionError


def read_own_write(informer: Informer, obj: T, revision: int = 0) -> T:
    """Return ``obj`` once this replica's cache holds the write (at
    ``revision``, by default the object's version), so a get or list that
    follows it (as `orch deploy` does) sees it. Bounded: a cache that lags
    more than 5 s answers with what it has."""
    written: Any = obj
    informer.wait_revision(revision or written.version, 5.0)
    return obj
