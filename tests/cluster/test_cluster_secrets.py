"""Secrets and configs on a real cluster, through the real CLI: `orch secret`
and `orch config` create, ls, inspect (no secret's value; a config's) and rm;
a deployed service reads its secret at /run/secrets/NAME with the owner and
mode asked, on a tmpfs; the value is on no node's disk, nowhere in the
cluster's state (etcd's data, logs) and in no raw etcd read (etcdctl over
etcd's mutual TLS, as a control plane would read it); only the node
running the task has it; a secret in use is not removed; a changed value
rolls the tasks, and the new ones read it; the files go with the task."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from common.auth import write_private
from controlplane.etcd import EtcdTLS
from controlplane.trust import issue_local, load_ca
from tests.cluster.conftest import LocalCluster, wait_for

MANIFEST = textwrap.dedent("""\
    name: sec
    services:
      vault:
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
        stop_grace_period: 1s
        secrets:
          - db_password
          - {source: db_password, target: owned, uid: "1000", gid: "2000", mode: 0440}
        configs:
          - {source: app, target: /etc/app/app.conf}
        deploy:
          replicas: 1
          placement: {constraints: ["node.hostname == n1"]}
          update_config: {monitor: 1s}
    secrets:
      db_password: {file: ./db.txt}
    configs:
      app: {content: "level=info"}
    """)


def _node(cluster: LocalCluster, name: str) -> dict[str, Any]:
    return next(n for n in cluster.record()["nodes"] if n["name"] == name)


def _container_pid(cluster: LocalCluster, node: str, task_name: str) -> int:
    """The PID 1 of the task's container, as its node's agent shows it."""
    env = {**cluster.env, "ORCH_HOST": f"unix://{_node(cluster, node)['run_dir']}/agent.sock"}
    out = subprocess.run([sys.executable, "-m", "orch", "ps", "-o", "json"], env=env, text=True,
                         capture_output=True, check=True, timeout=60).stdout
    return int(next(ct["pid"] for ct in json.loads(out) if ct["name"] == task_name))


def _grep(value: bytes, *dirs: str) -> list[str]:
    """Files under ``dirs`` holding ``value`` (symlinks not followed, sockets skipped)."""
    proc = subprocess.run(["grep", "-rlF", "--devices=skip", "-e", value.decode(), *dirs],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.split()


def _task_dirs(cluster: LocalCluster, node: str) -> list[str]:
    """The tasks with secrets and configs on ``node`` (its agent's tmpfs dirs)."""
    root = Path(_node(cluster, node)["run_dir"]) / "secrets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _mounted(path: str) -> str:
    """The filesystem type mounted at ``path`` on this host, or ""."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return fields[fields.index("-") + 1]
    return ""


def _etcdctl(cluster: LocalCluster, tmp: Path, *args: str) -> bytes:
    """A raw etcdctl call to the cluster's first etcd member, over its mutual
    TLS, with a control plane's client certificate of the cluster's CA (made
    here from the CA in the state's pki dir)."""
    rec = cluster.record()
    member = rec["etcd_members"][0]
    pki_dir = Path(rec["pki_dir"])
    ca = load_ca(str(pki_dir))
    assert ca is not None
    cert, key = issue_local(ca, "secrets-test", "controlplane")
    write_private(str(tmp / "client.crt"), cert)
    write_private(str(tmp / "client.key"), key)
    tls = EtcdTLS(str(pki_dir / "ca.crt"), str(tmp / "client.crt"), str(tmp / "client.key"))
    assert member["client"].startswith("https://")
    return subprocess.run([str(Path(sys.executable).parent / "etcdctl"), "--endpoints", member["client"],
                           *tls.etcdctl_args(), *args], capture_output=True, timeout=60, check=True).stdout


def _versions(cluster: LocalCluster, name: str) -> list[int]:
    [doc] = json.loads(cluster.orch("secret", "inspect", name).stdout)
    return [v["version"] for v in doc["versions"]]


def _vault(cluster: LocalCluster) -> dict[str, Any]:
    running = wait_for(lambda: cluster.running("vault"), timeout=60)
    assert len(running) == 1 and running[0]["node"] == "n1", running
    return dict(running[0])


def _exec(cluster: LocalCluster, task: str, script: str) -> str:
    return cluster.orch("exec", task, "sh", "-c", script).stdout


def test_secret_and_config_commands(cluster: LocalCluster, tmp_path: Path) -> None:
    value = secrets.token_hex(16).encode()
    (tmp_path / "v").write_bytes(value)
    first = cluster.orch("secret", "create", "cli_secret", str(tmp_path / "v"), "-l",
                         "tier=back").stdout.strip()
    listed = json.loads(cluster.orch("secret", "ls", "-o", "json").stdout)
    assert [(s["name"], s["version"], s["labels"]) for s in listed if s["name"] == "cli_secret"] == [
        ("cli_secret", 1, {"tier": "back"})]
    shown = cluster.orch("secret", "inspect", "cli_secret").stdout
    [doc] = json.loads(shown)
    assert doc["id"] == first and doc["size"] == len(value) and "data" not in doc
    assert value.decode() not in shown
    # From stdin; another value is another version under the same name.
    again = subprocess.run([sys.executable, "-m", "orch", "secret", "create", "cli_secret", "-"],
                           input=b"other", env=cluster.env, capture_output=True, timeout=60, check=True)
    [doc] = json.loads(cluster.orch("secret", "inspect", "cli_secret").stdout)
    assert doc["id"] == again.stdout.decode().strip() and doc["version"] == 2
    # Version 1 stays only while something uses it: nothing does, so the
    # leader removes it (a second after the new version, or already has).
    assert [v["version"] for v in doc["versions"]] in ([1, 2], [2])
    wait_for(lambda: _versions(cluster, "cli_secret") == [2], timeout=30)
    # A config's value is shown.
    (tmp_path / "c").write_text("mode=fast\n")
    cluster.orch("config", "create", "cli_config", str(tmp_path / "c"))
    [conf] = json.loads(cluster.orch("config", "inspect", "cli_config").stdout)
    assert conf["data"] == "mode=fast\n"
    configs = json.loads(cluster.orch("config", "ls", "-o", "json").stdout)
    assert [c["name"] for c in configs] == ["cli_config"]
    # 500 KiB at most.
    (tmp_path / "big").write_bytes(b"x" * (500 * 1024))
    cluster.orch("secret", "create", "cli_big", str(tmp_path / "big"))
    (tmp_path / "bigger").write_bytes(b"x" * (500 * 1024 + 1))
    refused = cluster.orch("secret", "create", "cli_bigger", str(tmp_path / "bigger"), check=False)
    assert refused.returncode != 0 and "at most 512000 bytes (500 KiB)" in refused.stderr
    gone = cluster.orch("secret", "rm", "cli_secret", "cli_big", "nosuch", check=False)
    assert gone.returncode == 1 and "no such secret: nosuch" in gone.stderr
    cluster.orch("config", "rm", "cli_config")
    assert not any(s["name"].startswith("cli_") for s in json.loads(cluster.orch("secret", "ls", "-o",
                                                                                    "json").stdout))
    assert cluster.orch("config", "ls", "-q").stdout.strip() == ""


def test_a_service_reads_its_secret_and_a_new_value_rolls(cluster: LocalCluster, tmp_path: Path) -> None:
    value = ("pw-" + secrets.token_hex(16)).encode()
    (tmp_path / "db.txt").write_bytes(value)
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(MANIFEST)
    try:
        cluster.orch("deploy", "-f", str(manifest), timeout=180)
        task = _vault(cluster)
        tid = task["id"]
        name = f"vault.1.{tid[:8]}"  # the task's (and its container's) name
        out = _exec(cluster, tid, "cat /run/secrets/db_password; echo; stat -c '%u:%g %a' "
                                  "/run/secrets/db_password /run/secrets/owned; cat /etc/app/app.conf")
        assert out.splitlines() == [value.decode(), "0:0 444", "1000:2000 440", "level=info"]
        denied = cluster.orch("exec", tid, "sh", "-c", "echo x > /run/secrets/db_password", check=False)
        assert denied.returncode != 0  # read-only

        # A tmpfs in the container's own mount table, and on its node's.
        pid = _container_pid(cluster, "n1", name)
        mounts = Path(f"/proc/{pid}/mounts").read_text().splitlines()
        for target in ("/run/secrets/db_password", "/run/secrets/owned", "/etc/app/app.conf"):
            [line] = [m for m in mounts if m.split()[1] == target]
            device, _, fstype, options = line.split()[:4]
            assert (device, fstype) == ("tmpfs", "tmpfs") and options.split(",")[0] == "ro", line
        assert tid in _task_dirs(cluster, "n1")
        assert _mounted(str(Path(_node(cluster, "n1")["run_dir"]) / "secrets" / tid)) == "tmpfs"

        # Nowhere on disk: no node's state, no etcd data, no log; and only n1 has it, in memory.
        assert _grep(value, str(cluster.state)) == []
        assert _task_dirs(cluster, "n2") == [] and _task_dirs(cluster, "n3") == []
        assert _grep(value, _node(cluster, "n2")["run_dir"], _node(cluster, "n3")["run_dir"]) == []
        etcd = _etcdctl(cluster, tmp_path, "get", "--prefix", "/orch/")
        assert b"/orch/secrets/" in etcd and b"ciphertext" in etcd and value not in etcd

        # Inspect: metadata only, and who uses it; in use, it is not removed.
        shown = cluster.orch("secret", "inspect", "sec_db_password").stdout
        [doc] = json.loads(shown)
        assert value.decode() not in shown and doc["services"] == ["vault"] and doc["stack"] == "sec"
        assert doc["versions"][-1]["tasks"] == [name]
        [conf] = json.loads(cluster.orch("config", "inspect", "sec_app").stdout)
        assert conf["data"] == "level=info"
        refused = cluster.orch("secret", "rm", "sec_db_password", check=False)
        assert refused.returncode != 0 and "in use by service(s) vault" in refused.stderr

        # A new value: a new version, the task replaced by the rollout, the new one reads it.
        rotated = ("pw2-" + secrets.token_hex(16)).encode()
        (tmp_path / "db.txt").write_bytes(rotated)
        cluster.orch("deploy", "-f", str(manifest), timeout=180)
        fresh = wait_for(lambda: [t for t in cluster.running("vault") if t["id"] != tid], timeout=60)[0]
        assert _exec(cluster, fresh["id"], "cat /run/secrets/db_password") == rotated.decode()
        [doc] = json.loads(cluster.orch("secret", "inspect", "sec_db_password").stdout)
        assert [v["version"] for v in doc["versions"]] == [1, 2] and doc["version"] == 2
        wait_for(lambda: tid not in _task_dirs(cluster, "n1"), timeout=60)
        assert _grep(rotated, str(cluster.state)) == []
    finally:
        cluster.orch("rm", "vault", check=False)
    # The files go with the task; then the secret can go.
    wait_for(lambda: not [t for t in cluster.tasks("vault") if t["state"] in ("running", "starting")]
             if _has_service(cluster, "vault") else True, timeout=60)
    wait_for(lambda: _task_dirs(cluster, "n1") == [], timeout=60)
    wait_for(lambda: cluster.orch("secret", "rm", "sec_db_password", check=False).returncode == 0, timeout=60)
    cluster.orch("config", "rm", "sec_app")
    wait_for(lambda: cluster.orch("network", "rm", "sec_default", check=False).returncode == 0, timeout=60)


def _has_service(cluster: LocalCluster, name: str) -> bool:
    return any(s["spec"]["name"] == name for s in json.loads(cluster.orch("services", "-o", "json").stdout))


def test_a_deploy_reads_the_files_beside_its_manifest(cluster: LocalCluster, tmp_path: Path) -> None:
    """A missing file is named by the CLI before anything is sent."""
    (tmp_path / "stack.yaml").write_text(MANIFEST)
    failed = cluster.orch("deploy", "-f", str(tmp_path / "stack.yaml"), check=False)
    assert failed.returncode != 0 and "db.txt: cannot read the secret" in failed.stderr
    assert not _has_service(cluster, "vault")
    assert os.path.exists(tmp_path / "stack.yaml")
