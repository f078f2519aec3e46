"""``.dockerignore``: which context paths the build may see.

Rules (moby/patternmatcher): one pattern per line, ``#`` comments, leading and
trailing slashes and ``./`` dropped; ``*`` and ``?`` stay within one path
component, ``**`` spans any number of them; ``!pattern`` re-includes. The
last pattern matching a path, or any of its parent directories, decides.

Patterns come from the context and the Containerfile, so they are hostile
input: a match costs at most the path's length times the pattern's,
whatever the pattern (``Glob``: a regular expression while it has at most
one wildcard, its one backtracking point; otherwise an automaton built as
it is walked, as RE2 does, where Python's backtracking ``re`` would take
years on ``*a*a*a*a*a*a*a*a*a*a*b`` against a long name). The file itself is read
as the context's files are: a symlink leading out of the context, or a
FIFO or device, is refused (``BuildError`` naming .dockerignore).
"""

from __future__ import annotations

import enum
import posixpath
import re
from dataclasses import dataclass

from nodeagent.images.build.errors import BuildError
from nodeagent.images.build.rootview import read_regular_file, resolve_in_root

MAX_IGNORE_FILE = 1 << 20  # bytes of .dockerignore


@dataclass(frozen=True)
class _Pattern:
    regex: Glob
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
        """The rules of ``context``'s .dockerignore (none without one)."""
        host = resolve_in_root(context, ".dockerignore", confine=True)
        if host is None:
            raise BuildError(".dockerignore", "a symlink leading outside the build context is refused")
        try:
            data = read_regular_file(host, MAX_IGNORE_FILE)
        except FileNotFoundError:
            return cls([])
        except (OSError, ValueError) as err:
            raise BuildError(".dockerignore", f"cannot read it: {getattr(err, 'strerror', None) or err}")
        try:
            return cls(data.decode("utf-8").splitlines())
        except UnicodeDecodeError as err:
            raise BuildError(".dockerignore", f"not UTF-8 text at byte {err.start}")
        except ValueError as err:
            raise BuildError(".dockerignore", str(err))

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


class _Wild(enum.Enum):
    """A wildcard token, as a regular expression."""

    STAR = "[^/]*"  # "*": within one path component
    ANY = ".*"  # "**": across components
    DIRS = "(?:.*/)?"  # "**/": zero or more leading directories


_STAR, _ANY, _DIRS = _Wild.STAR, _Wild.ANY, _Wild.DIRS
# A token: a wildcard, a literal character, or a one-character class.
_Token = _Wild | str | re.Pattern[str]


def _tokens(pattern: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append(_DIRS)  # "**/" matches zero or more directories
                i += 1
            else:
                out.append(_ANY)
            continue
        if c == "*":
            out.append(_STAR)
        elif c == "?":
            out.append(re.compile("[^/]"))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append("[")
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                try:
                    out.append(re.compile("[" + body.replace("\\", "\\\\").replace("[", "\\[") + "]"))
                except re.error as err:
                    raise ValueError(f"bad pattern {pattern!r}: {err}")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(pattern[i])
        else:
            out.append(c)
        i += 1
    return out


class Glob:
    """One pattern, matched against a whole path (or one path component).

    With at most one wildcard a regular expression does it (its one
    backtracking point makes it linear enough); with more, the pattern's
    automaton is walked one character at a time, each set of positions met
    becoming a state whose moves are remembered, so a match costs one dict
    lookup per character after the first paths."""

    def __init__(self, pattern: str) -> None:
        self.tokens = _tokens(pattern)
        self._regex: re.Pattern[str] | None = None
        if sum(isinstance(t, _Wild) for t in self.tokens) <= 1:
            self._regex = re.compile("".join(_regex_part(t) for t in self.tokens), re.DOTALL)
        self._start = self._closure({0})
        self._moves: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    def match(self, text: str) -> bool:
        if self._regex is not None:
            return self._regex.fullmatch(text) is not None
        state = self._start
        moves = self._moves
        for c in text:
            nxt = moves.get((state, c))
            if nxt is None:
                nxt = moves[(state, c)] = self._step(state, c)
            if not nxt:
                return False
            state = nxt
        return len(self.tokens) in state

    def _closure(self, positions: set[int]) -> frozenset[int]:
        """``positions`` and every one reached from them by a wildcard matching nothing."""
        todo, seen = list(positions), set(positions)
        while todo:
            i = todo.pop()
            if i < len(self.tokens) and isinstance(self.tokens[i], _Wild) and i + 1 not in seen:
                seen.add(i + 1)
                todo.append(i + 1)
        return frozenset(seen)

    def _step(self, state: frozenset[int], c: str) -> frozenset[int]:
        out: set[int] = set()
        for i in state:
            if i == len(self.tokens):
                continue
            token = self.tokens[i]
            if token == _ANY or (token == _STAR and c != "/"):
                out.add(i)  # the wildcard takes c and may take more
            elif token == _DIRS:
                out.add(i)
                if c == "/":
                    out.add(i + 1)  # "**/" ends at a slash
            elif token == c or (isinstance(token, re.Pattern) and token.fullmatch(c)):
                out.add(i + 1)
        return self._closure(out)


def _regex_part(token: _Token) -> str:
    if isinstance(token, _Wild):
        return token.value
    if isinstance(token, re.Pattern):
        return token.pattern
    return re.escape(token)


def _compile(pattern: str) -> Glob:
    """``pattern`` compiled; ValueError for a bad one (a character class such as [z-a])."""
    return Glob(pattern)
