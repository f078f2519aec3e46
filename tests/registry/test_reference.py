"""Image references by Docker's rules: the cases of distribution/reference's own
tests (reference_test.go, normalize_test.go), plus orch's store keys."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from common.errors import InvalidArgument
from registry.reference import (
    check_registry,
    is_hex_id,
    names_registry,
    normalize,
    parse,
    parse_remote,
)

D = "sha256:" + "f" * 64
HEX = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"

# text -> (domain, path, tag, digest); domain "docker.io" when the text names none.
PARSED = [
    ("test_com", "docker.io", "library/test_com", "", ""),
    ("test.com:tag", "docker.io", "library/test.com", "tag", ""),
    ("test.com:5000", "docker.io", "library/test.com", "5000", ""),
    ("test.com/repo:tag", "test.com", "repo", "tag", ""),
    ("test:5000/repo", "test:5000", "repo", "", ""),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", ""),
    (f"test:5000/repo@{D}", "test:5000", "repo", "", D),
    (f"test:5000/repo:tag@{D}", "test:5000", "repo", "tag", D),
    ("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", ""),
    ("a/" * 127 + "a:tag-puts-this-over-max", "docker.io", "a/" * 127 + "a", "tag-puts-this-over-max", ""),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", "", ""),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", ""),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app",
     "test.example.com", ""),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", ""),
    ("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", ""),
    ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", ""),
    ("192.168.1.1", "docker.io", "library/192.168.1.1", "", ""),
    ("192.168.1.1:tag", "docker.io", "library/192.168.1.1", "tag", ""),
    ("192.168.1.1/repo", "192.168.1.1", "repo", "", ""),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", ""),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", "", ""),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", ""),
    (f"[2001:db8::1]:5000/repo:tag@{D}", "[2001:db8::1]:5000", "repo", "tag", D),
    ("[::1]:5000/repo", "[::1]:5000", "repo", "", ""),
    ("localhost:5000/app", "localhost:5000", "app", "", ""),
    ("localhost/app:1", "localhost", "app", "1", ""),
    ("127.0.0.1:5055/team/app:1", "127.0.0.1:5055", "team/app", "1", ""),
    ("docker.io/library/busybox", "docker.io", "library/busybox", "", ""),
    ("index.docker.io/busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
    ("Foo/bar", "Foo", "bar", "", ""),  # an uppercase first part is a registry host
    ("DOCKER/docker", "DOCKER", "docker", "", ""),
    ("dock__er/docker---rules", "docker.io", "dock__er/docker---rules", "", ""),
]


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest"), PARSED)
def test_parse(text: str, domain: str, path: str, tag: str, digest: str) -> None:
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


REJECTED = [
    ("", "must have at least one component"),
    (":justtag", "component ''"),
    (f"@{D}", "component ''"),
    ("repo@sha256:" + "f" * 34, "must be sha256: and 64 lowercase hex digits"),
    ("validname@invaliddigest:" + "f" * 64, "not supported (sha256 only)"),
    ("repo@sha256:" + "F" * 64, "64 lowercase hex digits"),
    ("Uppercase:tag", "repository name 'Uppercase' must be lowercase"),
    ("Busybox", "must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "must be lowercase"),
    ("docker/Docker", "must be lowercase"),
    ("a/" * 128 + "a:tag", "not be more than 255 characters"),
    ("aa/asdf$$^/aa", "component 'asdf$$^'"),
    ("[2001:db8::1]", "component '[2001'"),
    ("[2001:db8::1]:5000", "component"),
    ("[fe80::1%eth0]:5000/repo", "not a valid host[:port]"),
    ("https://github.com/docker/docker", "not a valid host[:port]"),
    ("-docker", "component '-docker'"),
    ("-docker.io/docker/docker", "not a valid host[:port]"),
    ("docker///docker", "component ''"),
    ("docker-/docker", "component 'docker-'"),
    ("____/____", "component '____'"),
    ("dock..er/docker", "registry 'dock..er' is not a valid host"),  # a '.': a host, by Docker's rule
    ("dock_.er/docker", "registry 'dock_.er' is not a valid host"),
    ("docker/", "component ''"),
    ("busybox:", "tag ''"),
    ("busybox:-x", "tag '-x'"),
    ("busybox:" + "a" * 129, "1-128"),
    ("foo:bar:baz", "tag 'bar:baz'"),
    (HEX, "image id"),
]


@pytest.mark.parametrize(("text", "fragment"), REJECTED)
def test_parse_rejects_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(text)
    assert err.value.message.startswith(f"invalid image reference {text!r}: ")
    assert fragment in err.value.message


# Docker's TestParseRepositoryInfo: every spelling has one familiar and one full name.
FAMILIAR = [
    (["fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"], "fooo/bar", "docker.io/fooo/bar"),
    (["ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io/ubuntu"], "ubuntu",
     "docker.io/library/ubuntu"),
    (["other/library"], "other/library", "docker.io/other/library"),
    (["127.0.0.1:8000/private/moonbase"], "127.0.0.1:8000/private/moonbase",
     "127.0.0.1:8000/private/moonbase"),
    (["example.com:8000/privatebasee"], "example.com:8000/privatebasee", "example.com:8000/privatebasee"),
    (["library/foo/bar", "docker.io/library/foo/bar"], "library/foo/bar", "docker.io/library/foo/bar"),
    (["Foo/bar"], "Foo/bar", "Foo/bar"),
]


@pytest.mark.parametrize(("spellings", "familiar", "full"), FAMILIAR)
def test_familiar_and_full_names(spellings: list[str], familiar: str, full: str) -> None:
    for text in spellings:
        ref = parse(text)
        assert (ref.familiar_name, ref.name) == (familiar, full), text


STORE_KEYS = [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("library/busybox", "busybox:latest"),
    ("docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busy-box_x.y:V_1.0-rc", "busy-box_x.y:V_1.0-rc"),
    ("a__b/c--d:latest", "a__b/c--d:latest"),
    ("127.0.0.1:5055/team/app:1", "127.0.0.1:5055/team/app:1"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    (f"app@{D}", f"app@{D}"),
    # Docker's ParseDockerRef: a digest names the content; the tag beside it goes.
    (f"127.0.0.1:5000/app:1@{D}", f"127.0.0.1:5000/app@{D}"),
    (f"busybox:latest@{D}", f"busybox@{D}"),
]


@pytest.mark.parametrize(("text", "key"), STORE_KEYS)
def test_normalize(text: str, key: str) -> None:
    assert normalize(text) == key
    assert normalize(key) == key


@pytest.mark.parametrize(("text", "named"), [
    ("busybox", False), ("team/app:1", False), (f"app@{D}", False), ("localhost/app", True),
    ("localhost:5000/app", True), ("127.0.0.1:5055/team/app:1", True), ("docker.io/library/x", True),
    ("[::1]:5000/app", True), ("Foo/bar", True), ("reg.example.com/x@" + D, True),
])
def test_names_registry(text: str, named: bool) -> None:
    assert names_registry(text) == named


def test_parse_remote_needs_a_registry_and_tags_latest() -> None:
    ref = parse_remote("127.0.0.1:5000/a/b")
    assert (ref.registry, ref.repository, ref.locator, ref.canonical) == \
        ("127.0.0.1:5000", "a/b", "latest", "127.0.0.1:5000/a/b:latest")
    pinned = parse_remote(f"reg.example.com/x/y:1@{D}")
    assert (pinned.locator, pinned.with_digest(D).canonical) == (D, f"reg.example.com/x/y@{D}")
    assert parse_remote("docker.io/library/busybox").endpoint == "registry-1.docker.io"
    for text in ("busybox:latest", "library/busybox", "team/app:1"):
        with pytest.raises(InvalidArgument, match=r"names no registry.*HOST\[:PORT\]/NAME"):
            parse_remote(text)


def test_check_registry() -> None:
    assert check_registry("127.0.0.1:5000") == "127.0.0.1:5000"
    assert check_registry("index.docker.io") == "docker.io"
    for bad in ("http://reg", "reg/x", "", "[fe80::1%eth0]"):
        with pytest.raises(InvalidArgument, match="not a valid host"):
            check_registry(bad)


def test_hex_ids() -> None:
    assert is_hex_id(HEX) and is_hex_id("sha256:" + HEX) and is_hex_id("abcd")
    assert not is_hex_id("abc") and not is_hex_id("xyz1") and not is_hex_id(HEX + "0")


_COMPONENT = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,6}){0,2}", fullmatch=True)
_DOMAINS = st.sampled_from(["", "localhost", "localhost:5000", "127.0.0.1:5055", "reg.example.com",
                            "[::1]:5000", "docker.io", "index.docker.io"])
_TAGS = st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
_DIGESTS = st.one_of(st.just(""), st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True))


@given(_DOMAINS, st.lists(_COMPONENT, min_size=1, max_size=3), _TAGS, _DIGESTS)
def test_familiar_form_parses_back_to_the_same_reference(domain: str, path: list[str], tag: str,
                                                        digest: str) -> None:
    # A first part with a '.' is a host by Docker's rule, so a Docker Hub name
    # such as docker.io/a.b/c has no familiar form that parses back (Docker's too).
    assume(domain not in ("", "docker.io", "index.docker.io") or len(path) == 1 or "." not in path[0])
    text = "/".join([domain, *path] if domain else path)
    text += (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse(text)
    assert parse(str(ref)) == ref
    assert parse(ref.canonical) == ref
    assert normalize(normalize(text)) == normalize(text)
