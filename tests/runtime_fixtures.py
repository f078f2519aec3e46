"""Fixtures for the suites that run real containers (imported by their
conftests): a unique cgroup parent, checked empty at the end of the session,
and a LinuxRuntime that removes whatever a failing test left in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from nodeagent.runtime import LinuxRuntime

CGROUP_PARENT = f"orch-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def cgroup_parent() -> Iterator[str]:
    yield CGROUP_PARENT
    from nodeagent.runtime.cgroups import detect, remove_parent_if_empty

    assert remove_parent_if_empty(detect(), CGROUP_PARENT), "test cgroups were left behind"


@pytest.fixture
def runtime(cgroup_parent: str) -> Iterator[LinuxRuntime]:
    rt = LinuxRuntime()
    yield rt
    leftovers = [live.handle for live in rt._live.values()]
    for handle in leftovers:  # a failing test may leave containers: remove them
        assert handle is not None
        rt.remove(handle)
    assert not leftovers, f"containers left in the runtime: {leftovers}"
