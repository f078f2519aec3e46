"""``orch login``: check credentials against a registry, then save them."""

from __future__ import annotations

from nodeagent.images.registry.auth import Credentials, save_credentials
from nodeagent.images.registry.client import RegistryClient
from nodeagent.images.registry.remote import RemoteRef


def login(registry: str, username: str, password: str, config_path: str) -> None:
    """GET /v2/ with the credentials (Basic or via a Bearer token); save them if accepted.

    Raises AuthError when the registry refuses them; the file is then unchanged.
    """
    creds = Credentials(username, password)
    client = RegistryClient(RemoteRef(registry, "", "", ""), creds)
    try:
        client.ping()
    finally:
        client.close()
    save_credentials(config_path, registry, creds)
