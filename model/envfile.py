"""Env files: ``orch run --env-file`` (Docker's rules) and a manifest's
``env_file`` (Compose's), read into ``NAME=value`` strings. Pure: the
caller reads the file and gives the environment a bare ``NAME`` takes.

Both formats: one variable a line, blank lines and lines starting with
``#`` skipped, a bare ``NAME`` taking the caller's value (left out when it
has none). Docker's keeps the value as written, quotes and all. Compose's
(``compose=True``) also takes an ``export`` prefix, a value in single
quotes (as written) or double quotes (with ``\\n``, ``\\t``, ``\\"`` and
``\\\\`` escapes), and drops an unquoted value's `` #`` comment and its
trailing spaces. A line that is none of these is an :class:`EnvFileError`
naming ``FILE:LINE``.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["EnvFileError", "parse_env_file"]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class EnvFileError(ValueError):
    """A line that is not a variable: the message names the file and line."""


def parse_env_file(text: str, name: str, environ: Mapping[str, str], *, compose: bool = False) -> list[str]:
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip() if compose else line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        if compose and stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, sep, value = stripped.partition("=")
        if compose:
            key = key.rstrip()
        if not key or any(c.isspace() for c in key) or "\0" in stripped:
            raise EnvFileError(f"{name}:{number}: invalid variable {line!r}: expected NAME=value, "
                               "or NAME alone, with no space in NAME")
        if not sep:
            if key in environ:
                out.append(f"{key}={environ[key]}")
            continue
        if compose:
            value = _compose_value(value.lstrip(), name, number)
        out.append(f"{key}={value}")
    return out


def _compose_value(value: str, name: str, number: int) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = _closing(value, quote)
        if end < 0:
            raise EnvFileError(f"{name}:{number}: a value opened with {quote} is not closed on its line")
        rest = value[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise EnvFileError(f"{name}:{number}: unexpected {rest!r} after the quoted value")
        inner = value[1:end]
        return inner if quote == "'" else _unescape(inner)
    cut = value.find(" #")
    return (value if cut < 0 else value[:cut]).rstrip()


def _closing(value: str, quote: str) -> int:
    i = 1
    while i < len(value):
        if quote == '"' and value[i] == "\\":
            i += 2
            continue
        if value[i] == quote:
            return i
        i += 1
    return -1


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
