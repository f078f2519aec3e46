"""Health checks in the supervisor: each running container's probes, on the loop.

The layer between ``lifecycle`` and ``ops``. A container whose record has a
check (``Record.healthcheck``: the request's merged with its image's, see
``model.health.merged``) gets a :class:`Monitor` when its process runs; the
monitor's state (``model.health.HealthState``, pure) says when the next
probe is due and what each result does to the status. One probe at a time:

- **exec** (``CMD``, ``CMD-SHELL``): the command runs in the container's
  namespaces and cgroup through the runtime's ``exec``, as `orch exec`
  does (the supervisor forks, never the agent); stdout and stderr share one
  pipe, read on the loop: the first :data:`model.health.OUTPUT_MAX` bytes
  are kept, the rest drained. Its reaped exit is the result (0 success,
  anything else 1).
- **http** / **tcp**: a non-blocking socket of the supervisor's own (the
  node's network namespace) to the container's address: eth0's on the node
  bridge, 127.0.0.1 with network ``host``, else its first overlay address;
  none, and the probe fails saying so. http sends ``GET path HTTP/1.0`` and
  reads the status line (success: the expected status, or 200-399).

A probe still under way at its ``timeout`` fails ("Health check exceeded
timeout"); an exec probe is then SIGKILLed with what it started.

Invariants:
- a container's state starts as ``starting`` at each (re)start, and its
  probes (timers, fds, sockets) stop the moment its process exits;
- nothing here blocks the loop: sockets are non-blocking, pipes are read
  when readable, and a probe's exit is reaped with the rest (``by_pid``);
- a status change is saved in the record (a restarted agent sees it) and
  sent to subscribers as ``health_status``: ``{"id", "name", "labels",
  "status", "failing_streak"}``; each probe's result is in the record the
  supervisor answers with (``Record.health``) without a save.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import os
import selectors
import signal
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from model.health import OUTPUT_MAX, HealthCheck, HealthResult, HealthState
from nodeagent.runtime import Runtime, Stdio
from nodeagent.supervisor import records
from nodeagent.supervisor.lifecycle import Lifecycle
from nodeagent.supervisor.loop import log, read_ready
from nodeagent.supervisor.records import Record

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST

__all__ = ["HEALTH_STATUS", "Health", "Monitor", "probe_address"]

# The event a status change sends (see the module docstring).
HEALTH_STATUS = "health_status"
# The most of an HTTP answer read for its status line.
_STATUS_LINE_MAX = 8192


@dataclass
class _ExecProbe:
    pid: int
    fd: int  # the read end of its stdout+stderr pipe; -1 once closed
    output: bytearray = field(default_factory=bytearray)


@dataclass
class _SocketProbe:
    sock: socket.socket
    target: str  # "10.88.0.5:80"
    answer: bytearray = field(default_factory=bytearray)


@dataclass
class Monitor:
    """One running container's health: its state and the probe under way."""

    cid: str
    check: HealthCheck
    state: HealthState
    timer: int = 0  # the next probe's timer, or the probe's timeout
    started: float = 0.0  # wall-clock start of the probe under way
    probe: _ExecProbe | _SocketProbe | None = None


def probe_address(rec: Record) -> str:
    """Where the node reaches the container: eth0's address, 127.0.0.1 with
    network host, its first overlay address; "" if it has none."""
    net = rec.spec.network
    if net.mode == "host":
        return "127.0.0.1"
    if net.address:
        return net.address
    return net.attachments[0].address if net.attachments else ""


def _seconds(value: float) -> str:
    return f"{value:g}s"


