"""Fetching a page from a container's published port, waiting for it to answer."""

from __future__ import annotations

import time
import urllib.request


def get_page(url: str, timeout: float = 10.0) -> str:
    """The body at ``url`` once it answers; "" if it never does within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.05)
