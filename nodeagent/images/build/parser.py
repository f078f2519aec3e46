"""Containerfile parsing: text -> stages of instructions with their line numbers.

Handles parser directives at the top (``# escape=`` and ``# syntax=``, the
latter ignored), comments, line continuations with the escape character,
leading ``--flag=value`` options, and the JSON (exec) versus shell form.
Nothing is substituted here: variables depend on build args and ENV, which
the builder applies per step (:mod:`.shellwords`).

Invariants: every :class:`Instruction` knows its first line; a :class:`Stage`
starts at a FROM; only ARG may precede the first FROM (the global args, shared
by every stage as :attr:`Stage.global_args`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nodeagent.images.build.errors import BuildError

# Options each instruction accepts (anything else is an error, not ignored).
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown", "chmod", "link"}),
    "ADD": frozenset({"chown", "chmod", "link"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
}
INSTRUCTIONS = frozenset({
    "FROM", "RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER",
    "LABEL", "EXPOSE", "STOPSIGNAL", "HEALTHCHECK", "VOLUME", "MAINTAINER",
})
# Instructions whose JSON form is meaningful (for the others "[" is plain text).
JSON_FORMS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_STAGE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*$")


@dataclass(frozen=True)
class Instruction:
    """One instruction. ``args`` is the exec-form list when ``json_form``, else
    ``[text]`` with the raw (unsubstituted) text after the flags."""

    cmd: str
    args: list[str]
    json_form: bool
    flags: dict[str, str]
    line: int
    path: str
    original: str  # the whole instruction as written (continuations joined)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def text(self) -> str:
        """Shell-form text (or the JSON list re-encoded) for messages and keys."""
        return json.dumps(self.args) if self.json_form else self.args[0]


@dataclass
class Stage:
    index: int
    name: str | None  # from "AS name", lower-cased like Docker
    base: str  # FROM's image text, unsubstituted
    line: int
    path: str
    instructions: list[Instruction] = field(default_factory=list)
    global_args: list[Instruction] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or str(self.index)


def parse(text: str, path: str = "Containerfile") -> list[Stage]:
    """Parse a Containerfile; raises :class:`BuildError` naming ``path:line``."""
    escape = "\\"
    lines = text.splitlines()
    start = 0
    for start, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise BuildError(f"{path}:{start + 1}", f"invalid escape directive {m.group(2)!r}")
            escape = m.group(2)
    else:
        start = len(lines)
    stages: list[Stage] = []
    global_args: list[Instruction] = []
    for line_no, logical in _logical_lines(lines, start, escape):
        ins = _instruction(logical, line_no, path, escape)
        if ins.cmd == "FROM":
            stages.append(_stage(ins, len(stages), global_args, stages))
        elif not stages:
            if ins.cmd != "ARG":
                raise BuildError(ins.where, f"{ins.cmd} before the first FROM (only ARG may come first)")
            global_args.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise BuildError(f"{path}:1", "no FROM instruction: a Containerfile needs at least one stage")
    return stages


def _logical_lines(lines: list[str], start: int, escape: str) -> list[tuple[int, str]]:
    """Join continuations; drop comments and blank lines. Yields (first line no, text)."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    first = 0
    for idx in range(start, len(lines)):
        raw = lines[idx]
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and buf):
            continue  # comments (also inside continuations) and blank continuation lines
        if not stripped:
            continue
        if not buf:
            first = idx + 1
        body = raw.rstrip()
        if body.endswith(escape) and not body.endswith(escape * 2):
            buf.append(body[:-1])
            continue
        buf.append(body)
        out.append((first, "".join(buf).strip()))
        buf = []
    if buf:  # a trailing continuation ends the instruction, as Docker does
        out.append((first, "".join(buf).strip()))
    return out


def _instruction(logical: str, line: int, path: str, escape: str) -> Instruction:
    where = f"{path}:{line}"
    keyword, _, rest = logical.partition(" ")
    cmd = keyword.upper()
    if cmd not in INSTRUCTIONS:
        raise BuildError(where, f"unknown instruction {keyword!r}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    allowed = FLAGS.get(cmd, frozenset())
    while rest.startswith("--"):
        token, _, remainder = rest.partition(" ")
        name, eq, value = token[2:].partition("=")
        if name not in allowed:
            raise BuildError(where, f"{cmd} does not accept the option --{name}")
        flags[name] = value if eq else "true"
        rest = remainder.strip()
    if not rest:
        raise BuildError(where, f"{cmd} needs arguments")
    json_form = False
    args = [rest]
    if cmd in JSON_FORMS and rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except json.JSONDecodeError:
            parsed = None  # not JSON: Docker falls back to the shell form
        if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
            json_form, args = True, parsed
    _check(cmd, args, json_form, flags, where)
    return Instruction(cmd, args, json_form, flags, line, path, logical)


def _check(cmd: str, args: list[str], json_form: bool, flags: dict[str, str], where: str) -> None:
    """Shape checks that need no variables (the rest fail at build time, same where)."""
    if cmd == "SHELL" and not (json_form and args):
        raise BuildError(where, 'SHELL requires the JSON form, e.g. SHELL ["/bin/sh", "-c"]')
    if cmd in ("COPY", "ADD") and (len(args) if json_form else len(args[0].split())) < 2:
        raise BuildError(where, f"{cmd} needs at least one source and a destination")
    if json_form and cmd == "RUN" and not args:
        raise BuildError(where, "RUN [] has nothing to run")
    if cmd == "HEALTHCHECK":
        kind = args[0].split(None, 1)[0].upper()
        if kind not in ("CMD", "NONE"):
            raise BuildError(where, f"HEALTHCHECK expects CMD or NONE, got {kind!r}")
        if kind == "NONE" and flags:
            raise BuildError(where, "HEALTHCHECK NONE takes no options")
        if kind == "CMD" and len(args[0].split(None, 1)) < 2:
            raise BuildError(where, "HEALTHCHECK CMD needs a command")


def _stage(ins: Instruction, index: int, global_args: list[Instruction], stages: list[Stage]) -> Stage:
    parts = ins.args[0].split()
    name: str | None = None
    if len(parts) == 3 and parts[1].upper() == "AS":
        name = parts[2].lower()
        if not _STAGE_NAME.match(name):
            raise BuildError(ins.where, f"invalid stage name {parts[2]!r}")
        if any(s.name == name for s in stages):
            raise BuildError(ins.where, f"duplicate stage name {name!r}")
    elif len(parts) != 1:
        raise BuildError(ins.where, "FROM expects: FROM image [AS name]")
    return Stage(index, name, parts[0], ins.line, ins.path, [], global_args)
