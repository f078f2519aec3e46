"""Capability names and the masks the runtime applies.

Invariant: a container's bounding, effective, permitted and inheritable sets
all equal ``ProcessSpec.capabilities``; a non-root user loses effective and
permitted capabilities at execve (no ambient set), as in Docker.

``--cap-add``/``--cap-drop`` change Docker's default set by Docker's rules
(:func:`tweak`): names with or without ``CAP_``, any case; ``ALL`` added
means every capability this kernel knows (and orch's own bounding set
holds) but the dropped ones, ``ALL``
dropped means only the added ones; otherwise the default set, minus the
dropped, plus the added.
"""

from __future__ import annotations

from common.errors import InvalidArgument

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPABILITIES.values())


def to_mask(names: tuple[str, ...] | list[str]) -> int:
    """Names (with or without the ``CAP_`` prefix, any case) -> a bit mask."""
    mask = 0
    for name in names:
        key = name.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        if key not in CAPABILITIES:
            raise InvalidArgument(f"unknown capability {name!r}")
        mask |= 1 << CAPABILITIES[key]
    return mask


def to_drop(mask: int, last: int) -> list[int]:
    """Capability numbers to drop from the bounding set to leave ``mask``."""
    return [cap for cap in range(last + 1) if not mask & (1 << cap)]


ALL = "ALL"


def normalize(name: str, flag: str = "capability") -> str:
    """``net_admin``, ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``all`` -> ``ALL``;
    InvalidArgument naming ``flag`` for a name no kernel has."""
    key = name.strip().upper()
    if key == ALL:
        return ALL
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    if key not in CAPABILITIES:
        raise InvalidArgument(f"invalid {flag} {name!r}: unknown capability (expected a name "
                              "such as NET_ADMIN or CAP_NET_ADMIN, or ALL)")
    if CAPABILITIES[key] > last_cap():
        raise InvalidArgument(f"invalid {flag} {name!r}: this node's kernel does not know {key}")
    if not own_bounding_set() >> CAPABILITIES[key] & 1:
        raise InvalidArgument(f"invalid {flag} {name!r}: orch on this node runs without {key} "
                              "(its own bounding set), so it cannot grant it")
    return key


def own_bounding_set() -> int:
    """This process's bounding set: no container gets a capability beyond it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return (1 << (last_cap() + 1)) - 1


def all_capabilities() -> tuple[str, ...]:
    """Every capability this kernel knows and this process may grant (its
    bounding set: orch itself may run confined), by number."""
    last, own = last_cap(), own_bounding_set()
    return tuple(name for name, num in sorted(CAPABILITIES.items(), key=lambda kv: kv[1])
                 if num <= last and own >> num & 1)


def tweak(base: tuple[str, ...], add: list[str], drop: list[str]) -> tuple[str, ...]:
    """Docker's ``TweakCapabilities``: ``base`` with ``add`` and ``drop`` applied
    (see the module docstring), each name once, in ``base``'s order first."""
    adds = [normalize(name, "--cap-add") for name in add]
    drops = [normalize(name, "--cap-drop") for name in drop]
    if ALL in adds:
        caps = [c for c in all_capabilities() if c not in drops]
    elif ALL in drops:
        caps = [c for c in adds if c != ALL]
    else:
        caps = [c for c in base if c not in drops] + adds
    return tuple(dict.fromkeys(caps))
