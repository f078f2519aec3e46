"""Container start latency: orch's runtime, `orch run --rm`, and `runc run`.

Each iteration runs /bin/true from the same busybox rootfs with no network
(create -> start -> exit -> cleanup) once per contender, alternating, so
background noise hits all three alike. Prints medians, then the ratios.

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
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec


def orch_direct(rt: LinuxRuntime, rootfs: Path, work: Path) -> float:
    cid = secrets.token_hex(32)
    # volatile, as for `orch run --rm`: the writable layer dies with the container
    spec = ContainerSpec(id=cid, name=cid[:12], hostname=cid[:12], bundle_dir=str(work / cid),
                         rootfs=RootfsSpec([str(rootfs)], volatile=True),
                         process=ProcessSpec(args=["/bin/true"]), cgroup_name=f"orch/{cid}")
    t0 = time.perf_counter()
    c = rt.create(spec, Stdio())
    rt.start(c)
    status = rt.wait(c)
    rt.remove(c)
    shutil.rmtree(spec.bundle_dir, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    assert status is not None and status.exit_code == 0, status
    return elapsed


def orch_cli(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*ORCH_FAST, "run", "--rm", "--network", "none", "bench-busybox", "/bin/true"],
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


ORCH_FAST = [str(Path(sys.executable).parent / "orch")]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempdir() as tmp_s:
        tmp = Path(tmp_s)
        rootfs = busybox_rootfs(tmp / "rootfs")
        bundle = runc_bundle(rootfs, tmp)
        rt = LinuxRuntime()
        with agent(tmp / "agent") as env:
            subprocess.run([*ORCH, "image", "import", str(rootfs), "bench-busybox"], check=True,
                           env=env, capture_output=True)
            samples: dict[str, list[float]] = {"orch_runtime": [], "orch_run_cli": [], "runc": []}
            for _ in range(3):  # warm caches for everyone
                orch_direct(rt, rootfs, tmp)
                orch_cli(env)
                runc_run(bundle)
            for _ in range(n):
                samples["orch_runtime"].append(orch_direct(rt, rootfs, tmp))
                samples["orch_run_cli"].append(orch_cli(env))
                samples["runc"].append(runc_run(bundle))
        rt.cleanup()
    med = {k: median_ms(v) for k, v in samples.items()}
    print(f"iterations={n}")
    for k, v in med.items():
        print(f"{k}_median_ms={v:.1f}")
    print(f"runtime_ratio_vs_runc={med['orch_runtime'] / med['runc']:.2f}")
    print(f"cli_ratio_vs_runc={med['orch_run_cli'] / med['runc']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
