"""What a reconciler pass decided: tasks to create, update and delete.

``Changes`` is plain data. The driver writes it to the store (every update and
delete compares the task's ``version``, so a pass computed from a stale view
fails and is recomputed, never forced); tests and the driver's cache use
``apply`` to see the task set the writes produce.

Invariants: a task id appears in at most one of the three lists; updated tasks
are copies (the pass never mutates its inputs) that keep the ``version`` they
were read at; ``wakeup`` is the earliest time after the pass's ``now`` at which
running the pass again would change something (a delayed restart falling due),
or ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from model.objects import Service, Task


@dataclass
class Changes:
    create: list[Task] = field(default_factory=list)
    update: list[Task] = field(default_factory=list)
    delete: list[Task] = field(default_factory=list)
    wakeup: float | None = None
    # Services whose rollout status moved on (progress, pause, completion, a
    # rollback's spec): written with the task changes, each at most once.
    services: list[Service] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing to write (``wakeup`` may still be set)."""
        return not (self.create or self.update or self.delete or self.services)


def apply(changes: Changes, tasks: Iterable[Task]) -> list[Task]:
    """The task set after ``changes`` are written, in a stable order (old first, then created)."""
    by_id = {t.id: t for t in tasks}
    for t in changes.update:
        if t.id in by_id:
            by_id[t.id] = t
    for t in changes.delete:
        by_id.pop(t.id, None)
    for t in changes.create:
        by_id[t.id] = t
    return list(by_id.values())
