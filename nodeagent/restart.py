"""Restart policies and restart back-off, with Docker's semantics.

A policy is one of ``no``, ``on-failure[:N]``, ``always``, ``unless-stopped``.
``should_restart`` decides whether an exited container comes back; ``Backoff``
says how long to wait first. Both are pure: time is passed in, nothing here
sleeps or reads a clock, so the supervisor's loop stays testable.

Invariants:
- ``max_retries`` is only ever non-zero for ``on-failure``; 0 means unlimited.
- ``str(parse_restart_policy(t))`` is the canonical form of ``t``.
- Back-off delays never decrease between resets and never exceed the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import InvalidArgument

__all__ = [
    "POLICY_NAMES",
    "Backoff",
    "RestartPolicy",
    "parse_restart_policy",
    "should_restart",
]

POLICY_NAMES = ("no", "on-failure", "always", "unless-stopped")

_ACCEPTED = (
    'expected one of "no", "on-failure", "on-failure:N" (N >= 0), "always", "unless-stopped"'
)


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    max_retries: int = 0

    def __str__(self) -> str:
        if self.name == "on-failure" and self.max_retries > 0:
            return f"on-failure:{self.max_retries}"
        return self.name


def parse_restart_policy(text: str) -> RestartPolicy:
    """Parse the ``--restart`` text. An empty string means ``no``, as in Docker."""
    name, sep, count = text.strip().partition(":")
    if name == "":
        name = "no"
    if name not in POLICY_NAMES:
        raise InvalidArgument(f"invalid restart policy {text!r}: {_ACCEPTED}")
    if not sep:
        return RestartPolicy(name)
    if name != "on-failure":
        raise InvalidArgument(
            f"invalid restart policy {text!r}: a retry count is only allowed with "
            f"on-failure; {_ACCEPTED}"
        )
    if not (count.isascii() and count.isdigit()):
        raise InvalidArgument(
            f"invalid restart policy {text!r}: retry count must be a whole number >= 0; "
            f"{_ACCEPTED}"
        )
    return RestartPolicy(name, int(count))


def should_restart(
    policy: RestartPolicy, exit_code: int, restart_count: int, stopped_by_user: bool
) -> bool:
    """Whether a container that just exited is started again.

    ``restart_count`` is how many times the policy has restarted it so far.
    A container the user stopped never comes back by itself, whatever the
    policy (``always`` only brings it back when the daemon starts again, which
    is the supervisor's business, not this function's).
    """
    if stopped_by_user or policy.name == "no":
        return False
    if policy.name == "on-failure":
        if exit_code == 0:
            return False
        return policy.max_retries == 0 or restart_count < policy.max_retries
    return policy.name in ("always", "unless-stopped")


class Backoff:
    """Delay before each restart: 0.1 s doubling up to 60 s.

    The streak resets when the container ran for at least ``reset_after``
    seconds before exiting (Docker's rule), so a service that crashes once a
    day restarts at once while a crash loop slows down. ``consecutive`` can be
    persisted and passed back in when the supervisor restarts.
    """

    def __init__(
        self,
        initial: float = 0.1,
        maximum: float = 60.0,
        reset_after: float = 10.0,
        consecutive: int = 0,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"need 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self.consecutive = consecutive

    def delay_for(self, k: int) -> float:
        """Delay before the k-th consecutive restart (k = 0 is the first)."""
        # Past 64 doublings any sane cap is reached; stops float overflow.
        if k >= 64:
            return self.maximum
        return min(self.initial * 2**k, self.maximum)

    def next_delay(self, uptime: float) -> float:
        """Record an exit after ``uptime`` seconds of running; return the delay to wait."""
        if uptime >= self.reset_after:
            self.consecutive = 0
        delay = self.delay_for(self.consecutive)
        self.consecutive += 1
        return delay

    def reset(self) -> None:
        self.consecutive = 0
