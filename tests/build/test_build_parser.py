"""Containerfile parsing and word processing: case tables, errors name file:line."""

from __future__ import annotations

import pytest

from nodeagent.images.build import BuildError, parse
from nodeagent.images.build.config import duration_ns, exposed
from nodeagent.images.build.ignore import IgnoreRules
from nodeagent.images.build.shellwords import WordError, word, words

PARSE_CASES = [
    # (text, [(cmd, args, json_form, flags, line)] of the last stage)
    ("FROM a\nRUN echo hi", [("RUN", ["echo hi"], False, {}, 2)]),
    ("FROM a\nRUN [\"/bin/echo\", \"x\"]", [("RUN", ["/bin/echo", "x"], True, {}, 2)]),
    ("FROM a\n# comment\nRUN a \\\n  && b\n", [("RUN", ["a   && b"], False, {}, 3)]),
    ("FROM a\nRUN a \\\n# inner comment\n b", [("RUN", ["a  b"], False, {}, 2)]),
    ("# escape=`\nFROM a\nRUN dir `\n c:\\x", [("RUN", ["dir  c:\\x"], False, {}, 3)]),
    ("FROM a\nCOPY --from=b --chown=1:2 x /y", [("COPY", ["x /y"], False, {"from": "b", "chown": "1:2"}, 2)]),
    ("FROM a\nCOPY [\"a b\", \"/c/\"]", [("COPY", ["a b", "/c/"], True, {}, 2)]),
    ("FROM a\nrun echo lower", [("RUN", ["echo lower"], False, {}, 2)]),
    ("FROM a\nCMD [not json", [("CMD", ["[not json"], False, {}, 2)]),
    ("FROM a\nHEALTHCHECK --interval=5s CMD true", [("HEALTHCHECK", ["CMD true"], False,
                                                      {"interval": "5s"}, 2)]),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_cases(text: str, expected: list[tuple[object, ...]]) -> None:
    stage = parse(text)[-1]
    got = [(i.cmd, i.args, i.json_form, i.flags, i.line) for i in stage.instructions]
    assert got == expected


def test_stages_and_global_args() -> None:
    stages = parse("ARG V=1\nFROM busybox:$V AS Build\nRUN x\nFROM scratch\nCOPY --from=build /a /a\n")
    assert [(s.index, s.name, s.base, s.line) for s in stages] == [
        (0, "build", "busybox:$V", 2), (1, None, "scratch", 4)]
    assert [a.args for a in stages[1].global_args] == [["V=1"]]


ERROR_CASES = [
    ("RUN x\nFROM a", "Containerfile:1", "before the first FROM"),
    ("FROM a\nFROBNICATE x", "Containerfile:2", "unknown instruction"),
    ("FROM a\n\nRUN", "Containerfile:3", "needs arguments"),
    ("FROM a\nCOPY onlyone", "Containerfile:2", "source and a destination"),
    ("FROM a\nCOPY --bogus=1 a b", "Containerfile:2", "--bogus"),
    ("FROM a\nSHELL /bin/bash -c", "Containerfile:2", "JSON form"),
    ("FROM a AS x\nFROM b AS x", "Containerfile:2", "duplicate stage"),
    ("FROM a AS\n", "Containerfile:1", "FROM expects"),
    ("FROM a\nHEALTHCHECK PING x", "Containerfile:2", "CMD or NONE"),
    ("# just a comment\n", "Containerfile:1", "no FROM"),
    ("# escape=x\nFROM a", "Containerfile:1", "escape directive"),
]


@pytest.mark.parametrize(("text", "where", "message"), ERROR_CASES)
def test_parse_errors(text: str, where: str, message: str) -> None:
    with pytest.raises(BuildError) as err:
        parse(text)
    assert err.value.where == where
    assert message in str(err.value) and str(err.value).startswith(where)


WORD_CASES = [
    ("$A", {"A": "1"}, ["1"]),
    ("${A}x", {"A": "1"}, ["1x"]),
    ("${B:-def}", {}, ["def"]),
    ("${B:-def}", {"B": ""}, ["def"]),
    ("${B-def}", {"B": ""}, [""]),
    ("${A:+alt}", {"A": "1"}, ["alt"]),
    ("${A:+alt}", {}, [""]),
    ("'$A' \"$A\"", {"A": "1"}, ["$A", "1"]),
    ("\\$A", {"A": "1"}, ["$A"]),
    ("a=\"x y\" b=c", {}, ["a=x y", "b=c"]),
    ("$MISSING.txt", {}, [".txt"]),
]


@pytest.mark.parametrize(("text", "env", "expected"), WORD_CASES)
def test_words(text: str, env: dict[str, str], expected: list[str]) -> None:
    assert words(text, env) == expected


def test_word_errors() -> None:
    for bad in ("'open", '"open', "${A", "${}", "${A?x}"):
        with pytest.raises(WordError):
            word(bad, {})


IGNORE_CASES = [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),
    (["build"], "build/x/y", True),
    (["*.log", "!keep.log"], "keep.log", False),
    (["/secret/"], "secret/key", True),
    (["docs/**", "!docs/README*"], "docs/README.md", False),
    (["docs/**", "!docs/README*"], "docs/other.md", True),
]


@pytest.mark.parametrize(("patterns", "path", "ignored"), IGNORE_CASES)
def test_dockerignore(patterns: list[str], path: str, ignored: bool) -> None:
    assert IgnoreRules(patterns).ignored(path) is ignored


def test_config_helpers() -> None:
    assert duration_ns("1m30s") == 90_000_000_000
    assert exposed(["80", "53/udp", "8000-8001"]) == {
        "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    with pytest.raises(ValueError):
        duration_ns("5 seconds")
    with pytest.raises(ValueError):
        exposed(["70000"])
