"""The node's engine: container requests in, supervisor calls out.

Both doors into this node's containers go through one :class:`Engine`: the
local engine API (``agent.service.AgentService``, what `orch run` talks to)
and the cluster worker (``cluster``, through its task executor)::

    ContainerConfig --record()--> supervisor record --create/run/start/...--> supervisor
    (the request)     image lookup, specbuild         one call per verb

- A request is ``proto.agent_pb2.ContainerConfig`` (the agent's container
  spec), whichever door it came through; :meth:`Engine.record` looks its
  image up and has ``specbuild`` build and check the runtime spec: the one
  place a request becomes a record.
- Each container verb is one supervisor call (``nodeagent.supervisor``);
  the supervisor's records are the truth, and the engine keeps no container
  state of its own. Exits, exec exits and log files are read through the
  agent's ``EventHub`` and ``nodeagent.logs``.
- Registry images are pulled on demand for the cluster's tasks
  (:meth:`Engine.pulled`), one pull per reference at a time; a local request
  names an image that is already here, as with Docker.

Log lines about a container carry ``container`` (its id) and ``name``, bound
onto the caller's logger when it passes one (the worker's carries node,
service and task), onto the engine's own otherwise.

Errors are ``common.errors`` kinds: the supervisor's, ``specbuild``'s
``InvalidArgument``, the image store's ``NotFound``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from common.errors import AgentError, InvalidArgument
from common.logging import get_logger
from nodeagent.agent import specbuild
from nodeagent.logs import LogEntry, LogFollower, batched, check_time, format_time, read_logs, within
from proto import agent_pb2 as pb

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from nodeagent.agent.events import EventHub
    from nodeagent.supervisor import SupervisorClient

__all__ = ["Engine", "RunOutput", "StartDone"]

LOGGER = "orch.engine"
log = get_logger(LOGGER)

# A start's answer, on the supervisor client's reader thread: the record, or the error.
StartDone = Callable[[dict[str, Any] | None, AgentError | None], None]
# What a foreground run yields: ("started", record), ("log", LogEntry), ("exited", record).
RunOutput = tuple[Literal["started", "log", "exited"], Any]


class Engine:
    """Container requests to supervisor records and calls; thread-safe (the
    supervisor client is, and the pull cache takes a lock)."""

    def __init__(self, state_dir: str, supervisor: SupervisorClient, images: Any, events: EventHub,
                 default_pids_limit: int = 0) -> None:
        self.state_dir = state_dir
        self.sup = supervisor
        self.images = images  # the image store (the agent's is loaded on first use)
        self.events = events
        self.default_pids_limit = default_pids_limit  # for a request whose pids limit is 0
        # The node's user-defined networks (``EngineNetworks``; set by the agent, None: none).
        self.networks: Any = None
        self._lock = threading.Lock()
        self._pulls: dict[str, threading.Lock] = {}
        self._pulled: dict[str, str] = {}  # registry ref -> local image id

    # ---- requests -> records --------------------------------------------

    def record(self, cfg: pb.ContainerConfig) -> dict[str, Any]:
        """What the supervisor's create and run take: the runtime spec, the
        request as sent, and the record fields beside them."""
        if not cfg.image:
            raise InvalidArgument("no image given")
        image = self.images.get(cfg.image)
        from nodeagent.agent.networkapi import user_network

        cfg, bridge = user_network(self.networks, cfg)
        spec, extra = specbuild.build(cfg, image, self.images.lower_dirs(image), self.state_dir,
                                      self.default_pids_limit, user_bridge=bridge)
        from google.protobuf.json_format import MessageToDict

        return {"spec": spec.to_dict(), "config": MessageToDict(cfg), **extra}

    def pulled(self, ref: str) -> str:
        """A local image for ``ref``: ``ref`` itself unless it names a
        registry; a registry image is pulled once, concurrent callers wait
        for that pull."""
        from registry.reference import names_registry

        if not names_registry(ref):
            return ref
        from nodeagent.images.job import run_job

        with self._lock:
            lock = self._pulls.setdefault(ref, threading.Lock())
        with lock:
            if ref not in self._pulled:
                from nodeagent.images import pullstats

                with pullstats.counting():
                    self._pulled[ref] = run_job(self.state_dir, "pull", ref)
        return self._pulled[ref]

    # ---- container verbs ------------------------------------------------

    def create(self, cfg: pb.ContainerConfig) -> dict[str, Any]:
        rec: dict[str, Any] = self.sup.call("create", record=self.record(cfg))
        return rec

    def run(self, cfg: pb.ContainerConfig) -> dict[str, Any]:
        """Create and start, in one supervisor call."""
        rec: dict[str, Any] = self.sup.call("run", record=self.record(cfg))
        _bound(None, rec).info("container started", image=rec.get("image", ""))
        return rec

    def run_async(self, record: dict[str, Any], done: StartDone,
                  logger: FilteringBoundLogger | None = None) -> None:
        """Create and start ``record`` (from :meth:`record`) without waiting:
        ``done`` hears the answer on the supervisor client's reader thread,
        before any later event of the container; it must not block."""
        def answered(rec: dict[str, Any] | None, err: AgentError | None) -> None:
            if err is None and rec is not None:
                _bound(logger, rec).info("container started", image=rec.get("image", ""))
            done(rec, err)  # a failure is the caller's to tell

        self.sup.call_async("run", answered, record=record)

    def start(self, cid: str) -> dict[str, Any]:
        rec: dict[str, Any] = self.sup.call("start", id=cid)
        _bound(None, rec).info("container started", image=rec.get("image", ""))
        return rec

    def stop(self, cid: str, timeout: float | None = None,
             logger: FilteringBoundLogger | None = None) -> dict[str, Any]:
        """The stop signal, then SIGKILL after ``timeout`` seconds (None: the
        container's own stop timeout); returns once it has exited."""
        rec: dict[str, Any] = self.sup.call("stop", id=cid, timeout=timeout)
        _bound(logger, rec).info("container stopped", exit_code=rec.get("exit_code"))
        return rec

    def kill(self, cid: str, signal: str) -> dict[str, Any]:
        sig = specbuild.parse_signal(signal or "SIGKILL", "signal")
        rec: dict[str, Any] = self.sup.call("kill", id=cid, signal=sig)
        return rec

    def remove(self, cid: str, force: bool = False, logger: FilteringBoundLogger | None = None) -> str:
        """Remove the container (``force``: kill it first if it runs); its id."""
        removed = str(self.sup.call("remove", id=cid, force=force)["id"])
        self.events.forget(removed)
        _logger(logger, container=removed).info("container removed")
        return removed

    def containers(self, all: bool = False) -> list[dict[str, Any]]:
        """The containers: running ones, or with ``all`` every one; newest first."""
        recs: list[dict[str, Any]] = self.sup.call("list", all=all)
        return recs

    def get(self, cid: str, full: bool = False) -> dict[str, Any]:
        rec: dict[str, Any] = self.sup.call("get", id=cid, full=full)
        return rec

    def wait(self, cid: str) -> dict[str, Any]:
        rec: dict[str, Any] = self.sup.call("wait", id=cid)
        return rec

    def stats(self, cid: str) -> tuple[str, dict[str, Any]]:
        """The running container's id (``cid`` may be a name or a prefix) and
        its figures, by StatsResponse field (``metrics.containerstats``)."""
        from common.errors import FailedPrecondition
        from nodeagent.metrics.containerstats import node_reader

        rec = self.get(cid)
        figures = node_reader().read(rec) if rec["state"] == "running" and rec.get("pid") else None
        if figures is None:
            raise FailedPrecondition(f"container {rec['name']} is not running")
        return rec["id"], figures

    def stats_all(self, refs: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """Each running container's id and figures, as :meth:`stats`: of
        those ``refs`` name (ids, names, unique id prefixes; one that names
        no running container is left out), or with none every one. One
        supervisor list, then a few file reads per container."""
        from nodeagent.metrics.containerstats import node_reader, pick

        reader = node_reader()
        running = [r for r in self.containers() if r.get("state") == "running" and r.get("pid")]
        reader.keep({r["id"] for r in running})
        out = []
        for rec in pick(running, refs) if refs else running:
            figures = reader.read(rec)
            if figures is not None:  # stopped since the list
                out.append((str(rec["id"]), dict(figures)))
        return out

    def protect(self, ports: list[int]) -> None:
        """Fence these TCP ports of the node off from every container."""
        self.sup.call("protect", ports=sorted(set(ports)))

    def shutdown(self) -> None:
        """Stop every container (each with its grace period), then the supervisor."""
        self.sup.call("shutdown", stop_containers=True)

    # ---- streams ----------------------------------------------------------

    def run_attached(self, cfg: pb.ContainerConfig, active: Callable[[], bool]) -> Iterator[RunOutput]:
        """A foreground run: ("started", record), then ("log", entry) for
        each line of output, then ("exited", record); it ends early once
        ``active()`` is False (the caller went away)."""
        rec = self.create(cfg)
        cid = rec["id"]
        # Opened before the start: the follower holds the file, so even an
        # auto-removed container's last lines are read.
        follower = LogFollower(rec["log_path"], tail=None)
        try:
            try:
                rec = self.start(cid)
            except AgentError:
                if cfg.auto_remove:
                    self.remove(cid, force=True)
                raise
            yield "started", rec
            while active():
                seen = self.events.generation
                final = self.events.exited(cid)
                for entry in follower.poll():
                    yield "log", entry
                if final is not None:
                    self.events.forget(cid)
                    yield "exited", final
                    return
                self.events.wait_change(0.05, since=seen)
        finally:
            follower.close()

    def logs(self, cid: str, tail: int | None, follow: bool, active: Callable[[], bool],
             since: str = "", until: str = "") -> Iterator[list[LogEntry]]:
        """The container's output in batches (``nodeagent.logs.batched``),
        with ``since <= time < until``; with ``follow``, like `docker logs
        -f`: until the container stops, ``until`` passes, or ``active()`` is
        False."""
        try:
            check_time(since, "since")
            check_time(until, "until")
        except ValueError as err:
            raise InvalidArgument(str(err)) from None
        rec = self.get(cid)
        if not follow:
            yield from batched(within(read_logs(rec["log_path"], tail=tail), since, until))
            return
        follower = LogFollower(rec["log_path"], tail=tail)
        try:
            running = rec["state"] in ("running", "restarting")
            while active():
                stopped = not running or self._stopped(rec["id"])
                yield from batched(within(follower.poll(), since, until))
                if stopped or (until and format_time(time.time()) >= until):
                    return
                self.events.wait_change(0.1)
        finally:
            follower.close()

    def _stopped(self, cid: str) -> bool:
        final = self.events.exited(cid)
        return final is not None and final["state"] == "exited"

    def exec(self, cid: str, command: list[str], env: list[str], workdir: str | None,
             user: str | None) -> tuple[int, list[int]]:
        """Start ``command`` in the running container, with its process's
        environment (``env`` added), working directory and user unless
        given; the exec's id and its stdout and stderr pipes (the caller
        closes them)."""
        if not command:
            raise InvalidArgument("no command given to exec")
        proc = self.get(cid, full=True)["spec"]["process"]
        process = {
            "args": list(command),
            "env": specbuild.merge_env(proc["env"], list(env)),
            "cwd": workdir if workdir is not None else proc["cwd"],
            "user": specbuild.check_user(user) if user is not None else proc["user"],
        }
        result, fds = self.sup.call_fds("exec", id=cid, process=process)
        return int(result["exec_id"]), fds

    def exec_exit(self, exec_id: int, timeout: float) -> int | None:
        """The exec's exit code, once it has exited; None if not within ``timeout``."""
        return self.events.wait_exec(exec_id, timeout=timeout)


def _bound(logger: FilteringBoundLogger | None, rec: dict[str, Any]) -> FilteringBoundLogger:
    """The caller's ``logger`` (with what it knows: node, service, task) or
    the engine's own, naming the engine and the container."""
    return _logger(logger, container=rec["id"], name=rec.get("name", ""))


def _logger(logger: FilteringBoundLogger | None, **fields: Any) -> FilteringBoundLogger:
    return log.bind(**fields) if logger is None else logger.bind(logger=LOGGER, **fields)
