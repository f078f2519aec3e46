"""The one exception of the manifest package.

Hierarchy::

    ValueError
     └── ManifestError      a manifest is unreadable, malformed or impossible

Invariant: every ``ManifestError`` names the file and the 1-based line of the
offending key or value, and (unless it is a YAML syntax error or a file that
cannot be read) the dotted field path, so ``str(err)`` is one line a user can
act on: ``web.yaml:12: services.web.deploy.replicas: expected ...``. It stays
one short line whatever the manifest holds: line breaks in the path or field
are escaped, and a message quoting a huge value keeps its start and its end
(what to do) around "...".
"""

from __future__ import annotations

import json
import re

__all__ = ["ManifestError", "field_path"]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Line breaks JSON leaves as they are (it escapes the ASCII controls).
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
# Every character str.splitlines() breaks at, for names that reach an error as they are.
_ALL_LINE_BREAKS = str.maketrans({c: f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                                  for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})
# Longer parts of an error are cut in the middle: a quoted value of a
# megabyte would hide the message around it.
_MAX_PART = 400


class ManifestError(ValueError):
    """A manifest problem at ``path:line`` in ``field``; ``message`` says what and what to do."""

    path: str
    line: int
    field: str
    message: str

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        path = self.path.translate(_ALL_LINE_BREAKS)  # as given, to be found
        where = f"{path}:{self.line}" if self.line > 0 else path
        message = _shorten(" ".join(self.message.split()), 2 * _MAX_PART)  # always one line
        field = _shorten(self.field.translate(_ALL_LINE_BREAKS))
        return f"{where}: {field}: {message}" if field else f"{where}: {message}"

    def __reduce__(self) -> tuple[type[ManifestError], tuple[str, int, str, str]]:
        return (ManifestError, (self.path, self.line, self.field, self.message))


def _shorten(text: str, limit: int = _MAX_PART) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return f"{text[:head]}...{text[len(text) - (limit - head):]}"


def field_path(parent: str, key: str | int) -> str:
    """Extend a dotted field path: ``services.web`` + ``deploy``; list items as ``[2]``;
    keys with dots or spaces (label names) as ``["com.example.tier"]``, control
    characters escaped (``["web\\n"]``) so the path stays on one line."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if not _PLAIN_KEY.fullmatch(key):
        return f"{parent}[{json.dumps(key, ensure_ascii=False).translate(_LINE_BREAKS)}]"
    return f"{parent}.{key}" if parent else key
