"""LinuxRuntime: containers from namespaces, cgroups and overlayfs, in-process.

Each container's PID 1 and each exec'd process is the caller's own child:
``orch-init`` (spawned per container or exec, see ``native``) clones them
onto the caller with CLONE_PARENT, and they die with the caller (SIGKILL as
their parent-death signal; see ``init``). Lifecycle::

    create -> (start) -> running -> wait/exited -> remove
       \\-> SetupError: everything already undone

Invariants: a failed setup step never execs; every failure path and
:meth:`LinuxRuntime.remove` leave no process, cgroup, mount, veth, route or
runtime dir behind; mounts exist only inside the container's mount namespace.

A container with a network of its own (bridge mode, overlay networks) gets
its links attached (``BridgeNetwork.attach``) and its DNS sockets made
(``netns``) before its process runs; the runtime keeps the sockets until
its process exits (:meth:`LinuxRuntime.dns_fds` lends them out).
What an earlier runtime process left (a container that outlived it) is
adopted only to be killed and removed (:meth:`LinuxRuntime.adopt`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from common.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, SetupError
from nodeagent.runtime import bundle, channel, enter, init, native, netns, process, seccomp
from nodeagent.runtime.api import Container, Stdio
from nodeagent.runtime.rootfs import RootfsPlan, overlay_options
from nodeagent.runtime.spec import ContainerSpec, ExitStatus, ProcessSpec

if TYPE_CHECKING:
    from nodeagent.network import BridgeNetwork
    from nodeagent.network.bridges import BridgeNetworks
    from nodeagent.runtime.cgroups import Cgroup, CgroupDriver, CgroupStats

# Exit status reported when the container's pid was not our child (adopted
# after a supervisor restart): the kernel's status went to someone else.
UNKNOWN_EXIT = 255

# How long the removal of an adopted container may wait for its cgroup to
# empty once killed. A process freeing a large address space, or one in an
# uninterruptible sleep, takes longer than the second a removal allows.
RECLAIM_TIMEOUT = 10.0


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (IndexError, ValueError):
        return False


# overlayfs "volatile" arrived in Linux 5.10; older kernels reject the option.
_VOLATILE_OVERLAY = _kernel_at_least(5, 10)


@dataclass
class _Live:
    """What the runtime keeps per container besides the public handle."""

    cgroup: Cgroup
    pidfd: int = -1
    reader: channel.Reader | None = None
    control_fd: int = -1
    network_attached: bool = False
    status: ExitStatus | None = None
    exec_pids: dict[int, int] = field(default_factory=dict)  # pid -> pidfd
    dns_fds: tuple[int, ...] = ()  # its 127.0.0.11:53 sockets: UDP, TCP (listening)
    handle: Container | None = None
    adopted: bool = False  # left by an earlier runtime process: not our child


class LinuxRuntime:
    def __init__(self, cgroups: CgroupDriver | None = None,
                 network: BridgeNetwork | BridgeNetworks | None = None) -> None:
        if cgroups is None:
            from nodeagent.runtime.cgroups import detect

            cgroups = detect()
        self.cgroups = cgroups
        self.network = network
        self._live: dict[str, _Live] = {}
        native.check_built()
        seccomp.default_program()  # compile once, up front

    # --- create / start ---------------------------------------------------------

    def create(self, spec: ContainerSpec, stdio: Stdio) -> Container:
        return self._create(spec, stdio, start_now=False)

    def launch(self, spec: ContainerSpec, stdio: Stdio) -> Container:
        """create and start in one step, without waiting for either: PID 1
        sets up and execs on its own while the caller goes on (a supervisor
        starts the next container meanwhile). Once :meth:`launch_fd` is
        readable, :meth:`launched` says whether the exec happened (True) or
        is still to come (False), or raises the SetupError of a failed step
        with everything already undone."""
        return self._create(spec, stdio, start_now=True)

    def launch_fd(self, container: Container) -> int:
        return self._launch_reader(container)[1].fd

    def launched(self, container: Container) -> bool:
        live, reader = self._launch_reader(container)
        try:
            msg = reader.next()
        except BlockingIOError:
            return False
        if msg is None:  # EOF: the close-on-exec pipe closed at exec
            reader.close()
            live.reader = None
            return True
        try:
            self._raise_after(container.spec, container.pid, live, _as_error(msg, "setup"))
        finally:
            self._teardown(container, live)

    def _launch_reader(self, container: Container) -> tuple[_Live, channel.Reader]:
        live = self._get(container)
        if live.reader is None:
            raise FailedPrecondition(f"container {container.spec.id[:12]} is not being launched")
        return live, live.reader

    def _create(self, spec: ContainerSpec, stdio: Stdio, start_now: bool) -> Container:
        self._validate(spec)
        live = _Live(cgroup=self.cgroups.create(_cgroup_name(spec), spec.resources,
                                                spec.device_rules()))
        self._live[spec.id] = live
        container = Container(spec, 0, time.time())
        live.handle = container
        try:
            bundle.prepare(spec)
            container.pid = self._spawn_init(spec, stdio, live, start_now)
        except BaseException:
            self._teardown(container, live)
            raise
        return container

    def _validate(self, spec: ContainerSpec) -> None:
        if spec.id in self._live:
            raise Conflict(f"container {spec.id[:12]} already exists in this runtime")
        if spec.network.mode not in ("none", "host", "bridge"):
            raise InvalidArgument(f"network mode {spec.network.mode!r} is not none|host|bridge")
        if spec.network.mode == "bridge" and self.network is None:
            raise InvalidArgument("network mode 'bridge' needs a runtime with a BridgeNetwork")
        if spec.network.attachments:
            if spec.network.mode == "host":
                raise InvalidArgument("overlay networks need the container's own network "
                                      "namespace, not network mode 'host'")
            if self.network is None:
                raise InvalidArgument("overlay networks need a runtime with a BridgeNetwork")
        if not spec.rootfs.lower_dirs:
            raise InvalidArgument("rootfs.lower_dirs is empty")
        if spec.mounts:
            self._validate_mounts(spec)

    @staticmethod
    def _validate_mounts(spec: ContainerSpec) -> None:
        """Binds at absolute, normalised targets (``model.secrets``' rules), once each, from host paths."""
        from model.secrets import resolve_target

        targets: set[str] = set()
        for mount in spec.mounts:
            try:
                if resolve_target("config", mount.target) != mount.target:
                    raise ValueError(f"invalid target {mount.target!r}: an absolute path")
            except ValueError as err:
                raise InvalidArgument(f"mount {mount.source}: {err}") from None
            if not os.path.isabs(mount.source) or any(c in mount.source for c in "\t\n\0"):
                raise InvalidArgument(f"invalid mount source {mount.source!r}: an absolute host path")
            if mount.target in targets:
                raise InvalidArgument(f"two mounts at {mount.target}")
            targets.add(mount.target)

    def _init_plan(self, spec: ContainerSpec, stdio: Stdio, report_w: int,
                   control_r: int, live: _Live) -> init.InitPlan:
        staging = bundle.mountpoint(spec)
        return init.InitPlan(
            unshare_flags=init.unshare_flags(spec.network.mode),
            rootfs=RootfsPlan(
                staging=staging,
                overlay_data=overlay_options(
                    staging, spec.rootfs.lower_dirs,
                    None if spec.rootfs.readonly else bundle.writable_dirs(spec),
                    spec.rootfs.volatile and _VOLATILE_OVERLAY),
                readonly=spec.rootfs.readonly, hostname=spec.hostname,
                etc_files=bundle.etc_files(spec),
                masked_paths=spec.masked_paths, readonly_paths=spec.readonly_paths,
                mounts=tuple(spec.mounts),
            ),
            process=process.build_plan(spec.process, stdio, spec.hostname, report_w),
            network=spec.network,
            control_fd=control_r,
            cgroup_files=live.cgroup.self_join_files(),
            runtime_pid=_own_pid(),  # the container dies with this process
            reaper=spec.init, sysctls=spec.sysctls, devices=tuple(spec.devices),
            shm_size=spec.shm_size, sysfs_rw=spec.privileged,
        )

    def _spawn_init(self, spec: ContainerSpec, stdio: Stdio, live: _Live, start_now: bool) -> int:
        report_r, report_w = channel.pipe()
        live.reader = channel.Reader(report_r)
        try:
            control_r, live.control_fd = channel.pipe()
        except BaseException:
            os.close(report_w)
            raise
        try:
            plan = self._init_plan(spec, stdio, report_w, control_r, live)
            plan.start_now = start_now
            helper = init.spawn(plan)
        finally:
            os.close(report_w)
            os.close(control_r)
        early: list[bytes] = []  # PID 1 may report "R" before the helper's "P" arrives
        pid, error = _read_pid(live.reader, early)
        _reap(helper)
        if error is not None:
            raise error
        if not pid:
            raise SetupError("clone", hex(plan.unshare_flags), "orch-init exited without a pid")
        live.pidfd = os.pidfd_open(pid)
        if spec.network.attached:
            self._attach_network(spec, pid, live)
        if start_now:
            os.close(live.control_fd)  # nothing more to say: no start to send
            live.control_fd = -1
            os.set_blocking(live.reader.fd, False)
            return pid
        msg = early.pop() if early else live.reader.next()
        if msg != b"R":
            self._raise_after(spec, pid, live, _as_error(msg, "init"))
        return pid

    def _attach_network(self, spec: ContainerSpec, pid: int, live: _Live) -> None:
        """The host's side of the container's network, before its init
        configures its own side (``N``): links, published ports, and the
        DNS sockets in its namespace."""
        assert self.network is not None
        try:
            live.network_attached = True
            self.network.attach(spec.network, pid)
            self.network.publish(spec.id, spec.network)
            live.dns_fds = netns.dns_sockets(pid)
            os.write(live.control_fd, b"N")
        except BrokenPipeError:
            pass  # init already failed: its report follows on the pipe
        except BaseException as exc:
            err = exc if isinstance(exc, SetupError) else SetupError(
                "network_attach", spec.network.host_veth, str(exc))
            self._raise_after(spec, pid, live, err)

    def _raise_after(self, spec: ContainerSpec, pid: int, live: _Live,
                     err: BaseException) -> NoReturn:
        """Reap a failed init (the error is already known) and re-raise; the
        caller's except clause tears the rest down."""
        if pid:
            _kill_pidfd(live.pidfd, signal.SIGKILL)
            _reap(pid)
            live.status = ExitStatus(channel.EXIT_SETUP_FAILED)
        raise err

    def start(self, container: Container) -> None:
        live = self._get(container)
        if live.control_fd < 0 or live.reader is None:
            raise FailedPrecondition(f"container {container.spec.id[:12]} was already started")
        try:
            os.write(live.control_fd, b"S")
        except BrokenPipeError:
            pass  # init died; its report (or EOF) tells the rest
        finally:
            os.close(live.control_fd)
            live.control_fd = -1
        msg = live.reader.next()  # EOF: the close-on-exec pipe closed at exec
        live.reader.close()
        live.reader = None
        if msg is not None:
            err = _as_error(msg, "exec")
            try:
                self._raise_after(container.spec, container.pid, live, err)
            finally:
                self._teardown(container, live)

    # --- waiting and signals ------------------------------------------------------

    def wait(self, container: Container, timeout: float | None = None) -> ExitStatus | None:
        live = self._get(container)
        if live.status is not None:
            return live.status
        if timeout is not None and not _wait_readable(live.pidfd, timeout):
            return None
        try:
            _, status = os.waitpid(container.pid, 0)
        except ChildProcessError:
            _wait_readable(live.pidfd, None)
            live.status = ExitStatus(UNKNOWN_EXIT)
            _close_dns(live)
            return live.status
        return self.exited(container, status)

    def exited(self, container: Container, wait_status: int) -> ExitStatus:
        live = self._get(container)
        oom = False
        if os.WIFSIGNALED(wait_status) and os.WTERMSIG(wait_status) == signal.SIGKILL:
            with contextlib.suppress(Exception):
                oom = live.cgroup.oom_kills() > 0
        live.status = ExitStatus.from_wait_status(wait_status, oom)
        _close_dns(live)  # see dns_fds
        return live.status

    def kill(self, container: Container, sig: int) -> None:
        live = self._get(container)
        if live.status is None:
            _kill_pidfd(live.pidfd, sig)

    def stop(self, container: Container, timeout: float | None = None) -> ExitStatus:
        live = self._get(container)
        if live.status is not None:
            return live.status
        grace = container.spec.stop_timeout if timeout is None else timeout
        self.kill(container, container.spec.stop_signal)
        status = self.wait(container, grace)
        if status is None:
            self.kill(container, signal.SIGKILL)
            status = self.wait(container)
        assert status is not None
        return status

    # --- exec, stats, adopt ------------------------------------------------------------

    def exec(self, container: Container, process_spec: ProcessSpec, stdio: Stdio) -> int:
        live = self._get(container)
        if live.status is not None:
            raise FailedPrecondition(f"container {container.spec.id[:12]} is not running")
        report_r, report_w = channel.pipe()
        reader = channel.Reader(report_r)
        try:
            try:
                plan = enter.ExecPlan(container.pid, live.cgroup.self_join_files(), process.build_plan(
                    process_spec, stdio, container.spec.hostname, report_w))
                e1 = enter.spawn(plan)
            finally:
                os.close(report_w)
            pid, error = _read_pid(reader)
            _reap(e1)
            if error is None and pid:
                msg = reader.next()  # EOF = exec'd
                error = None if msg is None else _as_error(msg, "exec")
            if error is not None:
                if pid:
                    _reap(pid)
                raise error
            if not pid:
                raise SetupError("fork", None, "exec child exited without reporting a pid")
        finally:
            reader.close()
        live.exec_pids[pid] = os.pidfd_open(pid)
        return pid

    def kill_exec(self, container: Container, pid: int, sig: int) -> None:
        """Signal the exec'd ``pid`` (through its pidfd: never a reused pid)
        and its descendants, children first, so none escapes to the
        container's PID 1 when its parent dies first."""
        live = self._live.get(container.spec.id)
        pidfd = live.exec_pids.get(pid, -1) if live is not None else -1
        if pidfd < 0:
            return
        for child in reversed(_descendants(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)
        _kill_pidfd(pidfd, sig)

    def exec_reaped(self, container: Container, pid: int) -> None:
        live = self._live.get(container.spec.id)
        fd = live.exec_pids.pop(pid, -1) if live is not None else -1
        if fd >= 0:
            os.close(fd)

    def stats(self, container: Container) -> CgroupStats:
        return self._get(container).cgroup.stats()

    def dns_fds(self, container: Container) -> list[int]:
        """The container's DNS sockets (UDP, then listening TCP, both bound
        to 127.0.0.11:53 in its network namespace), lent: they stay the
        runtime's, which closes them as soon as the container's process has
        exited (a socket keeps its dead namespace alive). [] without, and
        from then on."""
        live = self._live.get(container.spec.id)
        return list(live.dns_fds) if live is not None else []

    def adopt(self, spec: ContainerSpec, pid: int) -> Container:
        """What an earlier runtime process left of a container, to kill and
        remove (:meth:`remove` waits up to RECLAIM_TIMEOUT for its cgroup to
        empty): its PID 1 ``pid``, or with ``pid`` 0 whatever its cgroup holds.
        NotFound if its cgroup is gone, or ``pid`` is not in it."""
        cgroup = self.cgroups.open(_cgroup_name(spec))
        pidfd = -1
        if pid:
            if pid not in cgroup.procs():
                raise NotFound(f"process {pid} is not in container {spec.id[:12]}'s cgroup")
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                raise NotFound(f"container {spec.id[:12]} process {pid} is gone")
        try:
            created = os.stat(f"/proc/{pid}").st_mtime if pid else time.time()
        except OSError:
            created = time.time()
        container = Container(spec, pid, created)
        self._live[spec.id] = _Live(cgroup=cgroup, pidfd=pidfd, handle=container, adopted=True,
                                    network_attached=spec.network.attached)
        return container

    # --- remove ----------------------------------------------------------------------

    def remove(self, container: Container, keep_rootfs: bool = False) -> None:
        live = self._live.get(container.spec.id)
        if live is None:
            self._remove_orphaned(container.spec, keep_rootfs)
        else:
            self._teardown(container, live, keep_rootfs)
        # A kept writable layer's size limit goes too: a restart's create sets it again.
        bundle.release(container.spec)

    def cleanup(self) -> None:
        from nodeagent.runtime.cgroups import remove_parent_if_empty

        remove_parent_if_empty(self.cgroups, "orch")

    def _teardown(self, container: Container, live: _Live, keep_rootfs: bool = False) -> None:
        """Undo everything create did, in reverse; safe on a half-built container."""
        spec = container.spec
        errors: list[BaseException] = []
        init_exited = live.status is not None
        if live.adopted:
            with _collect(errors):
                _empty_cgroup(live.cgroup, RECLAIM_TIMEOUT)
        elif not init_exited:
            with _collect(errors):
                live.cgroup.kill_all()
        if container.pid and live.status is None:
            _kill_pidfd(live.pidfd, signal.SIGKILL)
            try:
                _, status = os.waitpid(container.pid, 0)
                live.status = ExitStatus.from_wait_status(status)
            except ChildProcessError:
                _wait_readable(live.pidfd, 5.0)
        for pid, fd in live.exec_pids.items():
            _wait_readable(fd, 5.0)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            os.close(fd)
        live.exec_pids.clear()
        _close_dns(live)  # its processes are gone (see dns_fds)
        with _collect(errors):
            # Once init has exited, its pid namespace took every process with
            # it: the group is usually empty, and one rmdir each removes it.
            # Only a group still in use is emptied first.
            if not (init_exited and live.cgroup.try_remove()):
                live.cgroup.kill_all()
                live.cgroup.remove()
        if spec.network.attached and self.network is not None and live.network_attached:
            if spec.network.ports:  # unpublish reads the nft ruleset: skip it when idle
                with _collect(errors):
                    self.network.unpublish(spec.id)
            with _collect(errors):
                self.network.detach(spec.network)
        if not keep_rootfs:
            with _collect(errors):
                bundle.cleanup(spec)
        _close_fds(live)
        self._live.pop(spec.id, None)
        if errors:
            raise errors[0]

    def _remove_orphaned(self, spec: ContainerSpec, keep_rootfs: bool = False) -> None:
        """remove() of a container this runtime does not track: idempotent cleanup."""
        try:
            cgroup = self.cgroups.open(_cgroup_name(spec))
        except NotFound:
            pass
        else:  # left by an earlier runtime process, maybe still in use
            _empty_cgroup(cgroup, RECLAIM_TIMEOUT)
            cgroup.remove()
        if spec.network.attached and self.network is not None:
            if spec.network.ports:
                self.network.unpublish(spec.id)
            self.network.detach(spec.network)
        if not keep_rootfs:
            bundle.cleanup(spec)

    def _get(self, container: Container) -> _Live:
        live = self._live.get(container.spec.id)
        if live is None:
            raise NotFound(f"container {container.spec.id[:12]} is not known to the runtime")
        return live


# --- helpers ---------------------------------------------------------------------------

# The pid a container's init is told to follow (this process); a module
# attribute so a test can name one that has exited.
_own_pid = os.getpid


def _cgroup_name(spec: ContainerSpec) -> str:
    return spec.cgroup_name or f"orch/{spec.id}"


def _empty_cgroup(cgroup: Cgroup, timeout: float) -> None:
    """Kill every process in ``cgroup`` until none is left, for up to
    ``timeout`` seconds (each kill_all waits for the group on its own);
    FailedPrecondition naming what is left after that."""
    deadline = time.monotonic() + timeout
    while True:
        cgroup.kill_all()
        left = cgroup.procs()
        if not left:
            return
        if time.monotonic() >= deadline:
            raise FailedPrecondition(f"cgroup {cgroup.name} still holds processes {left} "
                                     f"{timeout:g} s after they were killed")


def _read_pid(reader: channel.Reader, early: list[bytes] | None = None,
              ) -> tuple[int, SetupError | None]:
    """Read until the child's pid report (``P<pid>``) or an error. After an
    error, keep reading to EOF: the pid may still arrive (the grandchild can
    fail before the intermediate child reports it), and is needed to reap.

    Both processes write to the one pipe, so PID 1's "ready" (``R``) can
    come first when it has nothing to wait for (no network to be attached)
    and the helper is slow to be scheduled: it goes to ``early``, not taken
    for an error (which would then wait for an EOF that PID 1, waiting for
    its start, never sends)."""
    pid, error = 0, None
    while True:
        msg = reader.next()
        if msg is None:
            return pid, error
        if msg == b"R" and early is not None and error is None:
            early.append(msg)
        elif msg.startswith(b"P"):
            pid = int(msg[1:])
            if error is None:
                return pid, None
        else:
            error = error or _as_error(msg, "setup")


def _as_error(msg: bytes | None, step: str) -> SetupError:
    if msg is not None and msg.startswith(b"E"):
        return channel.to_setup_error(msg)
    detail = "setup child exited unexpectedly" if msg is None else f"bad message {msg[:80]!r}"
    return SetupError(step, None, detail)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _descendants(pid: int) -> list[int]:
    """``pid``'s descendants, parents before their children (from
    /proc/PID/task/TID/children; [] where the kernel does not have it)."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 4096:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(children)
            todo.extend(children)
    return out


def _kill_pidfd(pidfd: int, sig: int) -> None:
    if pidfd < 0:
        return
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, sig)


def _wait_readable(fd: int, timeout: float | None) -> bool:
    """A pidfd is readable once its process has exited."""
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def _close_fds(live: _Live) -> None:
    if live.reader is not None:
        live.reader.close()
        live.reader = None
    for attr in ("pidfd", "control_fd"):
        fd = getattr(live, attr)
        if fd >= 0:
            os.close(fd)
            setattr(live, attr, -1)
    _close_dns(live)


def _close_dns(live: _Live) -> None:
    for fd in live.dns_fds:
        os.close(fd)
    live.dns_fds = ()


@contextlib.contextmanager
def _collect(errors: list[BaseException]) -> Any:
    try:
        yield
    except Exception as exc:
        errors.append(exc)


__all__ = ["LinuxRuntime"]

