"""The simulation's control socket: kill, revive and count its nodes from outside.

A unix socket only root can open (0600, in a 0700 directory); one JSON
object a connection each way::

    {"op": "status"}                          -> Simulator.status()
    {"op": "kill", "nodes": ["sim-3", ...]}   -> {"killed": [...]}
    {"op": "kill", "nodes": [...], "keep_tasks": true}   (a lost link, not a lost machine)
    {"op": "revive", "nodes": [...]}          -> {"revived": [...]}

An error comes back as ``{"error": "<one line>"}``. ``request`` is the
client (blocking, standard library only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from typing import Any

from nodeagent.sim.simulator import SimError, Simulator

__all__ = ["SOCKET", "ControlError", "request", "serve"]

SOCKET = "control.sock"  # in the simulation's run dir
_MAX = 1 << 20


class ControlError(Exception):
    """The simulation cannot be reached, or refused the request; one line."""


async def serve(sim: Simulator, path: str) -> asyncio.AbstractServer:
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                reply = await _answer(sim, json.loads(line or b"{}"))
            except (SimError, ValueError, TypeError, KeyError) as err:
                reply = {"error": str(err)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    old = os.umask(0o177)
    try:
        return await asyncio.start_unix_server(handle, path, limit=_MAX)
    finally:
        os.umask(old)


async def _answer(sim: Simulator, req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    names = [str(n) for n in req.get("nodes", [])]
    if op == "status":
        return sim.status()
    if op == "kill":
        return {"killed": await sim.kill(names, lose_tasks=not req.get("keep_tasks", False))}
    if op == "revive":
        return {"revived": sim.revive(names)}
    raise SimError(f"unknown request {op!r}: status, kill or revive")


def request(path: str, req: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send ``req`` to the simulation at ``path``; its answer, or ControlError."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as err:
        raise ControlError(f"cannot reach the simulation at {path}: {err.strerror or err}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"the simulation at {path} gave no answer") from None
    if not isinstance(reply, dict):
        raise ControlError(f"the simulation at {path} gave an unexpected answer")
    if "error" in reply:
        raise ControlError(str(reply["error"]))
    return reply
