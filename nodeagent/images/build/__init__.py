"""``orch build``: Containerfile -> image in the local :class:`~nodeagent.images.ImageStore`.

Public surface: :func:`parse` (text -> :class:`Stage` list of
:class:`Instruction`), :func:`build` (a whole build, with the layer cache)
and :class:`BuildError`. ``python -m nodeagent.images.build`` is the process
entry (single-threaded: RUN forks containers through LinuxRuntime).

Errors::

    InvalidArgument
    └── BuildError     names Containerfile:line (parse errors, failed RUN with
                       its exit code, missing/hostile COPY sources, bad values)

Invariants: only the target stage's layers ship in the image; a step's cache
key chains every earlier step, so a rebuild with no changes reuses every step
and yields the same image id; layers are written to the store's blob dir
before the image that names them is indexed.
"""

from nodeagent.images.build.builder import build
from nodeagent.images.build.errors import BuildError
from nodeagent.images.build.parser import Instruction, Stage, parse

__all__ = ["BuildError", "Instruction", "Stage", "build", "parse"]
