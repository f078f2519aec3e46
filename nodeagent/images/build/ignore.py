"""``.dockerignore``: which context paths the build may see.

Rules (moby/patternmatcher): one pattern per line, ``#`` comments, leading and
trailing slashes and ``./`` dropped; ``*`` and ``?`` stay within one path
component, ``**`` spans any number of them; ``!pattern`` re-includes. The
last pattern matching a path, or any of its parent directories, decides.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool  # a "!" pattern: re-include
    text: str


class IgnoreRules:
    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = posixpath.normpath(line.strip("/")) if line.strip("/") else ""
            if not line or line == ".":
                continue
            self.patterns.append(_Pattern(_compile(line), exclusion, line))

    @classmethod
    def load(cls, context: str) -> IgnoreRules:
        path = os.path.join(context, ".dockerignore")
        try:
            with open(path, encoding="utf-8") as f:
                return cls(f.read().splitlines())
        except FileNotFoundError:
            return cls([])

    def ignored(self, rel: str) -> bool:
        """Is context path ``rel`` ("a/b/c", no leading slash) excluded?"""
        if not self.patterns or not rel:
            return False
        parents = _parents(rel)
        matched = False
        for pattern in self.patterns:
            if any(pattern.regex.match(p) for p in parents):
                matched = not pattern.exclusion
        return matched

    def may_contain_exceptions(self) -> bool:
        """Whether an excluded directory must still be walked (a "!" pattern exists)."""
        return any(p.exclusion for p in self.patterns)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")  # "**/" matches zero or more directories
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out))
