"""Image jobs in their own process (what the agent runs): results, progress,
errors that keep their code, and a crash told apart from a refusal."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from registry_helpers import Registry

from common.errors import AgentError, InvalidArgument, NotFound
from nodeagent.images import ImageStore
from nodeagent.images.job import Progress, follow_job, run_job
from registry import AuthError


def followed(state: Path, verb: str, *args: str) -> tuple[list[Progress], str]:
    """A job's progress as it was yielded, and its result."""
    job, seen = follow_job(str(state), verb, *args), []
    while True:
        try:
            seen.append(next(job))
        except StopIteration as finished:
            return seen, finished.value


def test_import_push_pull_with_progress_and_unpacked_layers(
        registry: Registry, tmp_path: Path, busybox_rootfs: Path) -> None:
    a, b = tmp_path / "state-a", tmp_path / "state-b"
    image_id = run_job(str(a), "import", str(busybox_rootfs), "busybox:job")
    image = ImageStore(str(a)).get("busybox:job")
    assert image.id == image_id
    # Unpacked by the job: the first container does not wait for its layers.
    assert all(ImageStore(str(a)).snapshots.exists(d) for d in image.diff_ids)

    pushed, digest = followed(a, "push", "busybox:job", f"{registry.addr}/bb:1")
    assert digest == image.manifest_digest
    assert {d for _, d, _, _ in pushed} >= set(image.layer_digests)

    pulled, pulled_id = followed(b, "pull", f"{registry.addr}/bb:1")
    assert pulled_id == image_id
    store_b = ImageStore(str(b))
    assert all(store_b.snapshots.exists(d) for d in store_b.get(image_id).diff_ids)
    assert any(done == total > 0 for _, _, done, total in pulled)


def test_errors_keep_their_kind_and_message(registry: Registry, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    with pytest.raises(InvalidArgument, match="no-such-dir"):
        run_job(state, "import", str(tmp_path / "no-such-dir"), "x:1")
    with pytest.raises(NotFound) as err:
        run_job(state, "pull", f"{registry.addr}/nothing-here:1")
    assert err.value.code == "not_found" and "nothing-here" in err.value.message
    with pytest.raises(InvalidArgument, match="2 argument"):
        run_job(state, "pull", "a", "b")


def test_a_registry_error_code_survives_the_process_boundary(auth_registry: Registry,
                                                              tmp_path: Path) -> None:
    with pytest.raises(AgentError) as err:
        run_job(str(tmp_path / "state"), "login", auth_registry.addr, "alice", stdin="wrong")
    assert err.value.code == AuthError.code
    assert not (tmp_path / "state" / "auth.json").exists()
    run_job(str(tmp_path / "state"), "login", auth_registry.addr, "alice", stdin="s3cret")
    auth = tmp_path / "state" / "auth.json"
    assert stat.S_IMODE(os.stat(auth).st_mode) == 0o600
    assert "s3cret" not in " ".join(os.listdir(tmp_path / "state"))
    with pytest.raises(InvalidArgument, match="not a valid host"):
        run_job(str(tmp_path / "state"), "login", "http://" + auth_registry.addr, "alice", stdin="x")


def test_a_job_that_dies_is_an_error_naming_why(tmp_path: Path, busybox_rootfs: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(AgentError, match=r"image import failed: .*(Error|error)") as err:
        run_job(str(not_a_dir), "import", str(busybox_rootfs), "x:1")
    assert type(err.value) is AgentError and err.value.code == "internal"


def test_a_pull_nobody_follows_any_more_still_lands(
        registry: Registry, tmp_path: Path, busybox_rootfs: Path) -> None:
    """As when `orch pull`'s client goes away: the agent stops reading, the job goes on."""
    import time

    a, b = tmp_path / "state-a", tmp_path / "state-b"
    image_id = run_job(str(a), "import", str(busybox_rootfs), "busybox:job")
    run_job(str(a), "push", "busybox:job", f"{registry.addr}/bb:2")
    job = follow_job(str(b), "pull", f"{registry.addr}/bb:2")
    next(job)  # the first progress event, then nobody listens
    job.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if ImageStore(str(b)).get(f"{registry.addr}/bb:2").id == image_id:
                break
        except AgentError:
            pass
        time.sleep(0.1)
    assert ImageStore(str(b)).get(f"{registry.addr}/bb:2").id == image_id
