"""What `orch deploy` shows while it waits: the services' tasks, followed by
list + watch (one EventBatches stream: the current state, then changes).

:class:`Rollout` is the pure part: it folds events into the latest version of
each service and task and says where the rollout stands. The verdict:
converged (every wanted replica runs, and passes its health check if it
has one, and the service's rollout, if it has one, completed), paused (a
rollout paused, on a failure or by a user), rolled back (an update that the
leader rolled back since the deploy), unplaceable (a task the scheduler cannot place, while no task of
its service is still stopping to make room), failed (a wanted task failed
or was rejected while the deploy watched), or waiting. A task already failed when the stream began
(``synced`` not yet set) is history, not this rollout's failure: e.g. the
replicas `orch down` stopped, which their replacements are about to take
over; it still counts as wanted and not running until it is replaced.
Each event costs O(1): counts per service are kept as tasks change, so a
rollout of N replicas (two or three events per replica) is not N² work.
Events come decoded by ``pbwire`` (typed messages, states by name).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from orch.cli.pbwire import ServiceSummary, TaskSummary

FAILED_STATES = ("failed", "rejected")
STOPPING_STATES = ("assigned", "preparing", "starting", "running")  # on a node, not ended yet
SETTLE_AFTER_STOP = 2.0  # seconds after a task of a service stops before its unplaceable ones count


class Verdict(NamedTuple):
    text: str  # "web: 2/3 running, db: 1/1 running"
    done: bool
    unplaceable: list[str]
    failed: list[str]
    missing: list[str]  # services that were removed meanwhile
    paused: list[str] = []  # "web: update paused: task web.2.ab12 failed: ..."
    rolled_back: list[str] = []  # services whose update was rolled back since the deploy


class _Seen(NamedTuple):
    """What one task contributes to its service's counts."""

    service: str
    wanted: bool
    running: bool  # and, with a health check, healthy: it serves
    unplaceable: str
    failed: str
    starting: bool = False  # running, its health check not yet passed
    stopping: bool = False  # retired (replaced, scaled away) but still on its node


