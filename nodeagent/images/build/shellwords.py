"""Docker's word processing for instruction arguments: quotes, escapes, variables.

Applies to the instructions Docker substitutes in (FROM, COPY, ADD, ENV, ARG,
LABEL, EXPOSE, USER, WORKDIR, STOPSIGNAL, VOLUME); RUN/CMD/ENTRYPOINT are left
to the container's shell. Supported forms: ``$VAR``, ``${VAR}``,
``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``, ``${VAR+alt}``.
Inside single quotes nothing is substituted; the escape character (``\\`` or
the ``# escape=`` directive) makes the next character literal.
"""

from __future__ import annotations

from collections.abc import Mapping


class WordError(ValueError):
    """Malformed quoting or variable syntax (the caller adds file:line)."""


def words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Split ``text`` on unquoted whitespace, substituting variables and removing quotes."""
    return _Lexer(text, env, escape).run(split=True)


def word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Substitute and unquote ``text`` as one word (whitespace kept)."""
    out = _Lexer(text, env, escape).run(split=False)
    return out[0] if out else ""


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.env = env
        self.esc = escape
        self.i = 0

    def run(self, split: bool) -> list[str]:
        result: list[str] = []
        cur: list[str] = []
        started = False
        while self.i < len(self.text):
            c = self.text[self.i]
            if split and c in " \t\r\n":
                if started:
                    result.append("".join(cur))
                    cur, started = [], False
                self.i += 1
                continue
            started = True
            if c == self.esc:
                self.i += 1
                if self.i < len(self.text):
                    cur.append(self.text[self.i])
                    self.i += 1
                else:
                    cur.append(c)
            elif c == "'":
                cur.append(self._single())
            elif c == '"':
                cur.append(self._double())
            elif c == "$":
                cur.append(self._variable())
            else:
                cur.append(c)
                self.i += 1
        if started:
            result.append("".join(cur))
        return result

    def _single(self) -> str:
        end = self.text.find("'", self.i + 1)
        if end < 0:
            raise WordError(f"unterminated single quote in {self.text!r}")
        out = self.text[self.i + 1 : end]
        self.i = end + 1
        return out

    def _double(self) -> str:
        self.i += 1
        out: list[str] = []
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == self.esc and self.i + 1 < len(self.text) and self.text[self.i + 1] in '"$' + self.esc:
                out.append(self.text[self.i + 1])
                self.i += 2
            elif c == "$":
                out.append(self._variable())
            else:
                out.append(c)
                self.i += 1
        raise WordError(f"unterminated double quote in {self.text!r}")

    def _variable(self) -> str:
        t = self.text
        self.i += 1  # past '$'
        if self.i >= len(t):
            return "$"
        if t[self.i] == "{":
            end = self._matching_brace(self.i)
            inner = t[self.i + 1 : end]
            self.i = end + 1
            return self._braced(inner)
        start = self.i
        while self.i < len(t) and (t[self.i].isalnum() or t[self.i] == "_"):
            self.i += 1
        name = t[start : self.i]
        if not name:
            return "$"
        return self.env.get(name, "")

    def _matching_brace(self, open_at: int) -> int:
        depth = 0
        for j in range(open_at, len(self.text)):
            if self.text[j] == "{":
                depth += 1
            elif self.text[j] == "}":
                depth -= 1
                if depth == 0:
                    return j
        raise WordError(f"missing '}}' in {self.text!r}")

    def _braced(self, inner: str) -> str:
        name_end = 0
        while name_end < len(inner) and (inner[name_end].isalnum() or inner[name_end] == "_"):
            name_end += 1
        name, rest = inner[:name_end], inner[name_end:]
        if not name:
            raise WordError(f"bad substitution '${{{inner}}}'")
        if not rest:
            return self.env.get(name, "")
        colon = rest.startswith(":")
        op = rest[1:2] if colon else rest[:1]
        arg = rest[2:] if colon else rest[1:]
        if op not in ("-", "+"):
            raise WordError(f"unsupported modifier in '${{{inner}}}' (use :- or :+)")
        is_set = name in self.env and (not colon or self.env[name] != "")
        sub = _Lexer(arg, self.env, self.esc).run(split=False)
        alt = sub[0] if sub else ""
        if op == "-":
            return self.env[name] if is_set else alt
        return alt if is_set else ""
