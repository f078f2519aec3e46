"""A client that stops reading its event stream cannot stall the control
plane: the informer's fan-out never blocks, and the stream that fell
behind is cut off with RESOURCE_EXHAUSTED (its client lists again)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from controlplane.api.events import EventHub
from controlplane.store import Change, Kind
from model.objects import Node
from proto import cluster_pb2 as cpb


class Aborted(Exception):
    pass


class Context:
    def is_active(self) -> bool:
        return True

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(code, message)


class Informer:
    def add_handler(self, handler: Any) -> None:
        self.handler = handler

    def services(self) -> list[Any]:
        return []

    def tasks(self) -> list[Any]:
        return []


def _change(i: int) -> Change:
    return Change(kind=Kind.NODE, type="update", obj=Node(id=f"n{i}", name=f"n{i}", version=i), old=None)


def test_a_stream_that_falls_behind_is_cut_off_and_never_blocks_the_informer() -> None:
    informer = Informer()
    hub = EventHub(informer, queue_size=3)  # type: ignore[arg-type]
    # The raw stream: None whenever nothing is ready (its first step registers it).
    stream = hub._events(cpb.EventsRequest(), Context(), "Events")  # type: ignore[arg-type]
    assert next(stream) is None
    for i in range(20):  # far more than the queue holds: each returns at once
        informer.handler(_change(i))
    got = [event.node.name for event in (next(stream) for _ in range(3))]
    assert got == ["n0", "n1", "n2"]
    with pytest.raises(Aborted) as err:
        next(stream)
    assert err.value.args[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "fell more than 3 changes behind" in err.value.args[1]
    # The stream is gone from the fan-out.
    informer.handler(_change(99))
    assert hub._watchers == []
