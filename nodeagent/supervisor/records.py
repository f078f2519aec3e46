"""Container records: what the supervisor knows about each container, on disk.

A record lives at ``<state>/containers/<id>/record.json`` as JSON lines: every
change appends the whole record as one line, in one write, and the last
complete line is the record. A crash mid-write leaves a torn last line, which
:func:`load_all` skips (the line before it is the state before the change)
and cuts off.

Why append rather than replace (temp file + rename): a rename over the old
version frees its inode and block, and a start saves the record twice. On a
filesystem mounted with online discard every freed block is a synchronous
TRIM, a millisecond or more in the middle of `orch run`. The file is
rewritten (temp file + rename) only once it grows past :data:`COMPACT_BYTES`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeagent import jsonlines
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
    # The health check it runs (model.health.HealthCheck.to_dict(), merged with
    # its image's; None: none), and its health as last saved
    # (HealthState.to_dict(); None: no check). Saved on every status change,
    # so a restarted agent shows it; the log in between is the supervisor's.
    healthcheck: dict[str, Any] | None = None
    health: dict[str, Any] | None = None

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
    def stdin_open(self) -> bool:
        """-i: its stdin a pipe kept open for attached clients (as requested;
        -t is ``spec.process.tty``)."""
        return bool(self.config.get("stdinOpen"))

    @property
    def log_path(self) -> str:
        return os.path.join(self.spec.bundle_dir, "container.log")

    def to_dict(self) -> dict[str, Any]:
        # The spec does not change once the record exists (a restart reuses
        # it), and it is most of the record: its plain form is made once.
        # Every state change saves the record and sends an event with it.
        cached = self.__dict__.get("_spec_plain")
        if cached is None or cached[0] is not self.spec:
            cached = self.__dict__["_spec_plain"] = (self.spec, as_plain(self.spec))
        # The other fields are scalars, and config is plain JSON data (it came
        # as JSON): they need no conversion.
        data = {k: v for k, v in vars(self).items() if k != "spec" and k[0] != "_"}
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


# A record is about 2 KB: some thirty changes between rewrites.
COMPACT_BYTES = 64 * 1024


def save(record: Record) -> None:
    line = (json.dumps(record.to_dict()) + "\n").encode()
    path = os.path.join(record.spec.bundle_dir, "record.json")
    if jsonlines.append(path, line, create=True) > COMPACT_BYTES:
        jsonlines.replace(path, line)


def load(path: str) -> Record | None:
    """The last complete record in ``path``; None if there is none. A torn
    last line, or a file past :data:`COMPACT_BYTES`, is rewritten as that
    record alone."""
    with open(path, "rb") as f:
        data = f.read()
    # The part after the last newline is empty, torn, or a whole record whose
    # newline never came (as is the single document an older supervisor wrote).
    lines = data.split(b"\n")
    for i in range(len(lines) - 1, -1, -1):
        if not lines[i]:
            continue
        try:
            record = Record.from_dict(json.loads(lines[i]))
        except (ValueError, TypeError, KeyError):
            continue
        if i != len(lines) - 2 or lines[-1] or len(data) > COMPACT_BYTES:
            jsonlines.replace(path, lines[i] + b"\n")
        return record
    return None


def load_all(containers_dir: Path) -> list[Record]:
    out: list[Record] = []
    if not containers_dir.is_dir():
        return out
    for path in sorted(containers_dir.glob("*/record.json")):
        record = load(str(path))
        if record is not None:
            out.append(record)
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
