"""What a writable-layer size limit adds to a container's start, where the
state dir has no project quotas (a loop-mounted ext4 per container, see
``nodeagent.runtime.loopfs``).

1. ``orch run --rm --network none busybox true`` with and without
   ``--storage-opt size=...``, alternating so background noise hits both
   alike; medians of N runs each after 3 warm-ups. The CLI's share of the
   difference is its parsing of the option (``model.units``).
2. The same container through ``LinuxRuntime`` alone (create, start, wait,
   remove), with and without a size: the layer's cost in the supervisor.
3. The layer's own steps (mkfs.ext4 on a sparse file, loop attach and
   mount, unmount and detach) for a few sizes and mkfs option sets: the
   figures ``loopfs.MKFS_ARGS`` was chosen from.

    python bench/storage_limit.py [N]        (root; default N=20)
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ORCH, agent, busybox_rootfs, median_ms, tempdir
from nodeagent.runtime import LinuxRuntime, Stdio, loopfs
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec

SIZES = {"8M": 8 << 20, "10G": 10 << 30, "100G": 100 << 30, "1T": 1 << 40, "10T": 10 << 40}
MKFS_OPTIONS = {
    "defaults": ("-q",),
    "no journal, -m 0": ("-q", "-O", "^has_journal", "-m", "0"),
    "and ^resize_inode": ("-q", "-O", "^has_journal,^resize_inode", "-m", "0"),
    "and no backup sb": ("-q", "-O", "^has_journal,^resize_inode,sparse_super2", "-E",
                         "num_backup_sb=0", "-m", "0"),
    "chosen (and -G 4096)": loopfs.MKFS_ARGS,
    "chosen, -i 65536": (*loopfs.MKFS_ARGS, "-i", "65536"),
}


def run_once(env: dict[str, str], options: tuple[str, ...]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*ORCH, "run", "--rm", "--network", "none", *options, "bench-busybox", "true"],
                   check=True, env=env)
    return time.perf_counter() - t0


def runtime_once(rt: LinuxRuntime, rootfs: Path, work: Path, size: int) -> float:
    cid = secrets.token_hex(32)
    spec = ContainerSpec(id=cid, name=cid[:12], hostname=cid[:12], bundle_dir=str(work / cid),
                         rootfs=RootfsSpec([str(rootfs)], volatile=True, size_bytes=size),
                         process=ProcessSpec(args=["/bin/true"]), cgroup_name=f"orch/{cid}")
    t0 = time.perf_counter()
    c = rt.create(spec, Stdio())
    rt.start(c)
    status = rt.wait(c)
    rt.remove(c)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(spec.bundle_dir, ignore_errors=True)
    assert status is not None and status.exit_code == 0, status
    return elapsed


def medians(contenders: dict[str, Callable[[], float]], n: int) -> dict[str, float]:
    """Median ms of each, run alternately n times after 3 warm-ups."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(n + 3):
        for name, run in contenders.items():
            elapsed = run()
            if i >= 3:
                samples[name].append(elapsed)
    return {k: median_ms(v) for k, v in samples.items()}


def layer_cycle(bundle: Path, size: int, args: tuple[str, ...]) -> tuple[float, float, float, int]:
    """(mkfs, attach+mount, unmount+detach) seconds for one layer, and the
    bytes its image holds on the host once made."""
    bundle.mkdir(exist_ok=True)
    try:
        t0 = time.perf_counter()
        loopfs.make(str(bundle), size, args)
        t1 = time.perf_counter()
        loopfs.mount(str(bundle))
        t2 = time.perf_counter()
        loopfs.unmount(str(bundle))
        t3 = time.perf_counter()
        allocated = os.stat(loopfs.image_path(str(bundle))).st_blocks * 512
    finally:
        loopfs.remove(str(bundle))
    return t1 - t0, t2 - t1, t3 - t2, allocated


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempdir() as tmp_s:
        tmp = Path(tmp_s)
        rootfs = busybox_rootfs(tmp / "rootfs")
        with agent(tmp / "agent") as env:
            subprocess.run([*ORCH, "image", "import", str(rootfs), "bench-busybox"], check=True,
                           env=env, capture_output=True)
            info = subprocess.run([*ORCH, "info"], env=env, capture_output=True, text=True).stdout
            print(next(line for line in info.splitlines() if line.startswith("Storage limit")))
            opt = ("--storage-opt", "size=8M")
            options: dict[str, tuple[str, ...]] = {
                "no_limit": (), "size_8M": opt, "size_10G": ("--storage-opt", "size=10G"),
                # no writable layer, so no limit to keep: the CLI's and agent's share
                "read_only": ("--read-only",), "read_only_size_8M": ("--read-only", *opt)}
            med = medians({k: functools.partial(run_once, env, v) for k, v in options.items()}, n)
        print(f"iterations={n}")
        for k, v in med.items():
            print(f"orch_run_{k}_median_ms={v:.1f}")
        for k in ("size_8M", "size_10G"):
            print(f"orch_run_extra_for_{k}_ms={med[k] - med['no_limit']:.1f}")
        print(f"orch_run_extra_for_the_option_alone_ms={med['read_only_size_8M'] - med['read_only']:.1f}")
        rt = LinuxRuntime()
        med = medians({k: functools.partial(runtime_once, rt, rootfs, tmp, v)
                       for k, v in {"no_limit": 0, "size_8M": 8 << 20, "size_10G": 10 << 30}.items()}, n)
        rt.cleanup()
        for k, v in med.items():
            print(f"runtime_{k}_median_ms={v:.1f}")
        for k in ("size_8M", "size_10G"):
            print(f"runtime_extra_for_{k}_ms={med[k] - med['no_limit']:.1f}")

        print("layer steps, median ms of 5: mkfs / attach+mount / unmount+detach; host file allocated")
        for size_name, size_bytes in SIZES.items():
            cycles: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in MKFS_OPTIONS}
            for _ in range(5):  # alternating, as above
                for label, args in MKFS_OPTIONS.items():
                    cycles[label].append(layer_cycle(tmp / "layer", size_bytes, args))
            for label in MKFS_OPTIONS:
                cols = [median_ms([r[i] for r in cycles[label]]) for i in range(3)]
                allocated = cycles[label][-1][3]
                print(f"  {label:20} {size_name:>5}: {cols[0]:6.1f} / {cols[1]:4.1f} / {cols[2]:4.1f}"
                      f"   {allocated >> 10} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
