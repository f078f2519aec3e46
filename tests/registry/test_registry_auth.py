"""Basic auth against the real docker-registry (htpasswd), login and the credentials file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from registry_helpers import Registry

from common.errors import InvalidArgument
from nodeagent.images import ImageStore
from nodeagent.images.pull import pull
from nodeagent.images.push import push
from registry import AuthError, Credentials, load_credentials, login


def test_login_push_pull_with_basic_auth(auth_registry: Registry, store: ImageStore,
                                         store2: ImageStore, tmp_path: Path,
                                         busybox_rootfs: Path) -> None:
    config = tmp_path / "home" / "config.json"
    with pytest.raises(AuthError):
        login(auth_registry.addr, "alice", "wrong", str(config))
    assert not config.exists()

    login(auth_registry.addr, "alice", "s3cret", str(config))
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    creds = load_credentials(str(config), auth_registry.addr)
    assert creds == Credentials("alice", "s3cret")
    assert "s3cret" not in repr(creds)
    assert load_credentials(str(config), "other:1") is None

    image = store.import_rootfs(str(busybox_rootfs), "busybox")
    with pytest.raises(AuthError, match="orch login"):
        push(store, "busybox", f"{auth_registry.addr}/busybox:1")
    assert push(store, "busybox", f"{auth_registry.addr}/busybox:1", creds) == image.manifest_digest
    assert pull(store2, f"{auth_registry.addr}/busybox:1", creds).id == image.id


def test_credentials_file_keeps_other_registries(tmp_path: Path) -> None:
    from registry.credentials import save_credentials

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"a:1": {"auth": "eDp5"}}, "other": 1}))
    save_credentials(str(config), "b:2", Credentials("u", "p:w"))
    data = json.loads(config.read_text())
    assert data["other"] == 1 and set(data["auths"]) == {"a:1", "b:2"}
    assert load_credentials(str(config), "b:2") == Credentials("u", "p:w")
    assert load_credentials(str(config), "a:1") == Credentials("x", "y")
    config.write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"config\.json:1"):
        load_credentials(str(config), "a:1")
