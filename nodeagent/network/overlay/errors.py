"""The data plane's one error: a kernel request that failed, named by its
step (``vxlan_create``, ``fdb_add``, ``nft_apply``, ...) and arguments."""

from __future__ import annotations

from typing import Any

from common.errors import AgentError

__all__ = ["OverlayError"]


class OverlayError(AgentError):
    code = "setup"

    def __init__(self, step: str, args: Any = None, detail: str = "", errno: int = 0) -> None:
        text = f"overlay network: {step}"
        if args is not None:
            text += f" ({args})"
        if detail:
            text += f": {detail}"
        super().__init__(text)
        self.step = step
        self.detail = detail
        self.errno = errno
