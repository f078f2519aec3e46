"""``orch login``: check credentials against a registry, then save them."""

from __future__ import annotations

from registry.client import RegistryClient
from registry.credentials import Credentials, save_credentials
from registry.transport import Settings


def login(registry: str, username: str, password: str, config_path: str,
          settings: Settings | None = None) -> None:
    """GET /v2/ with the credentials (Basic, or via a Bearer token); save them if accepted.

    Raises AuthError when the registry refuses them; the file is then unchanged.
    """
    creds = Credentials(username, password)
    with RegistryClient(registry, "", creds, settings) as client:
        client.ping()
    save_credentials(config_path, registry, creds)
