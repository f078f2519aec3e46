"""Registry push/pull throughput: orch vs skopeo on a ~100 MB 3-layer image.

Starts Debian's docker-registry on 127.0.0.1 (tmp storage), makes an image
of three layers of random (incompressible) files in an orch store, then times:

  push: orch push                vs  skopeo copy oci:<layout>:ref docker://...
  pull: orch pull (empty store)  vs  skopeo copy docker://... oci:<dir>:ref

orch's pull also unpacks each layer into its snapshot (checking it as it
goes) before it records the image, which skopeo's copy does not do; the
``pull+unpack`` line compares it with skopeo's copy followed by umoci unpack.

Each tool pushes to its own repository so neither finds the other's blobs.
The last line is ``pull_ratio_vs_skopeo=Z`` (orch pull time / skopeo's).

    python bench/registry.py [MB]      (default 100)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "registry"))

from registry_helpers import layered_image, random_tree, run_registry

from bench._common import tempdir
from nodeagent.images import ImageStore
from nodeagent.images.pull import pull
from nodeagent.images.push import push


def timed(fn: object, *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", *args], check=True, capture_output=True)


def main(total_mb: int) -> None:
    sizes = [total_mb * (1 << 20) * share // 10 for share in (5, 3, 2)]
    with tempdir() as tmp_s:
        tmp = Path(tmp_s)
        store = ImageStore(str(tmp / "src"))
        trees = [random_tree(tmp / f"l{i}", f"data{i}.bin", n) for i, n in enumerate(sizes)]
        image = layered_image(store, "bench:1", trees)
        print(f"image: {len(image.layer_digests)} layers, {image.size / 1e6:.1f} MB compressed")
        with run_registry(tmp / "registry") as reg:
            orch_push = timed(push, store, "bench:1", f"{reg.addr}/bench/orch:1")
            skopeo_push = timed(skopeo, "--dest-tls-verify=false", f"oci:{store.layout.path}:bench:1",
                                f"docker://{reg.addr}/bench/skopeo:1")
            orch_pull = timed(pull, ImageStore(str(tmp / "dst")), f"{reg.addr}/bench/orch:1")
            skopeo_pull = timed(skopeo, "--src-tls-verify=false", f"docker://{reg.addr}/bench/skopeo:1",
                                f"oci:{tmp / 'skopeo-dst'}:bench:1")
            umoci_unpack = timed(subprocess.run, ["umoci", "unpack", "--image",
                                                  f"{tmp / 'skopeo-dst'}:bench:1", str(tmp / "bundle")],
                                 check=True, capture_output=True)
    mb = image.size / 1e6
    print(f"push: orch {orch_push:.2f}s ({mb / orch_push:.0f} MB/s)   "
          f"skopeo {skopeo_push:.2f}s ({mb / skopeo_push:.0f} MB/s)")
    print(f"pull: orch {orch_pull:.2f}s ({mb / orch_pull:.0f} MB/s)   "
          f"skopeo {skopeo_pull:.2f}s ({mb / skopeo_pull:.0f} MB/s)")
    print(f"pull+unpack: orch {orch_pull:.2f}s   skopeo+umoci {skopeo_pull + umoci_unpack:.2f}s "
          f"(ratio {orch_pull / (skopeo_pull + umoci_unpack):.2f})")
    print(f"push_ratio_vs_skopeo={orch_push / skopeo_push:.2f}")
    print(f"pull_ratio_vs_skopeo={orch_pull / skopeo_pull:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