class Rollout:
    # A plain class (as Verdict is a NamedTuple): dataclasses would load
    # inspect, ast and dis, a fifth of `orch deploy`'s start-up.
    def __init__(self, names: list[str], clock: Callable[[], float] = time.monotonic,
                 written: list[ServiceSummary] | None = None, rollback: bool = False) -> None:
        """``written``: the services as the deploy (or rollback) wrote them:
        older versions are ignored, and a rollback counts only if it started
        after them. ``rollback``: following a rollback the user asked for, so
        it completing is success."""
        self.names = names
        self.clock = clock
        self.rollback = rollback
        self._started = {w.name: w.started for w in written or ()}
        self._rolled_back: dict[str, str] = {}  # service -> the rollback's message, once seen
        self._freed: dict[str, float] = {}  # service -> when a task of it last stopped (room freed)
        self.services: dict[str, ServiceSummary] = {}  # by name
        self.versions: dict[str, int] = {}  # object id -> newest version seen
        self.synced = False
        self._tasks: dict[str, _Seen] = {}
        self._wanted: dict[str, int] = {}
        self._running: dict[str, int] = {}
        self._starting: dict[str, int] = {}  # running, health check not yet passed
        self._stopping: dict[str, int] = {}  # retired, still on a node
        self._unplaceable: dict[str, str] = {}  # task id -> line
        self._failed: dict[str, str] = {}
        for w in written or ():
            self.apply("put", w)

    def apply(self, action: str, obj: ServiceSummary | TaskSummary | None) -> bool:
        """Fold one put or delete in; False if it was older than what is known
        (or about nothing a rollout follows)."""
        if obj is None:
            return False
        ident = obj.id
        if action == "delete":
            self.versions.pop(ident, None)
            self._forget(ident)
            for name, svc in list(self.services.items()):
                if svc.id == ident:
                    del self.services[name]
            return True
        if obj.version and obj.version < self.versions.get(ident, 0):
            return False
        self.versions[ident] = obj.version
        if isinstance(obj, TaskSummary):
            self._forget(ident)
            self._count(obj)
        else:
            self.services[obj.name] = obj
            if obj.rollout.startswith("rollback") and not self.rollback \
                    and obj.started != self._started.get(obj.name):
                self._rolled_back[obj.name] = obj.message or "rolled back"
        return True

    def _count(self, t: TaskSummary) -> None:
        name = t.service_name
        wanted = t.desired_state == "running"
        up = wanted and t.state == "running"
        seen = _Seen(
            name, wanted, up and t.health in ("", "healthy"),
            f"{name} slot {t.slot}: {t.message}" if wanted and t.state == "pending"
            and t.message.startswith("no suitable node") else "",
            f"{name} task {t.id[:12]}: {t.error or 'failed'}"
            if wanted and t.state in FAILED_STATES and self.synced else "",
            up and t.health == "starting",
            not wanted and t.state in STOPPING_STATES)
        self._tasks[t.id] = seen
        self._wanted[name] = self._wanted.get(name, 0) + seen.wanted
        self._running[name] = self._running.get(name, 0) + seen.running
        self._starting[name] = self._starting.get(name, 0) + seen.starting
        self._stopping[name] = self._stopping.get(name, 0) + seen.stopping
        if seen.unplaceable:
            self._unplaceable[t.id] = seen.unplaceable
        if seen.failed:
            self._failed[t.id] = seen.failed

    def _forget(self, ident: str) -> None:
        seen = self._tasks.pop(ident, None)
        if seen is None:
            return
        if seen.stopping:  # it has stopped (or is gone): the scheduler may place into its room
            self._freed[seen.service] = self.clock()
        self._wanted[seen.service] -= seen.wanted
        self._running[seen.service] -= seen.running
        self._starting[seen.service] -= seen.starting
        self._stopping[seen.service] -= seen.stopping
        self._unplaceable.pop(ident, None)
        self._failed.pop(ident, None)

    def verdict(self) -> Verdict:
        lines, done, missing = [], True, []
        paused, rolled_back, rolling = [], [], set()
        for name in self.names:
            svc = self.services.get(name)
            if svc is None:
                missing.append(name)
                done = False
                continue
            wanted, running = self._wanted.get(name, 0), self._running.get(name, 0)
            target = svc.replicas if svc.mode == "replicated" else wanted
            starting = self._starting.get(name, 0)
            lines.append(f"{name}: {running}/{target} running"
                         + (f" ({starting} health starting)" if starting else "") + _progress(svc))
            state = svc.rollout
            if state in ("updating", "rollback_started"):
                rolling.add(name)  # its failures are the rollout's to handle (failure_action)
                done = False
            elif state.endswith("paused"):
                paused.append(f"{name}: {svc.message or state.replace('_', ' ')}")
                rolling.add(name)
            # Rolled back since the deploy (seen at any point: what follows, a
            # rebalance say, may have replaced the status since), and done
            # with it; a rollback that paused is paused.
            if name in self._rolled_back and state not in ("updating", "rollback_started") \
                    and not state.endswith("paused"):
                rolled_back.append(f"{name}: {self._rolled_back[name]}")
                rolling.add(name)
            done = done and running >= target and running == wanted
        names = set(self.names)
        # A replacement that does not fit while the task it replaces still
        # holds its node (stop-first; max_replicas_per_node, a host port,
        # reservations) waits for that task, not for the user.
        # The next pass of the leader places it (within its 1 s tick) or says again why not.
        now = self.clock()
        settled = {n for n in names if not self._stopping.get(n, 0)
                   and now - self._freed.get(n, -SETTLE_AFTER_STOP) >= SETTLE_AFTER_STOP}
        return Verdict(", ".join(lines), done and not paused and not rolled_back,
                       sorted({u for i, u in self._unplaceable.items()
                               if self._tasks[i].service in settled}),
                       [f for i, f in self._failed.items()
                        if self._tasks[i].service in names and self._tasks[i].service not in rolling],
                       missing, paused, rolled_back)


def _progress(svc: ServiceSummary) -> str:
    """A rollout under way, as ``; updating 3/10 (batch 4/10), 1 failed``."""
    if svc.rollout not in ("updating", "rollback_started") or not svc.total:
        return ""
    verb = "rolling back" if svc.rollout == "rollback_started" else "updating"
    size = svc.parallelism or svc.total
    batches = -(-svc.total // size)
    batch = min(svc.updated // size + 1, batches)
    failed = f", {svc.failed} failed" if svc.failed else ""
    return f"; {verb} {svc.updated}/{svc.total} (batch {batch}/{batches}){failed}"
