"""Container start latency: orch's runtime, `orch run --rm`, and `runc run`.

Each iteration runs /bin/true from the same busybox rootfs with no network
(create -> start -> exit -> cleanup) once per contender, alternating, so
background noise hits all of them alike. Prints medians, then the ratios.

Like for like: runc runs with a read-only root (``root.readonly`` in the
config below), so ``orch_runtime`` does too (an overlay with no writable
layer). ``orch_runtime_writable`` adds the container's own writable layer on
disk, as ``orch run --rm`` has; it is printed for comparison.

``volume_start_ms``: the writable start again, with one named volume and
one bind mount (``orch_runtime_volumes``), beside the same without them,
and the extra; ``volume_bookkeeping_ms`` is what the engine adds per such
container outside the runtime (the volume store's attach and detach, and
the look for image content to fill the volume with).

    python bench/runtime_start.py [N]        (root; default N=30)
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ORCH, agent, busybox_rootfs, median_ms, tempdir
from nodeagent.runtime import LinuxRuntime, Stdio
from nodeagent.runtime.spec import ContainerSpec, Mount, ProcessSpec, RootfsSpec
from nodeagent.volumes import VolumeStore, populate


def orch_direct(rt: LinuxRuntime, rootfs: Path, work: Path, readonly: bool = True,
                mounts: tuple[Mount, ...] = ()) -> float:
    cid = secrets.token_hex(32)
    # volatile, as for `orch run --rm`: the writable layer dies with the container
    spec = ContainerSpec(id=cid, name=cid[:12], hostname=cid[:12], bundle_dir=str(work / cid),
                         rootfs=RootfsSpec([str(rootfs)], readonly=readonly, volatile=True),
                         process=ProcessSpec(args=["/bin/true"]), cgroup_name=f"orch/{cid}",
                         mounts=list(mounts))
    t0 = time.perf_counter()
    c = rt.create(spec, Stdio())
    rt.start(c)
    status = rt.wait(c)
    rt.remove(c)
    shutil.rmtree(spec.bundle_dir, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    assert status is not None and status.exit_code == 0, status
    return elapsed


def volume_mounts(work: Path) -> tuple[VolumeStore, tuple[Mount, ...]]:
    """A named volume and a host directory, as ``-v bench:/data -v DIR:/host`` makes them."""
    store = VolumeStore(str(work / "volumes"))
    vol = store.create("bench")
    host = work / "bind"
    host.mkdir()
    return store, (Mount(vol.mountpoint, "/data", False, "volume", "bench", "rbind"),
                   Mount(str(host), "/host", False, "bind", "", "rbind"))


def bookkeeping(store: VolumeStore, rootfs: Path) -> float:
    """The engine's part for one such container: attach, the fill check, detach."""
    cid = secrets.token_hex(32)
    t0 = time.perf_counter()
    store.attach(cid, ["bench"], [], auto_remove=True)
    populate(store.data_dir("bench"), [str(rootfs)], "/data")
    store.detach(cid, remove_anonymous=None)
    return time.perf_counter() - t0


def orch_cli(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*ORCH, "run", "--rm", "--network", "none", "bench-busybox", "/bin/true"],
                   check=True, env=env)
    return time.perf_counter() - t0


def runc_bundle(rootfs: Path, work: Path) -> Path:
    bundle = work / "runc-bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def runc_run(bundle: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["runc", "run", "--bundle", str(bundle), "orchbench" + secrets.token_hex(4)],
                   check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempdir() as tmp_s:
        tmp = Path(tmp_s)
        rootfs = busybox_rootfs(tmp / "rootfs")
        bundle = runc_bundle(rootfs, tmp)
        rt = LinuxRuntime()
        store, mounts = volume_mounts(tmp)
        with agent(tmp / "agent") as env:
            subprocess.run([*ORCH, "image", "import", str(rootfs), "bench-busybox"], check=True,
                           env=env, capture_output=True)
            contenders = {
                "orch_runtime": lambda: orch_direct(rt, rootfs, tmp),
                "orch_runtime_writable": lambda: orch_direct(rt, rootfs, tmp, readonly=False),
                "orch_runtime_volumes": lambda: orch_direct(rt, rootfs, tmp, readonly=False,
                                                            mounts=mounts),
                "volume_bookkeeping": lambda: bookkeeping(store, rootfs),
                "orch_run_cli": lambda: orch_cli(env),
                "runc": lambda: runc_run(bundle),
            }
            samples: dict[str, list[float]] = {name: [] for name in contenders}
            for i in range(n + 3):  # the first three warm caches for everyone
                for name, run in contenders.items():
                    elapsed = run()
                    if i >= 3:
                        samples[name].append(elapsed)
        rt.cleanup()
    med = {k: median_ms(v) for k, v in samples.items()}
    print(f"iterations={n}")
    for k, v in med.items():
        print(f"{k}_median_ms={v:.1f}")
    extra = med["orch_runtime_volumes"] - med["orch_runtime_writable"]
    print(f"volume_start_ms={med['orch_runtime_volumes']:.2f} without={med['orch_runtime_writable']:.2f} "
          f"extra={extra:.2f}")
    print(f"volume_bookkeeping_ms={med['volume_bookkeeping']:.3f}")
    print(f"writable_ratio_vs_runc={med['orch_runtime_writable'] / med['runc']:.2f}")
    print(f"runtime_ratio_vs_runc={med['orch_runtime'] / med['runc']:.2f}")
    print(f"cli_ratio_vs_runc={med['orch_run_cli'] / med['runc']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