class Health(Lifecycle):
    """The health checks' layer, above the containers' (``lifecycle``)."""

    def __init__(self, state_dir: str, runtime: Runtime, network: Any,
                 clock: Callable[[], float], wallclock: Callable[[], float]) -> None:
        super().__init__(state_dir, runtime, network, clock, wallclock)
        self.monitors: dict[str, Monitor] = {}

    # ---- the lifecycle's hooks -------------------------------------------

    def _container_running(self, rec: Record) -> None:
        super()._container_running(rec)
        self._stop_monitor(rec.id)
        check = HealthCheck.from_dict(rec.healthcheck)
        if check is None or not check.runs:
            rec.health = None
            return
        mon = Monitor(rec.id, check, HealthState(check, started=rec.started_at or self.wallclock()))
        self.monitors[rec.id] = mon
        rec.health = mon.state.to_dict()
        self._schedule(mon)

    def _container_exited(self, cid: str) -> None:
        super()._container_exited(cid)
        self._stop_monitor(cid)

    # ---- probes ----------------------------------------------------------

    def _schedule(self, mon: Monitor) -> None:
        mon.timer = self._after(mon.state.next_delay(self.wallclock()),
                                functools.partial(self._probe, mon))

    def _current(self, mon: Monitor) -> Record | None:
        """The record of ``mon``'s container while ``mon`` is its monitor."""
        if self.monitors.get(mon.cid) is not mon or mon.cid not in self.live:
            return None
        return self.records.get(mon.cid)

    def _probe(self, mon: Monitor) -> None:
        mon.timer = 0
        rec = self._current(mon)
        if rec is None:
            return
        mon.started = self.wallclock()
        check = mon.check
        try:
            if check.http is not None:
                self._connect(mon, rec, check.http.port)
            elif check.tcp is not None:
                self._connect(mon, rec, check.tcp.port)
            else:
                self._exec(mon, rec)
        except Exception as exc:  # the probe could not run: a failed result
            self._abort(mon)
            message = getattr(exc, "message", None) or str(exc)
            self._result(mon, -1, f"health check could not run: {message}")
            return
        if mon.probe is not None:
            timeout = check.effective_timeout()
            mon.timer = self._after(timeout, functools.partial(self._timed_out, mon, mon.probe))

    def _timed_out(self, mon: Monitor, probe: _ExecProbe | _SocketProbe) -> None:
        if mon.probe is not probe:
            return
        mon.timer = 0
        if isinstance(probe, _ExecProbe):
            live = self.live.get(mon.cid)
            if live is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.runtime.kill_exec(live.handle, probe.pid, signal.SIGKILL)
        self._abort(mon)
        self._result(mon, -1, "Health check exceeded timeout "
                              f"({_seconds(mon.check.effective_timeout())})")

    def _result(self, mon: Monitor, exit_code: int, output: str) -> None:
        """The probe under way ended (it is cleaned up): record it, save and
        tell a status change, and schedule the next."""
        self._cancel(mon.timer)
        mon.timer = 0
        rec = self._current(mon)
        if rec is None:
            return
        now = self.wallclock()
        changed = mon.state.record(HealthResult(mon.started, now, exit_code, output), now)
        rec.health = mon.state.to_dict()
        if changed:
            records.save(rec)
            self._emit(HEALTH_STATUS, {"id": rec.id, "name": rec.name, "labels": rec.spec.labels,
                                       "status": mon.state.status,
                                       "failing_streak": mon.state.failing_streak})
            log.info("container health", container=rec.name, status=mon.state.status,
                     failing_streak=mon.state.failing_streak)
        self._schedule(mon)

    def _stop_monitor(self, cid: str) -> None:
        mon = self.monitors.pop(cid, None)
        if mon is None:
            return
        self._cancel(mon.timer)
        mon.timer = 0
        if isinstance(mon.probe, _ExecProbe):
            # Dies with the container's pid namespace; reaped as a stranger.
            self.by_pid.pop(mon.probe.pid, None)
        self._abort(mon)

    def _abort(self, mon: Monitor) -> None:
        """Close what the probe under way holds (an exec probe's pid stays
        in ``by_pid`` until it is reaped)."""
        probe, mon.probe = mon.probe, None
        if isinstance(probe, _ExecProbe):
            self._close_pipe(probe)
        elif isinstance(probe, _SocketProbe):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(probe.sock)
            # Close with a reset, as kubelet's probes do: a graceful close
            # leaves the connection in conntrack as TIME_WAIT for 120 s, so
            # 100 tasks probed every 100 ms keep ~35,000 entries per node,
            # and every conntrack walk (the overlay's UDP flow cleanup) pays
            # for them. A reset leaves it CLOSE, for 10 s.
            with contextlib.suppress(OSError):
                probe.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            probe.sock.close()

    # ---- exec probes -----------------------------------------------------

    def _exec(self, mon: Monitor, rec: Record) -> None:
        live = self.live[rec.id]
        process = dataclasses.replace(rec.spec.process, args=mon.check.argv())
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            pid = self.runtime.exec(live.handle, process, Stdio(stdout=write_fd, stderr=write_fd))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        probe = _ExecProbe(pid, read_fd)
        mon.probe = probe
        self.by_pid[pid] = functools.partial(self._exec_exited, mon, probe)
        os.set_blocking(read_fd, False)
        self.sel.register(read_fd, selectors.EVENT_READ,
                          lambda _fd: self._read_output(probe))

    def _read_output(self, probe: _ExecProbe) -> None:
        """Keep the first OUTPUT_MAX bytes, drain the rest; close at EOF."""
        while probe.fd >= 0:
            data = read_ready(probe.fd)
            if data is None:
                return
            if not data:
                self._close_pipe(probe)
                return
            room = OUTPUT_MAX - len(probe.output)
            if room > 0:
                probe.output += data[:room]

    def _close_pipe(self, probe: _ExecProbe) -> None:
        if probe.fd >= 0:
            self.sel.unregister(probe.fd)
            os.close(probe.fd)
            probe.fd = -1

    def _exec_exited(self, mon: Monitor, probe: _ExecProbe, wait_status: int) -> None:
        """The exec probe was reaped: what it wrote is in its pipe already."""
        self._exec_reaped(mon.cid, probe.pid)
        if mon.probe is not probe:
            return  # timed out, or its container stopped
        self._read_output(probe)
        self._abort(mon)
        code = 0 if os.waitstatus_to_exitcode(wait_status) == 0 else 1
        self._result(mon, code, probe.output.decode(errors="replace"))

    # ---- http and tcp probes ---------------------------------------------

    def _connect(self, mon: Monitor, rec: Record, port: int) -> None:
        address = probe_address(rec)
        if not address:
            self._result(mon, 1, f"no address to probe port {port} at: the container has no "
                                 f"network address (network {rec.spec.network.mode})")
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                             | socket.SOCK_CLOEXEC)
        probe = _SocketProbe(sock, f"{address}:{port}")
        err = sock.connect_ex((address, port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._result(mon, 1, f"connect to {probe.target}: {os.strerror(err)}")
            return
        mon.probe = probe
        self.sel.register(sock, selectors.EVENT_WRITE, lambda _fd: self._connected(mon, probe))

    def _connected(self, mon: Monitor, probe: _SocketProbe) -> None:
        if mon.probe is not probe:
            return
        err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._finish_socket(mon, 1, f"connect to {probe.target}: {os.strerror(err)}")
            return
        http = mon.check.http
        if http is None:
            self._finish_socket(mon, 0, f"connected to {probe.target}")
            return
        request = (f"GET {http.path or '/'} HTTP/1.0\r\nHost: {probe.target}\r\n"
                   "User-Agent: orch-health\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode()
        try:
            sent = probe.sock.send(request)
        except OSError as exc:
            sent, why = 0, exc.strerror or str(exc)
        else:
            why = "the request did not fit the socket's buffer"
        if sent != len(request):
            self._finish_socket(mon, 1, f"GET http://{probe.target}{http.path}: {why}")
            return
        self.sel.modify(probe.sock, selectors.EVENT_READ, lambda _fd: self._http_answer(mon, probe))

    def _http_answer(self, mon: Monitor, probe: _SocketProbe) -> None:
        if mon.probe is not probe or mon.check.http is None:
            return
        try:
            data = probe.sock.recv(_STATUS_LINE_MAX)
        except BlockingIOError:
            return
        except OSError as exc:
            data, error = b"", exc.strerror or str(exc)
        else:
            error = "the connection closed before a status line"
        probe.answer += data
        line, newline, _ = bytes(probe.answer).partition(b"\n")
        if not newline and data and len(probe.answer) < _STATUS_LINE_MAX:
            return  # the status line is not whole yet
        url = f"GET http://{probe.target}{mon.check.http.path}"
        if not newline and not data:
            self._finish_socket(mon, 1, f"{url}: {error}")
            return
        self._finish_socket(mon, *http_verdict(line.decode(errors="replace").strip(),
                                               mon.check.http.status, url))

    def _finish_socket(self, mon: Monitor, exit_code: int, output: str) -> None:
        self._abort(mon)
        self._result(mon, exit_code, output)


def http_verdict(status_line: str, expected: int, url: str) -> tuple[int, str]:
    """An HTTP status line's result: (0 or 1, the output to log). ``expected``
    0: any of 200-399."""
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return 1, f"{url}: not an HTTP answer: {status_line[:200]!r}"
    status = int(parts[1])
    ok = status == expected if expected else 200 <= status < 400
    want = str(expected) if expected else "200-399"
    return (0 if ok else 1), f"{url}: {status_line}" + ("" if ok else f" (expected {want})")
