"""Manifests larger than one HTTP/2 frame (16 KiB) deploy through the real
control plane: the CLI frames its request and honours the server's windows.
Each service's last environment variable must reach its container."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.conftest import LocalCluster, wait_for

KB = 1024
ENV_COUNT = 350  # about 17.5 KiB of environment: over a frame by itself
LAST = f"BIG_{ENV_COUNT - 1:04d}"


def big_manifest(path: Path, name: str, size: int) -> Path:
    """One service with a long environment list, padded with comment lines to ``size``."""
    say_last = f"echo last=${LAST}; trap 'exit 0' TERM; while true; do sleep 1; done"
    service = ["services:", f"  {name}:", "    image: busybox", f'    command: ["sh", "-c", "{say_last}"]',
               "    stop_grace_period: 1s", "    environment:"]
    service += [f"      - BIG_{i:04d}={'v' * 32}" for i in range(ENV_COUNT)]
    service += ["    deploy:", "      replicas: 1"]
    text = "\n".join(service) + "\n"
    comment = "# " + "c" * 77 + "\n"
    text = comment * max(0, (size - len(text)) // len(comment) + 1) + text
    path.write_text(text)
    return path


@pytest.mark.parametrize("size", [17 * KB, 200 * KB])
def test_a_manifest_over_16_kib_deploys(cluster: LocalCluster, tmp_path: Path, size: int) -> None:
    name = f"big{size // KB}"
    path = big_manifest(tmp_path / f"{name}.yaml", name, size)
    assert path.stat().st_size >= size
    try:
        deployed = cluster.orch("deploy", "-f", str(path), timeout=180)
        assert f"deployed {name}" in deployed.stdout

        def said_last() -> bool:
            logs = cluster.orch("logs", name, "--tail", "5").stdout
            return f"last={'v' * 32}" in logs

        wait_for(said_last, timeout=60)
    finally:
        cluster.orch("rm", name, check=False)
        wait_for(lambda: all(t["service"] != name for t in cluster.tasks()), timeout=60)
