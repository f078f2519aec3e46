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
- Volumes (``nodeagent.volumes``) are made, filled from the image and
  marked as the container's in :meth:`Engine.record`, before the supervisor
  hears of it; a failed create frees them again, and a removed container
  (``remove``, or the supervisor's auto-remove, heard as its ``removed``
  event) releases them: its anonymous ones go with ``rm -v`` or when it was
  an auto-remove (or cluster) container, as Docker's.
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

import contextlib
import os
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
    from nodeagent.volumes import VolumeStore

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
        self._volumes: VolumeStore | None = None
        self._pending: set[str] = set()  # containers whose volumes are held, before the supervisor has them
        self._image_volume_cache: dict[str, list[str]] = {}
        listeners = getattr(events, "listeners", None)
        if listeners is not None:
            listeners.append(self._on_event)

    # ---- requests -> records --------------------------------------------

    def record(self, cfg: pb.ContainerConfig) -> dict[str, Any]:
        """What the supervisor's create and run take: the runtime spec, the
        request as sent, and the record fields beside them. The container's
        volumes are made and held for it here: hand the record to
        :meth:`run_async` (or create it through :meth:`create`/:meth:`run`)."""
        if not cfg.image:
            raise InvalidArgument("no image given")
        image = self.images.get(cfg.image)
        from nodeagent.agent.networkapi import user_network

        cfg, bridge = user_network(self.networks, cfg)
        lower_dirs = self.images.lower_dirs(image)
        spec, extra = specbuild.build(cfg, image, lower_dirs, self.state_dir,
                                      self.default_pids_limit, user_bridge=bridge)
        image_volumes = self._image_volumes(image)
        if cfg.mounts or image_volumes:
            mounts, uses = specbuild.mounts(cfg, image_volumes, self.state_dir)
            spec.mounts = mounts + spec.mounts
            # Anonymous volumes go with an auto-remove container, and with a
            # cluster task's (volatile) one: nothing else would ever remove them.
            self._attach_volumes(spec.id, uses, lower_dirs, cfg.auto_remove or cfg.volatile_rootfs)
        from google.protobuf.json_format import MessageToDict

        spec.process.tty = cfg.tty  # -t: a pty as its stdio (-i: the supervisor reads the config)
        if cfg.tty and not any(item.startswith("TERM=") for item in spec.process.env):
            spec.process.env.append("TERM=xterm")  # as Docker's
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
        record = self.record(cfg)
        with self._volumes_held(record):
            rec: dict[str, Any] = self.sup.call("create", record=record)
        return rec

    def run(self, cfg: pb.ContainerConfig) -> dict[str, Any]:
        """Create and start, in one supervisor call."""
        record = self.record(cfg)
        with self._volumes_held(record):
            rec: dict[str, Any] = self.sup.call("run", record=record)
        _bound(None, rec).info("container started", image=rec.get("image", ""))
        return rec

    def run_async(self, record: dict[str, Any], done: StartDone,
                  logger: FilteringBoundLogger | None = None) -> None:
        """Create and start ``record`` (from :meth:`record`) without waiting:
        ``done`` hears the answer on the supervisor client's reader thread,
        before any later event of the container; it must not block."""
        def answered(rec: dict[str, Any] | None, err: AgentError | None) -> None:
            cid = record["spec"]["id"]
            if cid in self._pending:
                self._pending.discard(cid)
                if err is not None:
                    self.volumes.detach(cid, remove_anonymous=True)
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

    def remove(self, cid: str, force: bool = False, logger: FilteringBoundLogger | None = None,
               volumes: bool = False) -> str:
        """Remove the container (``force``: kill it first if it runs); its id.
        Its anonymous volumes go too with ``volumes`` (``orch rm -v``), or
        when it was an auto-remove one, as Docker's."""
        removed = str(self.sup.call("remove", id=cid, force=force)["id"])
        self._detach_volumes(removed, True if volumes else None)
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

    # ---- volumes -----------------------------------------------------------

    @property
    def volumes(self) -> VolumeStore:
        if self._volumes is None:
            from nodeagent.volumes import VolumeStore

            self._volumes = VolumeStore(os.path.join(self.state_dir, "volumes"))
        return self._volumes

    def volume_users(self) -> dict[str, str]:
        """Every container that exists, in any state, and those being
        created, id -> name: what keeps a volume from removal."""
        users = dict.fromkeys(self._pending, "(being created)")
        users.update((str(r["id"]), str(r.get("name") or "")) for r in self.containers(all=True))
        return users

    def _image_volumes(self, image: Any) -> list[str]:
        """The image's VOLUME paths (its config's ``Volumes``), read once per
        image (its id is its config's digest: the answer never changes)."""
        found = self._image_volume_cache.get(image.id)
        if found is None:
            try:
                config = self.images.layout.read_json(image.id).get("config") or {}
                found = sorted(str(p) for p in (config.get("Volumes") or {}))
            except (AttributeError, OSError, ValueError, AgentError):
                found = []  # a store without config blobs (tests' fakes), or an unreadable one
            self._image_volume_cache[image.id] = found
        return found

    def _attach_volumes(self, cid: str, uses: list[specbuild.VolumeUse], lower_dirs: list[str],
                        auto_remove: bool) -> None:
        """Make the container's volumes that do not exist and fill the empty
        ones from the image; the container counts as their user from now
        on (pending until the supervisor has its record)."""
        from nodeagent.volumes import populate

        self._pending.add(cid)
        self.volumes.attach(cid, [u.name for u in uses if not u.anonymous],
                            [u.name for u in uses if u.anonymous], auto_remove)
        try:
            for use in uses:
                if not use.nocopy:
                    with self.volumes.filling(use.name):
                        populate(self.volumes.data_dir(use.name), lower_dirs, use.target)
        except OSError as err:
            self._pending.discard(cid)
            self.volumes.detach(cid, remove_anonymous=True)
            raise AgentError(f"volume at {use.target}: {err}") from None

    @contextlib.contextmanager
    def _volumes_held(self, record: dict[str, Any]) -> Iterator[None]:
        """Around the supervisor's create: a failed one leaves the container's
        volumes unused and its anonymous ones removed."""
        cid = record["spec"]["id"]
        try:
            yield
        except BaseException:
            if cid in self._pending:
                self.volumes.detach(cid, remove_anonymous=True)
            raise
        finally:
            self._pending.discard(cid)

    def _detach_volumes(self, cid: str, remove_anonymous: bool | None) -> None:
        if os.path.isdir(os.path.join(self.state_dir, "volumes")):
            removed = self.volumes.detach(cid, remove_anonymous)
            if removed:
                _logger(None, container=cid).info("volumes removed", volumes=removed)

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        """A removed container (an auto-remove one, removed by the supervisor
        itself) uses no volume any more; its anonymous ones go if it was
        auto-remove. Errors are logged: this runs on the client's reader."""
        if event == "removed":
            try:
                self._detach_volumes(str(data["id"]), None)
            except (OSError, KeyError) as err:
                log.warning("volumes of a removed container not released", error=str(err))

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
                    if cfg.auto_remove:  # removed already: its volumes are free before the answer
                        self._detach_volumes(cid, None)
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
             user: str | None, tty: bool = False, stdin: bool = False,
             size: tuple[int, int] = (0, 0)) -> tuple[int, list[int]]:
        """Start ``command`` in the running container, with its process's
        environment (``env`` added), working directory and user unless
        given; the exec's id and its fds (the caller closes them): its
        stdout and stderr pipes, then with ``stdin`` its stdin's write end;
        with ``tty``, its pty's master alone, first ``size`` (rows, cols)."""
        if not command:
            raise InvalidArgument("no command given to exec")
        proc = self.get(cid, full=True)["spec"]["process"]
        env = list(env)
        if tty and not any(item.startswith("TERM=") for item in env):
            env.append("TERM=xterm")  # as Docker's, unless the exec's own env says
        process: dict[str, Any] = {
            "args": list(command),
            "env": specbuild.merge_env(proc["env"], env),
            "cwd": workdir if workdir is not None else proc["cwd"],
            "user": specbuild.check_user(user) if user is not None else proc["user"],
        }
        if tty:
            process.update(tty=True, console_size={"rows": size[0], "cols": size[1]})
        result, fds = self.sup.call_fds("exec", id=cid, process=process, stdin=stdin)
        return int(result["exec_id"]), fds

    def attach(self, cid: str, size: tuple[int, int] = (0, 0)) -> tuple[dict[str, Any], list[int]]:
        """Attach to a container's output until its process ends (see
        ``supervisor.stdio``): ``{"id", "tty", "stdin_open"}`` and its
        stdout and stderr pipes (the caller closes them). ``size``: its
        tty's (rows, cols)."""
        info, fds = self.sup.call_fds("attach", id=cid, rows=size[0], cols=size[1])
        return dict(info), fds

    def send_input(self, cid: str, data: bytes, close: bool = False) -> None:
        """Bytes for an attached container's stdin or tty; ``close``: its stdin's end."""
        import base64

        self.sup.call("input", id=cid, data=base64.b64encode(data).decode(), close=close)

    def resize(self, cid: str, rows: int, cols: int) -> None:
        self.sup.call("resize", id=cid, rows=rows, cols=cols)

    def exit_code(self, cid: str, timeout: float) -> int | None:
        """The exit code of the container's process once it has ended (its
        ``exited`` event); None if not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.events.generation
            final = self.events.exited(cid)
            if final is not None:
                return int(final["exit_code"])
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.events.wait_change(min(left, 0.5), since=seen)

    def exec_exit(self, exec_id: int, timeout: float) -> int | None:
        """The exec's exit code, once it has exited; None if not within ``timeout``."""
        return self.events.wait_exec(exec_id, timeout=timeout)


def _bound(logger: FilteringBoundLogger | None, rec: dict[str, Any]) -> FilteringBoundLogger:
    """The caller's ``logger`` (with what it knows: node, service, task) or
    the engine's own, naming the engine and the container."""
    return _logger(logger, container=rec["id"], name=rec.get("name", ""))


def _logger(logger: FilteringBoundLogger | None, **fields: Any) -> FilteringBoundLogger:
    return log.bind(**fields) if logger is None else logger.bind(logger=LOGGER, **fields)
