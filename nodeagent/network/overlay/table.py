"""The ``ip orch_svc`` table in the kernel: read it, change it, remove it.

Each change is one nftables transaction (all of it or nothing), run through
libnftables in this process (ctypes), with one context per :class:`Nft`: the
context keeps its cache of the table while the kernel's ruleset generation
says it is current. Measured with 100 services of 3 endpoints: one
endpoint's change (flush a service chain, add its rule, delete an endpoint
chain) took ~13 ms through ``nft -f -`` (a process, which loads the whole
table to resolve chain names) and ~0.6 ms through a kept context. Without
the library (it ships with the ``nft`` command on Debian), the command is
used.

An :class:`Nft` belongs to the thread that made it: its netlink socket is in
that thread's network namespace.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
from typing import Any

from nodeagent.network.nftables import NFT
from nodeagent.network.overlay.errors import OverlayError
from nodeagent.network.overlay.ruleset import FAMILY, TABLE, TableState, parse

__all__ = ["Nft"]

LIBRARY = "libnftables.so.1"
OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON
_T = f"{FAMILY} {TABLE}"


class Nft:
    def __init__(self) -> None:
        self._lib: Any = None
        self._ctx: int | None = None
        try:
            lib = ctypes.CDLL(LIBRARY)
        except OSError:
            return  # the nft command, then
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            return
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._lib, self._ctx = lib, ctx

    def close(self) -> None:
        """Free the context (anything run after runs the nft command)."""
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def run(self, script: str, as_json: bool = False) -> tuple[bool, str, str]:
        """(ok, output, error) of one script, run as one transaction."""
        if self._ctx is None:
            # With -j, nft reads JSON from -f: a listing is one command, given as arguments.
            args = ["-j", *script.split()] if as_json else ["-f", "-"]
            proc = subprocess.run([NFT, *args], input=None if as_json else script, capture_output=True,
                                  text=True)
            return proc.returncode == 0, proc.stdout, proc.stderr
        lib, ctx = self._lib, self._ctx
        flags = lib.nft_ctx_output_get_flags(ctx)
        if as_json:
            lib.nft_ctx_output_set_flags(ctx, flags | OUTPUT_JSON)
        try:
            rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
        finally:
            lib.nft_ctx_output_set_flags(ctx, flags)
        output = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        return rc == 0, output, error

    def apply(self, script: str) -> None:
        """Run ``script`` as one atomic transaction."""
        if not script:
            return
        ok, _, error = self.run(script)
        if not ok:
            raise OverlayError("nft_apply", {"table": _T, "lines": script.count("\n")}, _first_error(error))

    def read(self) -> TableState | None:
        """The table as the kernel has it; None if there is none."""
        ok, output, error = self.run(f"list table {_T}\n", as_json=True)
        if not ok:
            if "No such file or directory" in error:
                return None
            raise OverlayError("nft_list", {"table": _T}, _first_error(error))
        listing: dict[str, Any] = json.loads(output)
        return parse(listing)

    def exists(self) -> bool:
        return self.run(f"list table {_T}\n")[0]

    def delete(self) -> None:
        if self.exists():
            self.apply(f"delete table {_T}\n")


def _first_error(stderr: str) -> str:
    """nft's complaint: its first lines (the error, the statement, the caret)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return " | ".join(lines[:3]) if lines else "nft failed without saying why"
