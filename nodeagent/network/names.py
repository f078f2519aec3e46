"""Interface names orch gives out."""

from __future__ import annotations

IFNAMSIZ = 15  # usable characters of a Linux interface name


def host_veth_name(container_id: str) -> str:
    """``vo`` + the id's first 10 characters: unique enough, within IFNAMSIZ."""
    return "vo" + container_id[:10]
