"""cgroup v2 device rules: the compiled eBPF program run through a small BPF
interpreter against a direct reading of the rules, the driver's hand-over of
the rules, and the program loaded and attached to a real cgroup2 group, where
a process in the group opens and makes device nodes."""

from __future__ import annotations

import errno
import json
import os
import secrets
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import InvalidArgument, SetupError
from nodeagent.runtime.cgroups import V2Driver
from nodeagent.runtime.cgroups.v2 import devices
from nodeagent.runtime.spec import ALL_DEVICES_RULE, DEFAULT_DEVICE_RULES, Resources

BLOCK, CHAR = 1, 2
MKNOD, READ, WRITE = 1, 2, 4
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


# --- a BPF interpreter for the opcodes the compiler emits ---------------------------

CTX = 0x1000  # where r1 points: struct bpf_cgroup_dev_ctx


def decode(program: bytes) -> list[tuple[int, int, int, int, int]]:
    assert len(program) % 8 == 0
    out = []
    for at in range(0, len(program), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", program, at)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def successors(insns: list[tuple[int, int, int, int, int]], pc: int) -> list[int]:
    code, _, _, off, _ = insns[pc]
    if code == 0x95:
        return []
    if code in (0x55, 0x5D):
        return [pc + 1, pc + 1 + off]
    return [pc + 1]


def check_shape(insns: list[tuple[int, int, int, int, int]]) -> None:
    """What the verifier insists on: every instruction reachable, jumps and
    fall-through inside the program."""
    seen, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in seen:
            continue
        assert 0 <= pc < len(insns), f"control leaves the program at {pc}"
        seen.add(pc)
        todo += successors(insns, pc)
    assert seen == set(range(len(insns))), f"unreachable: {sorted(set(range(len(insns))) - seen)}"


def run(program: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    insns = decode(program)
    check_shape(insns)
    ctx = struct.pack("<III", access << 16 | dev_type, major, minor)  # the kernel's layout
    reg = [0] * 11
    reg[1] = CTX
    defined = {1}
    pc = 0
    for _ in range(10_000):
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == 0x61:  # ldx w
            assert src in defined
            address = reg[src] + off
            assert address in (CTX, CTX + 4, CTX + 8), f"load outside the context at {address:#x}"
            reg[dst] = struct.unpack_from("<I", ctx, address - CTX)[0]
            defined.add(dst)
        elif code == 0x54:  # w &= imm
            assert dst in defined
            reg[dst] = reg[dst] & imm & U32
        elif code == 0x74:  # w >>= imm
            assert dst in defined
            reg[dst] = (reg[dst] & U32) >> imm
        elif code == 0xBC:  # w = w_src
            assert src in defined
            reg[dst] = reg[src] & U32
            defined.add(dst)
        elif code == 0xB4:  # w = imm
            reg[dst] = imm & U32
            defined.add(dst)
        elif code == 0x55:  # if dst != imm (sign-extended) goto
            assert dst in defined
            if reg[dst] != imm & U64:
                pc += off
        elif code == 0x5D:  # if dst != src goto
            assert dst in defined and src in defined
            if reg[dst] != reg[src]:
                pc += off
        elif code == 0x95:
            assert 0 in defined, "r0 unset at exit"
            return reg[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("the program did not exit")


def expected(rules: tuple[str, ...], dev_type: int, major: int, minor: int, access: int) -> bool:
    """v1's reading: one rule matches type, numbers and every access asked for."""
    for rule in rules:
        if rule == "a":
            return True
        kind, numbers, letters = rule.split()
        rule_major, rule_minor = numbers.split(":")
        granted = sum({"m": MKNOD, "r": READ, "w": WRITE}[c] for c in set(letters))
        if (kind in ("a", {BLOCK: "b", CHAR: "c"}[dev_type])
                and rule_major in ("*", str(major)) and rule_minor in ("*", str(minor))
                and access & ~granted == 0):
            return True
    return False


numbers = st.one_of(st.just("*"), st.integers(0, 3).map(str), st.integers(0, 4095).map(str))
minors = st.one_of(st.just("*"), st.integers(0, 3).map(str), st.integers(0, (1 << 20) - 1).map(str))
letters = st.permutations("rwm").flatmap(lambda p: st.integers(1, 3).map(lambda n: "".join(p[:n])))
rules_strategy = st.lists(
    st.builds(lambda k, a, b, acc: f"{k} {a}:{b} {acc}", st.sampled_from("cba"), numbers, minors, letters),
    max_size=8).map(tuple)


@given(rules=rules_strategy, data=st.data())
def test_program_matches_the_rules(rules: tuple[str, ...], data: st.DataObject) -> None:
    program = devices.program(rules)
    near = [r.split()[1].split(":") for r in rules]
    for _ in range(12):
        dev_type = data.draw(st.sampled_from((BLOCK, CHAR)))
        access = data.draw(st.integers(1, 7))
        use_rule: bool = data.draw(st.booleans())
        if near and use_rule:  # a rule's own numbers, to hit matches
            a, b = data.draw(st.sampled_from(near))
            major = int(a) if a != "*" else data.draw(st.integers(0, 4095))
            minor = int(b) if b != "*" else data.draw(st.integers(0, (1 << 20) - 1))
        else:
            major, minor = data.draw(st.integers(0, 4095)), data.draw(st.integers(0, (1 << 20) - 1))
        assert run(program, dev_type, major, minor, access) == expected(rules, dev_type, major, minor,
                                                                        access), (dev_type, major, minor,
                                                                                  access)


@pytest.mark.parametrize(("request_", "allowed"), [
    ((CHAR, 1, 3, READ | WRITE), True),  # /dev/null
    ((CHAR, 1, 9, READ), True),  # /dev/urandom
    ((CHAR, 136, 7, READ | WRITE), True),  # a pty
    ((CHAR, 5, 2, READ | WRITE | MKNOD), True),  # ptmx
    ((CHAR, 1, 4, READ), False),  # /dev/port
    ((CHAR, 10, 200, READ | WRITE), False),  # tun
    ((CHAR, 10, 200, MKNOD), True),  # "c *:* m"
    ((BLOCK, 8, 0, MKNOD), True),  # "b *:* m"
    ((BLOCK, 8, 0, READ), False),
    ((BLOCK, 1, 3, READ), False),  # the numbers of /dev/null, but a block device
    ((CHAR, 10, 200, READ | MKNOD), False),  # m alone is granted, not with r
])
def test_default_rules(request_: tuple[int, int, int, int], allowed: bool) -> None:
    assert run(devices.program(DEFAULT_DEVICE_RULES), *request_) == allowed


def test_access_must_come_from_one_rule() -> None:
    rules = ("c 1:3 r", "c 1:3 w")
    program = devices.program(rules)
    assert run(program, CHAR, 1, 3, READ) == 1
    assert run(program, CHAR, 1, 3, WRITE) == 1
    assert run(program, CHAR, 1, 3, READ | WRITE) == 0  # as v1: no single rule grants both


def test_every_device_and_nothing() -> None:
    everything = devices.program((ALL_DEVICES_RULE,))
    assert len(everything) // 8 == 6 + 2  # the loads, then allow
    assert all(run(everything, t, 259, 1 << 19, 7) == 1 for t in (BLOCK, CHAR))
    # Nothing follows a rule that matches everything (the verifier refuses dead code).
    assert devices.program((ALL_DEVICES_RULE, "c 1:3 r")) == everything
    assert devices.program(("a",)) == everything
    nothing = devices.program(())
    assert run(nothing, CHAR, 1, 3, READ) == 0


def test_instruction_layout() -> None:
    program = decode(devices.program(("c 136:* rw",)))
    assert [insn[0] for insn in program] == [
        0x61, 0x54, 0x61, 0x74, 0x61, 0x61,  # type, access, major, minor
        0x55, 0xBC, 0x54, 0x5D, 0x55,  # type, access subset, major
        0xB4, 0x95, 0xB4, 0x95]  # allow, deny
    assert program[6][1:5:3] == (2, 2)  # r2 != CHAR
    assert program[8][4] == READ | WRITE
    assert program[10][4] == 136
    assert [insn[3] for insn in program[6:11]] == [6, 0, 0, 3, 2]  # each to the deny block


@pytest.mark.parametrize("rule", [
    "", "x 1:3 rwm", "c 1:3", "c 1-3 rwm", "c 1:3 rwx", "c 1:3 rwm extra", "c 4096:0 r",
    "c 0:1048576 r", "c -1:3 r", "c 1:+3 r", "c \u0661:3 r", "c 1:3 R", "c :3 r"])
def test_invalid_rules_name_the_rule(rule: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        devices.program(("c 1:3 rwm", rule))
    assert repr(rule) in info.value.message


# --- the driver hands the rules on ------------------------------------------------------


def fake_root(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def test_driver_passes_the_rules_to_attach(tmp_path: Path) -> None:
    calls: list[tuple[str, tuple[str, ...]]] = []
    driver = V2Driver(str(fake_root(tmp_path)), attach_devices=lambda d, r: calls.append((d, r)))
    group = driver.create("orch/c1", Resources(), DEFAULT_DEVICE_RULES)
    assert calls == [(str(tmp_path / "orch" / "c1"), DEFAULT_DEVICE_RULES)]
    assert group.path == calls[0][0]
    driver.create("orch/c1", Resources(), (ALL_DEVICES_RULE,))  # a reset group: attached again
    assert calls[1] == (group.path, (ALL_DEVICES_RULE,))
    driver.create("orch/c2", Resources())
    driver.create("orch/c3", Resources(), None)
    assert len(calls) == 2


def test_driver_refuses_bad_rules_before_any_mkdir(tmp_path: Path) -> None:
    calls: list[object] = []
    driver = V2Driver(str(fake_root(tmp_path)), attach_devices=lambda d, r: calls.append(r))
    with pytest.raises(InvalidArgument, match="'c 1:3 rwx'"):
        driver.create("orch/c1", Resources(), ("c 1:3 rwm", "c 1:3 rwx"))
    assert calls == []
    assert not (tmp_path / "orch").exists()


def test_attach_to_a_missing_group_names_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(SetupError) as info:
        devices.attach(missing, DEFAULT_DEVICE_RULES)
    assert missing in info.value.message
    assert info.value.step == "cgroup devices"
    assert info.value.errno == errno.ENOENT


# --- the real kernel: a cgroup2 group, a process in it ---------------------------------


def cgroup2_mount() -> str | None:
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


CHILD = r"""
import json, os, sys
with open(sys.argv[1], "w") as procs:
    procs.write(str(os.getpid()))
flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}
kinds = {"c": 0o020000, "b": 0o060000}
results = []
for op in json.loads(sys.argv[2]):
    try:
        if op[0] == "open":
            os.close(os.open(op[1], flags[op[2]] | os.O_CLOEXEC))
        else:
            os.mknod(op[1], 0o600 | kinds[op[2]], os.makedev(op[3], op[4]))
        results.append(0)
    except OSError as e:
        results.append(e.errno)
print(json.dumps(results))
"""

# Char devices outside the default rules that open harmlessly when allowed.
PROBES = ((1, 11), (10, 200), (1, 4))


class Group:
    def __init__(self, path: str, scratch: Path) -> None:
        self.path = path
        self.scratch = scratch

    def run(self, *ops: tuple[object, ...]) -> list[int]:
        """The errno (0: fine) of each op, done by a new process in the group."""
        done = subprocess.run([sys.executable, "-c", CHILD, os.path.join(self.path, "cgroup.procs"),
                               json.dumps(ops)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def node(self, name: str, kind: str, major: int, minor: int) -> str:
        """A device node made by this (unrestricted) test process."""
        path = str(self.scratch / name)
        os.mknod(path, 0o600 | (0o020000 if kind == "c" else 0o060000), os.makedev(major, minor))
        return path

    def probe(self) -> tuple[str, int, int]:
        """A char device node outside the default rules that this process can open."""
        for major, minor in PROBES:
            path = self.node(f"probe-{major}-{minor}", "c", major, minor)
            try:
                os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            except OSError:
                continue
            return path, major, minor
        pytest.skip(f"none of the char devices {PROBES} opens on this host")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    if os.geteuid() != 0:
        pytest.skip("loading and attaching BPF device programs needs root")
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 filesystem is mounted")
    path = os.path.join(mount, f"orchtest-dev-{secrets.token_hex(4)}")
    os.mkdir(path)
    scratch = tmp_path / "nodes"
    scratch.mkdir()
    try:
        yield Group(path, scratch)
    finally:
        # Every child was waited for (subprocess.run): the group is empty.
        os.rmdir(path)
    assert not os.path.exists(path)


def open_fds() -> set[str]:
    """The process's open fds, but the programs ``devices`` keeps loaded
    (one per rule set, for every group: see ``_loaded_program``)."""
    kept = {str(fd) for fd, _ in devices._loaded.values()}
    return set(os.listdir("/proc/self/fd")) - kept


def test_default_rules_in_the_kernel(group: Group) -> None:
    probe, major, minor = group.probe()
    block = group.node("block", "b", 7, 0)
    fds = open_fds()
    devices.attach(group.path, DEFAULT_DEVICE_RULES)
    assert open_fds() == fds
    scratch = group.scratch
    assert group.run(
        ("open", "/dev/null", "rw"), ("open", "/dev/zero", "r"),
        ("open", probe, "rw"), ("open", probe, "r"), ("open", block, "r"),
        ("mknod", str(scratch / "null2"), "c", 1, 3), ("open", str(scratch / "null2"), "rw"),
        ("mknod", str(scratch / "probe2"), "c", major, minor),  # "c *:* m"
        ("open", str(scratch / "probe2"), "r"),
        ("mknod", str(scratch / "block2"), "b", 7, 0),  # "b *:* m"
    ) == [0, 0, errno.EPERM, errno.EPERM, errno.EPERM, 0, 0, 0, errno.EPERM, 0]
    [(first, name)] = devices.attached(group.path)
    assert name == "orch_devices"

    # The same rules again (a reset group): the same program, still one.
    devices.attach(group.path, DEFAULT_DEVICE_RULES)
    assert devices.attached(group.path) == [(first, name)]
    # A second attach (a reset group) adds the probe: one program decides.
    devices.attach(group.path, (*DEFAULT_DEVICE_RULES, f"c {major}:{minor} rw"))
    assert group.run(("open", probe, "rw"), ("open", "/dev/null", "rw"), ("open", block, "r")) == [
        0, 0, errno.EPERM]
    [(second, name)] = devices.attached(group.path)
    assert second != first and name == "orch_devices"

    devices.attach(group.path, (ALL_DEVICES_RULE,))
    results = group.run(("open", probe, "rw"), ("open", block, "r"),
                        ("mknod", str(scratch / "block3"), "b", 7, 1))
    assert results[0] == 0 and results[2] == 0
    assert results[1] != errno.EPERM  # allowed; the loop driver may still be absent (ENXIO)
    assert len(devices.attached(group.path)) == 1
    assert open_fds() == fds


def test_mknod_and_access_narrowed_in_the_kernel(group: Group) -> None:
    zero = group.node("zero", "c", 1, 5)
    devices.attach(group.path, ("c 1:3 rwm", "c 1:5 r"))
    scratch = group.scratch
    assert group.run(
        ("mknod", str(scratch / "null"), "c", 1, 3), ("mknod", str(scratch / "zero2"), "c", 1, 5),
        ("mknod", str(scratch / "block"), "b", 7, 0),
        ("open", zero, "r"), ("open", zero, "w"), ("open", zero, "rw"), ("open", "/dev/null", "rw"),
    ) == [0, errno.EPERM, errno.EPERM, 0, errno.EPERM, errno.EPERM, 0]


def test_a_refused_program_carries_the_verifier_log(group: Group, monkeypatch: pytest.MonkeyPatch) -> None:
    exit_only = struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 never set
    monkeypatch.setattr(devices, "program", lambda rules: exit_only)
    fds = open_fds()
    with pytest.raises(SetupError) as info:
        devices.attach(group.path, DEFAULT_DEVICE_RULES)
    assert info.value.step == "cgroup devices"
    assert "BPF_PROG_LOAD" in info.value.message and group.path in info.value.message
    assert "verifier:" in info.value.message and "R0" in info.value.message
    assert info.value.errno == errno.EACCES
    assert open_fds() == fds
    assert devices.attached(group.path) == []


def test_attach_to_a_directory_that_is_no_group(group: Group) -> None:
    fds = open_fds()
    with pytest.raises(SetupError) as info:
        devices.attach(str(group.scratch), DEFAULT_DEVICE_RULES)
    assert "BPF_PROG_ATTACH" in info.value.message and str(group.scratch) in info.value.message
    assert info.value.errno != 0
    assert open_fds() == fds


def test_the_driver_attaches_one_program(group: Group) -> None:
    mount, name = os.path.split(group.path)
    driver = V2Driver(mount)
    created = driver.create(f"{name}/c1", Resources(), DEFAULT_DEVICE_RULES)
    try:
        driver.create(f"{name}/c1", Resources(), DEFAULT_DEVICE_RULES)
        assert [n for _, n in devices.attached(created.path)] == ["orch_devices"]
        driver.create(f"{name}/c1", Resources())  # None: left as it is
        assert len(devices.attached(created.path)) == 1
    finally:
        os.rmdir(created.path)
