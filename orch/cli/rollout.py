"""What `orch deploy` shows while it waits: the services' tasks, followed by
list + watch (one Events stream: the current state, then changes).

:class:`Rollout` is the pure part: it folds events into the latest version of
each service and task and says where the rollout stands. The verdict:
converged (every wanted replica runs), unplaceable (a task the scheduler
cannot place), failed (a wanted task failed or was rejected), or waiting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RUNNING = 5
PENDING = 1
FAILED_STATES = (7, 9)  # failed, rejected


@dataclass
class Verdict:
    text: str  # "web: 2/3 running, db: 1/1 running"
    done: bool
    unplaceable: list[str]
    failed: list[str]
    missing: list[str]  # services that were removed meanwhile


@dataclass
class Rollout:
    names: list[str]
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    versions: dict[str, int] = field(default_factory=dict)  # object id -> newest version seen
    synced: bool = False

    def apply(self, kind: str, action: str, ident: str, data: str, version: int) -> bool:
        """Fold one event in; False if it was older than what is known."""
        if action == "delete":
            self.versions.pop(ident, None)
            self.tasks.pop(ident, None)
            for name, svc in list(self.services.items()):
                if svc["id"] == ident:
                    del self.services[name]
            return True
        if version and version < self.versions.get(ident, 0):
            return False
        self.versions[ident] = version
        obj = json.loads(data)
        if kind == "tasks":
            self.tasks[ident] = obj
        elif kind == "services":
            self.services[obj["spec"]["name"]] = obj
        return True

    def verdict(self) -> Verdict:
        by_service: dict[str, list[dict[str, Any]]] = {name: [] for name in self.names}
        for t in self.tasks.values():
            if t["service_name"] in by_service:
                by_service[t["service_name"]].append(t)
        lines, done, unplaceable, failed, missing = [], True, [], [], []
        for name in self.names:
            svc = self.services.get(name)
            if svc is None:
                missing.append(name)
                done = False
                continue
            tasks = by_service[name]
            wanted = [t for t in tasks if t["desired_state"] == RUNNING]
            running = [t for t in wanted if t["status"]["state"] == RUNNING]
            spec = svc["spec"]
            target = spec["replicas"] if spec["mode"] == "replicated" else len(wanted)
            lines.append(f"{name}: {len(running)}/{target} running")
            done = done and len(running) >= target and len(running) == len(wanted)
            for t in wanted:
                msg = t["status"]["message"]
                if t["status"]["state"] == PENDING and msg.startswith("no suitable node"):
                    unplaceable.append(f"{name} slot {t['slot']}: {msg}")
                if t["status"]["state"] in FAILED_STATES:
                    failed.append(f"{name} task {t['id'][:12]}: {t['status']['error'] or 'failed'}")
        return Verdict(", ".join(lines), done, sorted(set(unplaceable)), failed, missing)
