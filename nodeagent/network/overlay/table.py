"""The ``ip orch_svc`` table in the kernel: read it, change it, remove it.

Each change is one nftables transaction (all of it or nothing), run through
a kept libnftables context (``nodeagent.network.libnft``, which says why),
whose cache of the table stays valid while the kernel's ruleset generation
says it is current.

An :class:`Nft` belongs to the thread that made it: its netlink socket is in
that thread's network namespace.
"""

from __future__ import annotations

import json
from typing import Any

from nodeagent.network.libnft import Context, first_error
from nodeagent.network.overlay.errors import OverlayError
from nodeagent.network.overlay.ruleset import FAMILY, TABLE, UDP_FLOWS, TableState, parse

__all__ = ["Nft"]

_T = f"{FAMILY} {TABLE}"


class Nft(Context):
    def apply(self, script: str) -> None:
        """Run ``script`` as one atomic transaction."""
        if not script:
            return
        ok, _, error = self.run(script)
        if not ok:
            raise OverlayError("nft_apply", {"table": _T, "lines": script.count("\n")}, first_error(error))

    def read(self) -> TableState | None:
        """The table as the kernel has it; None if there is none."""
        ok, output, error = self.run(f"list table {_T}\n", as_json=True)
        if not ok:
            if "No such file or directory" in error:
                return None
            raise OverlayError("nft_list", {"table": _T}, first_error(error))
        listing: dict[str, Any] = json.loads(output)
        return parse(listing)

    def udp_flows(self) -> int | None:
        """How many UDP flows a VIP has balanced since the table was made
        (the ``udp_flows`` counter's packets); None if it cannot be read."""
        ok, output, _ = self.run(f"list counter {_T} {UDP_FLOWS}\n", as_json=True)
        if not ok:
            return None
        for item in json.loads(output).get("nftables", []):
            if "counter" in item:
                return int(item["counter"].get("packets", 0))
        return None

    def exists(self) -> bool:
        return self.run(f"list table {_T}\n")[0]

    def delete(self) -> None:
        if self.exists():
            self.apply(f"delete table {_T}\n")

