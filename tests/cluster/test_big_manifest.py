"""Manifests larger than one HTTP/2 frame (16 KiB) deploy through the real
control plane: the CLI frames its request and honours the server's windows.
Each service's last environment variable must reach its container."""

from __future__ import annotations

import json
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


def many_services(path: Path, count: int, size: int) -> tuple[Path, list[str]]:
    """``count`` services, each with environment enough that the file is ``size``."""
    names = [f"many{i:03d}" for i in range(count)]
    per = size // count
    lines = ["services:"]
    for name in names:
        lines += [f"  {name}:", "    image: busybox",
                  '    command: ["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 1; done"]',
                  "    stop_grace_period: 1s", "    environment:"]
        lines += [f"      - VAR_{j:03d}={'x' * 40}" for j in range(per // 55)]
    path.write_text("\n".join(lines) + "\n")
    return path, names


def test_a_300_kib_manifest_of_many_services_deploys(cluster: LocalCluster, tmp_path: Path) -> None:
    path, names = many_services(tmp_path / "many.yaml", 100, 300 * KB)
    assert path.stat().st_size >= 290 * KB
    try:
        deployed = cluster.orch("deploy", "-f", str(path), timeout=300)
        assert deployed.stdout.startswith("deployed many000, many001")
        services = {s["spec"]["name"] for s in json.loads(cluster.orch("services", "-o", "json").stdout)}
        assert set(names) <= services
        wait_for(lambda: sum(1 for t in cluster.tasks() if t["service"] in names
                             and t["state"] == "running") == len(names), timeout=120)
    finally:
        cluster.orch("rm", *names, check=False)
        wait_for(lambda: all(t["service"] not in names for t in cluster.tasks()), timeout=120)
