"""Small fakes below the node's engine, for the worker's and the engine's unit
tests: a supervisor client that records what it was asked (each run waits
for the test to answer it) and an image store that knows a few images. The
engine, the executor and specbuild above them are the real ones."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from common.errors import AgentError, NotFound
from nodeagent.agent.engine import Engine
from nodeagent.agent.events import EventHub
from nodeagent.images.model import Image, ImageConfig


class FakeSupervisor:
    """Runs are held until :meth:`answer`; other calls are recorded and
    answered at once (or once ``hold`` is set, if it is given)."""

    def __init__(self) -> None:
        self.runs: list[tuple[dict[str, Any], Any]] = []  # (record, callback)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.listed: list[dict[str, Any]] = []  # what "list" answers
        self.hold: threading.Event | None = None
        self.called = threading.Condition()

    def call_async(self, op: str, callback: Any, **args: Any) -> None:
        assert op == "run"
        self.runs.append((args["record"], callback))

    def call(self, op: str, wait_timeout: float | None = None, **args: Any) -> Any:
        with self.called:
            self.calls.append((op, args))
            self.called.notify_all()
        if self.hold is not None:
            self.hold.wait(10)
        if op == "list":
            return self.listed
        if op == "protect":
            return sorted(args["ports"])
        if op in ("run", "create"):
            name = args["record"]["spec"]["name"]
            return {"id": f"c-{name}", "name": name, "image": args["record"]["image"]}
        return {"id": args.get("id", ""), "name": "", "exit_code": 0}

    def ops(self) -> list[str]:
        with self.called:
            return [op for op, _ in self.calls]

    def wait_calls(self, count: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        """The calls, once there are ``count`` of them (fails after ``timeout``)."""
        with self.called:
            assert self.called.wait_for(lambda: len(self.calls) >= count, timeout), self.calls
            return list(self.calls)

    def name(self, index: int) -> str:
        return str(self.runs[index][0]["spec"]["name"])

    def answer(self, index: int, cid: str = "", error: AgentError | None = None) -> str:
        record, callback = self.runs[index]
        name = self.name(index)
        callback(None if error else {"id": cid or f"c-{name}", "name": name, "image": record["image"]},
                 error)
        return name


def image(ref: str = "busybox:latest") -> Image:
    return Image(id="sha256:" + "0" * 64, repo_tags=[ref], manifest_digest="", created="", size=0,
                 config=ImageConfig(cmd=["sh"]), diff_ids=[])


class FakeImages:
    """An image store that holds ``refs`` (no layers)."""

    def __init__(self, refs: tuple[str, ...] = ("busybox",)) -> None:
        self.refs = refs

    def get(self, ref: str) -> Image:
        if ref not in self.refs:
            raise NotFound(f"no such image: {ref}")
        return image(ref)

    def lower_dirs(self, image: Image) -> list[str]:
        return []


def engine(state_dir: Path, default_pids_limit: int = 4096) -> tuple[Engine, FakeSupervisor]:
    sup = FakeSupervisor()
    return Engine(str(state_dir), sup, FakeImages(), EventHub(), default_pids_limit), sup  # type: ignore[arg-type]
