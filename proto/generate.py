"""Regenerate the gRPC stubs from proto/*.proto, or check they are current.

    python proto/generate.py          # rewrite proto/*_pb2*.py(i)
    python proto/generate.py --check  # exit 1 if the committed stubs are stale
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def generate(out: Path) -> list[Path]:
    """Run protoc for every .proto into ``out`` (laid out like the repo root)."""
    sources = sorted(PROTO_DIR.glob("*.proto"))
    (out / "proto").mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    for src in sources:
        rel = src.relative_to(ROOT)
        code = protoc.main(
            [
                "protoc",
                f"-I{ROOT}",
                f"-I{include}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                str(rel),
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed for {rel}")
    return sorted((out / "proto").glob("*_pb2*.py*"))


def main(argv: list[str]) -> int:
    check = "--check" in argv
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        stale = []
        for path in generated:
            target = PROTO_DIR / path.name
            if check:
                if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                    stale.append(target.name)
            else:
                shutil.copyfile(path, target)
        if check and stale:
            print(f"stale gRPC stubs: {', '.join(stale)}; run: python proto/generate.py")
            return 1
    if not check:
        print(f"generated {len(generated)} files in proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
