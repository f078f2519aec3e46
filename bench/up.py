"""Time `orch up --nodes 3` after a first run (state and images exist).

    python bench/up.py     (root)   -> prints up_s=X last
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import RUN, orch, up_args


def main() -> int:
    state = tempfile.mkdtemp(prefix="orch-bench-")
    samples = []
    try:
        for i in range(3):
            t0 = time.perf_counter()
            orch(*up_args(3, state))
            elapsed = time.perf_counter() - t0
            orch("down", "--run-dir", RUN)
            if i:  # the first run creates the state (etcd data, images)
                samples.append(elapsed)
            print(f"run {i + 1}: {elapsed:.2f} s")
    finally:
        orch("down", "--run-dir", RUN, "--purge", check=False)
        import shutil

        shutil.rmtree(state, ignore_errors=True)
    print(f"up_s={min(samples):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
