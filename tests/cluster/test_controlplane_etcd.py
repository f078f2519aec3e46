"""The one etcd launcher in its two owners: `orch up` runs etcd as a daemon
with compaction, a quota and mutual TLS (https client and peer URLs, a
plain-http metrics URL); `orch controlplane` without --etcd runs its own
etcd in its state dir, on mutual TLS as well, serves deploys on it, and
leaves no etcd behind when it stops or is killed. Real etcd, real
control-plane processes, the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.etcd import COMPACTION_RETENTION, QUOTA_BYTES, SNAPSHOT_COUNT
from orch.cluster.sweep import argv
from orch.pids import alive, wait_exit
from tests.cluster.conftest import LocalCluster, wait_for


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _metric(endpoint: str, name: str) -> float:
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in {endpoint}/metrics"
    return float(found.group(1))


def test_orch_ups_etcd_runs_with_compaction_and_a_quota(cluster: LocalCluster) -> None:
    rec = cluster.record()
    [member] = rec["etcd_members"]
    args = argv(rec["etcd_pid"])
    assert args and args[0].endswith("/etcd") and _flag(args, "--data-dir") == str(cluster.state / "etcd")
    assert _flag(args, "--auto-compaction-mode") == "periodic"
    assert _flag(args, "--auto-compaction-retention") == COMPACTION_RETENTION
    assert int(_flag(args, "--quota-backend-bytes")) == QUOTA_BYTES
    assert int(_flag(args, "--snapshot-count")) == SNAPSHOT_COUNT
    assert _flag(args, "--log-level") == "warn"
    # Mutual TLS for clients and peers, with the member's certificate from the
    # cluster CA; metrics alone in plain http, on their own listener.
    pki_dir = rec["pki_dir"]
    assert rec["etcd_endpoint"] == member["client"] == _flag(args, "--listen-client-urls")
    assert member["client"].startswith("https://127.0.0.1:") and member["peer"].startswith("https://127.0.0.1:")
    assert _flag(args, "--listen-peer-urls") == member["peer"]
    assert member["metrics"].startswith("http://127.0.0.1:")
    assert _flag(args, "--listen-metrics-urls") == member["metrics"]
    assert "--client-cert-auth" in args and "--peer-client-cert-auth" in args
    for flag in ("--trusted-ca-file", "--peer-trusted-ca-file"):
        assert _flag(args, flag) == f"{pki_dir}/ca.crt"
    for flag, ext in (("--cert-file", "crt"), ("--peer-cert-file", "crt"), ("--key-file", "key"),
                      ("--peer-key-file", "key")):
        assert _flag(args, flag) == f"{pki_dir}/etcd-{member['name']}.{ext}"
    # What etcd itself says it enforces:
    assert _metric(member["metrics"], "etcd_server_quota_backend_bytes") == QUOTA_BYTES


# ---- orch controlplane with an etcd of its own -------------------------------------

class SoloPlane:
    """`orch controlplane` without --etcd, in ``tmp``; the CLI reaches it on
    its unix socket."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.socket = str(tmp / "cp.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        self.env["ORCH_CLUSTER_RUN_DIR"] = "/nonexistent/orch-run"

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with open(self.tmp / "cp.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orch", "controlplane", "--listen", f"127.0.0.1:{port}",
                 "--socket", self.socket, "--state-dir", str(self.state), "--id", "solo"],
                stdout=log, stderr=log, env=self.env)
        wait_for(lambda: self.orch("services", check=False).returncode == 0 or self._exited(), 60)
        assert not self._exited(), f"the control plane exited: {self.log()}"

    def _exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def log(self) -> str:
        return (self.tmp / "cp.log").read_text(errors="replace")[-3000:]

    def orch(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "orch", "-C", f"unix://{self.socket}", *args],
                              env=self.env, text=True, capture_output=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"orch {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def etcd_pids(self) -> list[int]:
        """Running etcd processes whose data dir is this control plane's."""
        data = str(self.state / "etcd")
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                args = argv(int(entry))
                if args and args[0].endswith("/etcd") and "--data-dir" in args \
                        and _flag(args, "--data-dir") == data and alive(int(entry)):
                    found.append(int(entry))
        return found

    def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.etcd_pids():  # only if a test failed: they are this test's
            os.kill(pid, signal.SIGKILL)
            wait_exit(pid, 10)


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[SoloPlane]:
    if os.geteuid() != 0:
        pytest.skip("the control plane's default socket and state want root")
    plane = SoloPlane(tmp_path)
    try:
        yield plane
    finally:
        plane.cleanup()


def _deploy(plane: SoloPlane) -> None:
    manifest = plane.tmp / "web.yaml"
    manifest.write_text(textwrap.dedent("""
        services:
          web:
            image: busybox
            command: ["sleep", "3600"]
            deploy:
              replicas: 2
    """))
    plane.orch("deploy", "-f", str(manifest), "--detach")


def _services(plane: SoloPlane) -> list[str]:
    return sorted(s.get("name") or s["spec"]["name"]
                  for s in json.loads(plane.orch("services", "-o", "json").stdout))


def test_controlplane_without_etcd_runs_its_own_and_stops_it(solo: SoloPlane) -> None:
    solo.start()
    pids = solo.etcd_pids()
    assert len(pids) == 1, pids
    args = argv(pids[0])
    assert int(_flag(args, "--quota-backend-bytes")) == QUOTA_BYTES
    assert _flag(args, "--auto-compaction-mode") == "periodic"
    # Its own etcd serves mutual TLS too (a certificate from the control
    # plane's CA, in its pki dir); only the metrics listener is plain http.
    pki_dir = solo.state / "pki"
    for flag in ("--listen-client-urls", "--advertise-client-urls", "--listen-peer-urls"):
        assert _flag(args, flag).startswith("https://127.0.0.1:"), flag
    assert _flag(args, "--listen-metrics-urls").startswith("http://127.0.0.1:")
    urls = [u for u in args if u.startswith("http")]
    assert urls and all(u.startswith(("https://127.0.0.1:", "http://127.0.0.1:")) for u in urls)
    assert "--client-cert-auth" in args and _flag(args, "--trusted-ca-file") == str(pki_dir / "ca.crt")
    assert _flag(args, "--cert-file") == str(pki_dir / "etcd.crt")
    assert _metric(_flag(args, "--listen-metrics-urls"), "etcd_server_quota_backend_bytes") == QUOTA_BYTES
    _deploy(solo)
    assert _services(solo) == ["web"]
    # The leader's orchestrator made its tasks (there is no node to run them).
    wait_for(lambda: len(json.loads(solo.orch("ps", "web", "-o", "json").stdout)) == 2, 30)
    assert solo.stop(signal.SIGTERM) == 0
    assert wait_exit(pids[0], 15) and not solo.etcd_pids()


def test_its_state_survives_a_restart_and_a_kill_leaves_no_etcd(solo: SoloPlane) -> None:
    solo.start()
    _deploy(solo)
    assert solo.stop(signal.SIGTERM) == 0
    solo.start()  # the same state dir: the same etcd data
    assert _services(solo) == ["web"]
    pids = solo.etcd_pids()
    assert len(pids) == 1, pids
    solo.stop(signal.SIGKILL)  # no chance to stop etcd itself: the kernel tells etcd
    assert wait_exit(pids[0], 15) and not solo.etcd_pids()
