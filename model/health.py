"""Health checks: what a check is (Docker's HEALTHCHECK and Compose's
``healthcheck``, plus orch's ``http`` and ``tcp`` probes) and how a
container's health follows from its probes' results. Pure: the runner (the
node's supervisor) owns the clock and the probes, this module decides.

Semantics (Docker's, as `docker inspect` shows them in ``State.Health``):
- a container with a check is ``starting`` until its first success, then
  ``healthy``; after ``retries`` consecutive failures it is ``unhealthy``; a
  success makes it ``healthy`` again;
- during ``start_period`` (from the container's start) a failure does not
  count, and probes come every ``start_interval`` until the first success;
  after it, or once the period is over, every ``interval``;
- a probe that runs past ``timeout`` fails;
- beyond Docker, for orch's ``http`` and ``tcp`` probes only (they cost a
  socket, never a process): until the first success within the start
  period, probes start :data:`FIRST_PROBE` after the start and double from
  there up to ``start_interval``, as Kubernetes probes from the start
  (``initialDelaySeconds`` 0). A server that listens 30 ms after its start is
  healthy some 10 ms later, not a whole ``start_interval`` later: a rolling
  update of many replicas waits on that once per batch;
- the last :data:`LOG_KEEP` results are kept, each with at most
  :data:`OUTPUT_MAX` bytes of output.

Defaults are Docker's: interval 30 s, timeout 30 s, retries 3, start period
0 s, start interval 5 s. A check with ``test == ("NONE",)`` or ``disable``
is no check at all; an empty ``test`` without a probe means "the image's".

Invariants (tested as properties): the status is ``starting`` until a
success; it is ``unhealthy`` exactly when the failures since the last
success, outside the start period, number at least ``retries``; the log
never holds more than :data:`LOG_KEEP` results nor an output longer than
:data:`OUTPUT_MAX` bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_RETRIES",
    "DEFAULT_START_INTERVAL",
    "DEFAULT_TIMEOUT",
    "HEALTHY",
    "LOG_KEEP",
    "OUTPUT_MAX",
    "STARTING",
    "UNHEALTHY",
    "HealthCheck",
    "HealthResult",
    "HealthState",
    "HttpProbe",
    "TcpProbe",
    "from_image_config",
    "merged",
]

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
LOG_KEEP = 5
FIRST_PROBE = 0.01  # seconds after the start: a socket probe's first (see above)
OUTPUT_MAX = 4096

Status = Literal["starting", "healthy", "unhealthy"]
STARTING: Status = "starting"
HEALTHY: Status = "healthy"
UNHEALTHY: Status = "unhealthy"


@dataclass(frozen=True)
class HttpProbe:
    """GET ``path`` on the container's address at ``port``; healthy when the
    status is ``status`` (0: any of 200-399, as Kubernetes' httpGet)."""

    port: int
    path: str = "/"
    status: int = 0


@dataclass(frozen=True)
class TcpProbe:
    """A TCP connection to the container's address at ``port`` is accepted."""

    port: int


@dataclass(frozen=True)
class HealthCheck:
    """A check as written (None: not given, the image's or the default)."""

    test: tuple[str, ...] = ()  # ("CMD", arg, ...), ("CMD-SHELL", line), ("NONE",); (): the image's
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    start_interval: float | None = None
    http: HttpProbe | None = None
    tcp: TcpProbe | None = None
    disable: bool = False

    @property
    def disabled(self) -> bool:
        return self.disable or self.test[:1] == ("NONE",)

    @property
    def runs(self) -> bool:
        """Whether there is something to probe."""
        return not self.disabled and (self.http is not None or self.tcp is not None
                                      or self.test[:1] in (("CMD",), ("CMD-SHELL",)))

    def argv(self) -> list[str]:
        """The command an exec probe runs (CMD: as given; CMD-SHELL: through /bin/sh -c)."""
        if self.test[:1] == ("CMD",):
            return list(self.test[1:])
        if self.test[:1] == ("CMD-SHELL",):
            return ["/bin/sh", "-c", " ".join(self.test[1:])]
        return []

    def effective_interval(self) -> float:
        return DEFAULT_INTERVAL if self.interval is None else self.interval

    def effective_timeout(self) -> float:
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout

    def effective_retries(self) -> int:
        return DEFAULT_RETRIES if not self.retries else max(1, self.retries)

    def effective_start_period(self) -> float:
        return DEFAULT_START_PERIOD if self.start_period is None else self.start_period

    def effective_start_interval(self) -> float:
        return DEFAULT_START_INTERVAL if self.start_interval is None else self.start_interval

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HealthCheck | None:
        if not data:
            return None
        http = data.get("http")
        tcp = data.get("tcp")
        return cls(test=tuple(data.get("test") or ()), interval=data.get("interval"),
                   timeout=data.get("timeout"), retries=data.get("retries"),
                   start_period=data.get("start_period"), start_interval=data.get("start_interval"),
                   http=HttpProbe(**http) if http else None, tcp=TcpProbe(**tcp) if tcp else None,
                   disable=bool(data.get("disable", False)))


def from_image_config(config: Mapping[str, Any] | None) -> HealthCheck | None:
    """An OCI image config's ``Healthcheck`` (Docker's field names, durations
    in nanoseconds; 0 = inherit/default) as a check; None when it has none."""
    hc = (config or {}).get("Healthcheck")
    if not hc:
        return None

    def seconds(key: str) -> float | None:
        value = hc.get(key) or 0
        return value / 1e9 if value else None

    return HealthCheck(test=tuple(hc.get("Test") or ()), interval=seconds("Interval"),
                       timeout=seconds("Timeout"), retries=int(hc.get("Retries") or 0) or None,
                       start_period=seconds("StartPeriod"), start_interval=seconds("StartInterval"))


def merged(own: HealthCheck | None, image: HealthCheck | None) -> HealthCheck | None:
    """The check a container runs: its own, each field it leaves unset taken
    from the image's (as Docker merges them); None when neither has one or
    the result is disabled."""
    if own is None:
        result = image
    elif image is None or own.disabled:
        result = own
    else:
        fill = {f.name: getattr(image, f.name) for f in dataclasses.fields(HealthCheck)
                if f.name not in ("disable",) and getattr(own, f.name) in (None, ())}
        if own.http is not None or own.tcp is not None:
            fill.pop("test", None)  # a probe of orch's replaces the image's command
        result = dataclasses.replace(own, **fill)
    if result is None or not result.runs:
        return None
    return result


@dataclass(frozen=True)
class HealthResult:
    start: float  # wall-clock seconds
    end: float
    exit_code: int  # 0: success; 1: failure (as Docker's); -1: the probe could not run
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _capped(text: str) -> str:
    data = text.encode(errors="replace")
    if len(data) <= OUTPUT_MAX:
        return text
    return data[:OUTPUT_MAX].decode(errors="ignore")


@dataclass
class HealthState:
    """A running container's health: fed each probe's result, it says the
    status and when the next probe is due. Times are the runner's clock
    (monotonic or wall: one clock throughout)."""

    check: HealthCheck
    started: float  # when the container started
    status: Status = STARTING
    failing_streak: int = 0
    ever_healthy: bool = False
    log: list[HealthResult] = field(default_factory=list)
    probes: int = 0  # results taken

    def in_start_period(self, now: float) -> bool:
        return now < self.started + self.check.effective_start_period()

    def next_delay(self, now: float) -> float:
        """Seconds from ``now`` (a probe just ended, or the container just
        started) until the next probe."""
        if not self.ever_healthy and self.in_start_period(now):
            if self.check.http is not None or self.check.tcp is not None:
                return min(self.check.effective_start_interval(), FIRST_PROBE * 2 ** min(self.probes, 30))
            return self.check.effective_start_interval()
        return self.check.effective_interval()

    def record(self, result: HealthResult, now: float) -> bool:
        """Take a probe's result (ended at ``now``); whether the status changed."""
        self.probes += 1
        self.log.append(dataclasses.replace(result, output=_capped(result.output)))
        del self.log[:-LOG_KEEP]
        before = self.status
        if result.exit_code == 0:
            self.failing_streak = 0
            self.ever_healthy = True
            self.status = HEALTHY
        elif not self.in_start_period(now) or self.ever_healthy:
            self.failing_streak += 1
            if self.failing_streak >= self.check.effective_retries():
                self.status = UNHEALTHY
        return self.status != before

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "failing_streak": self.failing_streak,
                "log": [r.to_dict() for r in self.log]}
