"""Errors raised by the node agent and everything under it.

One hierarchy for the whole node side, so the gRPC edge can map each kind to a
status code and the CLI can print a one-line message::

    AgentError                     code
    ├── NotFound                   "not_found"        unknown container, image, exec
    ├── InvalidArgument            "invalid"          bad quantity, bad reference, ...
    ├── Conflict                   "conflict"         name in use, container running
    ├── FailedPrecondition         "precondition"     wrong state for the verb
    └── SetupError                 "setup"            a container setup step failed;
                                                      names the step and its arguments

Messages are written for the user: what was wrong and where.
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class NotFound(AgentError):
    code = "not_found"


class InvalidArgument(AgentError):
    code = "invalid"


class Conflict(AgentError):
    code = "conflict"


class FailedPrecondition(AgentError):
    code = "precondition"


class SetupError(AgentError):
    """A container setup step failed; the process never exec'd.

    ``step`` is the checklist step's name (e.g. ``"pivot_root"``), ``args`` the
    arguments of the failing call, ``errno`` the OS error number if any.
    """

    code = "setup"

    def __init__(self, step: str, args: Any = None, detail: str = "", errno: int = 0) -> None:
        text = f"container setup failed at step {step!r}"
        if args is not None:
            text += f" ({args})"
        if detail:
            text += f": {detail}"
        super().__init__(text)
        self.step = step
        self.args_repr = args
        self.detail = detail
        self.errno = errno

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "step": self.step}


_BY_CODE: dict[str, type[AgentError]] = {
    cls.code: cls
    for cls in (AgentError, NotFound, InvalidArgument, Conflict, FailedPrecondition)
}


def from_dict(data: dict[str, Any]) -> AgentError:
    """Rebuild an error that crossed a process boundary as a dict."""
    code = str(data.get("code", AgentError.code))
    err = _BY_CODE.get(code, AgentError)(str(data.get("message", "unknown error")))
    err.code = code  # a subclass's own code (e.g. "registry") survives the trip
    return err
