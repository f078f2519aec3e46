"""Build cache: a 10-instruction Containerfile built cold, then rebuilt unchanged.

The cold build runs every step (3 RUN containers, 2 COPY layers, 5 metadata
steps); each rebuild should answer all 10 steps from the cache. Prints
``cold_s=X`` and, after N rebuilds, ``rebuild_s=Y`` (the last one) plus the
median of the rebuilds.

    python bench/build_cache.py [N]        (root; default N=5)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import busybox_rootfs, tempdir
from nodeagent.images.build import build
from nodeagent.images.store import ImageStore
from nodeagent.runtime import LinuxRuntime

CONTAINERFILE = """\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt | wc -c > size
RUN mkdir -p /data && echo ready > /data/state
COPY config.ini /etc/app.ini
RUN test -s size
LABEL bench=build-cache
CMD ["cat", "/app/size"]
"""


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempdir() as tmp_name:
        tmp = Path(tmp_name)
        rootfs = busybox_rootfs(tmp / "busybox")
        store = ImageStore(str(tmp / "state"))
        store.import_rootfs(str(rootfs), "busybox:latest")
        ctx = tmp / "ctx"
        (ctx / "src").mkdir(parents=True)
        for i in range(20):
            (ctx / "src" / f"f{i}.txt").write_text(f"file {i}\n" * 100)
        (ctx / "config.ini").write_text("[app]\nmode=bench\n")
        (ctx / "Containerfile").write_text(CONTAINERFILE)
        rt = LinuxRuntime()
        lines: list[str] = []

        def once() -> float:
            lines.clear()
            t0 = time.perf_counter()
            build(store, str(ctx), str(ctx / "Containerfile"), "bench:1", {}, None, False, rt,
                  lines.append)
            return time.perf_counter() - t0

        cold = once()
        rebuilds = [once() for _ in range(rounds)]
        cached = sum(1 for ln in lines if ln.startswith(" ---> CACHED"))
        print(f"cold_s={cold:.3f}")
        print(f"rebuild_median_s={statistics.median(rebuilds):.3f} cached_steps={cached}/9 (all after FROM)")
        print(f"rebuild_s={rebuilds[-1]:.3f}")
        from nodeagent.runtime.cgroups import remove_parent_if_empty

        remove_parent_if_empty(rt.cgroups, "orch/build")
        rt.cleanup()


if __name__ == "__main__":
    main()
