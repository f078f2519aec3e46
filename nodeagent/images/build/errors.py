"""The build's one error type: a user-facing message that names Containerfile:line."""

from __future__ import annotations

from common.errors import InvalidArgument


class BuildError(InvalidArgument):
    """A build step failed or the Containerfile is wrong; ``where`` is "path:line"."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
