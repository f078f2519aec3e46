"""nftables through libnftables in this process (ctypes), the ``nft``
command when the library is missing.

One :class:`Context` is one libnftables context: its netlink socket belongs
to the network namespace of the thread that made it, for its whole life, so
a context made while a thread is inside a container's namespace changes that
namespace's ruleset. A script runs as one transaction (all of it or
nothing).

Why not the ``nft`` command: measured with 100 services of 3 endpoints, one
endpoint's change (flush a service chain, add its rule, delete an endpoint
chain) took ~13 ms through ``nft -f -`` (a process, which loads the whole
table to resolve names) and ~0.6 ms through a kept context; a container's
DNS redirect (a table, a chain, two rules) takes ~1.5 ms with a fresh
context. Debian ships the library with the command; the Python binding it
also ships (``python3-nftables``) is not on PyPI, so the venv cannot have
it. ``tests/network/test_overlay_table.py`` runs the same transactions
through both and checks they agree.
"""

from __future__ import annotations

import ctypes
import subprocess
from typing import Any

from nodeagent.network.nftables import NFT

__all__ = ["Context", "first_error"]

LIBRARY = "libnftables.so.1"
OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON

_lib: Any = None  # loaded once per process; None: not tried yet, False: not there


def _library() -> Any:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBRARY)
        except OSError:
            _lib = False
            return _lib
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
        _lib = lib
    return _lib


class Context:
    """A libnftables context in the caller's network namespace (the
    ``nft`` command if the library is missing, or after :meth:`close`)."""

    def __init__(self) -> None:
        self._lib: Any = None
        self._ctx: int | None = None
        lib = _library()
        if not lib:
            return
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

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

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


def first_error(stderr: str) -> str:
    """nft's complaint: its first lines (the error, the statement, the caret)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return " | ".join(lines[:3]) if lines else "nft failed without saying why"
