"""A node's API token stays with the control plane and the store: no answer
of the cluster API carries it (node list, node update, events), while the
stored node keeps it (real etcd, the real informer and API)."""

from __future__ import annotations

import dataclasses
import queue
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from store_helpers import make_node

from controlplane.api import ClusterAPI
from controlplane.store import Informer, Store
from model.wire import availability_to_pb, event_from_pb, node_from_pb
from proto import cluster_pb2 as cpb


class Context:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active

    def abort(self, code: Any, message: str) -> None:
        raise AssertionError(f"{code}: {message}")


@pytest.fixture
def api(store: Store) -> Iterator[ClusterAPI]:
    informer = Informer(store).start()
    assert informer.wait_synced(10)
    yield ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1")
    informer.stop()


def test_no_answer_carries_the_node_api_token(api: ClusterAPI, store: Store) -> None:
    token = secrets.token_hex(32)
    node = store.create(dataclasses.replace(make_node("n1"), api_token=token, state="ready"))
    api.informer.wait_revision(node.version, 10)

    listed = api.ListNodes(cpb.ListRequest(), Context())
    assert token.encode() not in listed.SerializeToString()
    assert [node_from_pb(n) for n in listed.nodes] == [dataclasses.replace(node, api_token="")]

    events: queue.Queue[cpb.Event] = queue.Queue()
    ctx = Context()

    def watch() -> None:  # every change, nodes included: no service filter
        for event in api.Events(cpb.EventsRequest(), ctx):  # type: ignore[arg-type]
            events.put(event)

    threading.Thread(target=watch, daemon=True).start()
    try:
        updated = api.UpdateNode(cpb.UpdateNodeRequest(node="n1", availability=availability_to_pb("drain"),
                                                       add_labels={"zone": "a"}), Context())
        assert token.encode() not in updated.SerializeToString()
        assert node_from_pb(updated).availability == "drain"
        event = events.get(timeout=10)
        assert token.encode() not in event.SerializeToString()
        action, seen = event_from_pb(event)
        assert (action, seen.name, seen.labels, seen.api_token) == ("put", "n1", {"zone": "a"}, "")
    finally:
        ctx.active = False
    # The control plane still has it, to reach the node's API.
    [stored] = store.list_nodes()
    assert (stored.api_token, stored.availability) == (token, "drain")
