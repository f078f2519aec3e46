"""``devices`` controller (v1 only): which device nodes a group may use.

A group's list is set from scratch: ``a`` to ``devices.deny`` (nothing
allowed), then each rule to ``devices.allow``, one write each (the kernel
takes one rule per write): ``"c 1:3 rwm"``, ``"c 136:* rwm"``, or
``"a *:* rwm"`` for every device. cgroup v2 has no such files: there an
eBPF program compiled from the same rules and attached to the group decides
(``cgroups.v2.devices``).
"""

from __future__ import annotations

import os

from .. import _fs


def apply(directory: str, rules: tuple[str, ...]) -> None:
    """Deny every device, then allow ``rules``; a write the kernel refuses
    is a SetupError naming the file and the rule."""
    _fs.write(os.path.join(directory, "devices.deny"), "a")
    allow = os.path.join(directory, "devices.allow")
    for rule in rules:
        _fs.write(allow, rule)
