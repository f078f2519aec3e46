"""Container records: what the supervisor knows about each container, on disk.

A record lives at ``<state>/containers/<id>/record.json`` and is rewritten
atomically (temp file + rename) on every change, so a crash leaves either the
old or the new record, never a torn one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeagent.runtime.spec import ContainerSpec, as_plain

CREATED = "created"
RUNNING = "running"
RESTARTING = "restarting"
EXITED = "exited"
REMOVING = "removing"


@dataclass
class Record:
    spec: ContainerSpec
    image: str
    image_id: str
    restart_policy: str = "no"
    auto_remove: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # the user's request, for inspect
    state: str = CREATED
    pid: int = 0
    pid_start_time: int = 0  # /proc/<pid>/stat field 22: tells a reused pid apart
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    signal: int = 0
    oom_killed: bool = False
    restart_count: int = 0
    stopped_by_user: bool = False
    error: str = ""

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def bundle(self) -> Path:
        return Path(self.spec.bundle_dir)

    @property
    def log_path(self) -> str:
        return str(self.bundle / "container.log")

    def to_dict(self) -> dict[str, Any]:
        # The spec does not change once the record exists (a restart reuses
        # it), and it is most of the record: its plain form is made once.
        # Every state change saves the record and sends an event with it.
        cached = self.__dict__.get("_spec_plain")
        if cached is None or cached[0] is not self.spec:
            cached = self.__dict__["_spec_plain"] = (self.spec, as_plain(self.spec))
        data = {k: as_plain(v) for k, v in vars(self).items() if k != "spec" and k[0] != "_"}
        data["spec"] = cached[1]
        return data

    def public(self) -> dict[str, Any]:
        """What clients see: the record without the full spec."""
        data = self.to_dict()
        spec = data.pop("spec")
        net = spec["network"]
        data.update(
            id=self.id,
            name=self.name,
            command=spec["process"]["args"],
            ip_address=net["address"],
            ports=net["ports"],
            network=net["mode"],
            log_path=self.log_path,
            labels=spec["labels"],
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        data = dict(data)
        data["spec"] = ContainerSpec.from_dict(data["spec"])
        return cls(**data)


def save(record: Record) -> None:
    record.bundle.mkdir(parents=True, exist_ok=True)
    path = record.bundle / "record.json"
    tmp = path.with_suffix(".tmp")
    text = json.dumps(record.to_dict())  # one write: json.dump writes chunk by chunk
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_all(containers_dir: Path) -> list[Record]:
    out: list[Record] = []
    if not containers_dir.is_dir():
        return out
    for path in sorted(containers_dir.glob("*/record.json")):
        with open(path) as f:
            out.append(Record.from_dict(json.load(f)))
    return out


def proc_start_time(pid: int) -> int:
    """The pid's start time in clock ticks, 0 if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # The command name may hold spaces and parens: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])
