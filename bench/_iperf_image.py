"""An image for the network benchmark: busybox plus the host's iperf3
(Debian's) with the shared libraries it links, imported on every node of the
bench cluster.

The rootfs is examples/images/busybox.sh's tree with ``/usr/bin/iperf3`` and
each library ``ldd`` names copied to the same path (the dynamic loader
included), so the binary runs unchanged inside a container.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from bench._cluster import ENV
from bench._common import ORCH, busybox_rootfs

IPERF = "/usr/bin/iperf3"
_LIBRARY = re.compile(r"(/\S+)")


def libraries(binary: str) -> list[str]:
    """The absolute paths ``ldd`` lists for ``binary`` (vdso has none)."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    return [m.group(1) for line in out.splitlines() if (m := _LIBRARY.search(line))]


def iperf_rootfs(dest: Path) -> Path:
    root = busybox_rootfs(dest)
    for path in [IPERF, *libraries(IPERF)]:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)  # the file, not the distro's symlink
    return root


def import_on_nodes(rootfs: Path, name: str, run_dirs: list[str]) -> None:
    """``orch image import`` on every node's agent at once (as `orch up`
    does for busybox): a local image, so the deploy pins nothing."""
    procs = [subprocess.Popen([*ORCH, "image", "import", str(rootfs), name],
                              env={**ENV, "ORCH_HOST": f"unix://{run_dir}/agent.sock"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for run_dir in run_dirs]
    errors = []
    for proc in procs:
        err = proc.communicate()[1]
        if proc.returncode:
            errors.append(err.strip() or f"exit {proc.returncode}")
    if errors:
        raise SystemExit(f"importing {name} failed: {errors[0]}")
