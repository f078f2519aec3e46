"""The default seccomp profile built without libseccomp decides every call as
libseccomp's compilation of the same profile does, on every architecture it
is built for. (That it is enforced inside containers is a runtime test.)"""

from __future__ import annotations

import struct

import pyseccomp
import pytest

from nodeagent.runtime import seccomp

ARCHES = sorted(seccomp.SYSCALL_NUMBERS)
I386 = 0x40000003


def run(bpf: bytes, arch: int, nr: int) -> int:
    """Classic BPF over ``struct seccomp_data`` {nr, arch}: the opcodes a
    profile without argument checks uses."""
    data = {0: nr, 4: arch}
    insns = [struct.unpack("=HBBI", bpf[i:i + 8]) for i in range(0, len(bpf), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = data[k]
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} at {pc} is not modelled")
        pc += 1


def numbers() -> list[int]:
    x32 = seccomp.X32_SYSCALL_BIT
    return [*range(0, 1100), x32, x32 + 1, x32 + 165, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF]


@pytest.mark.parametrize("arch", ARCHES)
def test_tables_are_the_kernels_numbers(arch: str) -> None:
    audit = seccomp.AUDIT_ARCH[arch]
    for name in seccomp.DENIED_SYSCALLS:
        nr = pyseccomp.resolve_syscall(audit, name)
        if nr < 0:  # a pseudo number: the arch has no such call
            assert name not in seccomp.SYSCALL_NUMBERS[arch], name
        else:
            assert seccomp.SYSCALL_NUMBERS[arch].get(name) == nr, name


@pytest.mark.parametrize("arch", ARCHES)
def test_every_call_is_decided_as_libseccomp_decides_it(arch: str) -> None:
    ours = seccomp.build(arch)
    reference = seccomp.compile_with_libseccomp(seccomp.AUDIT_ARCH[arch])
    denied = 0
    for audit in (*seccomp.AUDIT_ARCH.values(), I386):
        for nr in numbers():
            verdict = run(ours, audit, nr)
            assert verdict == run(reference, audit, nr), (arch, hex(audit), nr)
            denied += verdict == seccomp.RET_ERRNO | 1
    assert denied == len(seccomp.SYSCALL_NUMBERS[arch])


def test_the_native_program_is_the_built_one() -> None:
    import os

    if os.uname().machine not in seccomp.SYSCALL_NUMBERS:
        pytest.skip("this architecture compiles through libseccomp")
    program = seccomp.default_program()
    assert program == seccomp.build(os.uname().machine)
