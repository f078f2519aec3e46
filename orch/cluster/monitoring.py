"""Debian's Prometheus for a local cluster: ``orch up --monitoring [PORT]``.

It listens on 127.0.0.1:PORT (9090 by default) and scrapes, every 5 s:

- every control-plane replica's ``/metrics`` (loopback, each replica's API
  port + ``METRICS_PORT_OFFSET``);
- every agent's ``/metrics``, found through the control planes' HTTP
  service discovery (``/sd/agents``, which lists the ready nodes that serve
  metrics): nodes that join or leave come and go without a restart; each
  replica answers the same list, and Prometheus drops the duplicates;
- every etcd member's ``/metrics`` (its plain-HTTP metrics listener, beside
  its mutual-TLS client URL).

The alert rules in ``examples/prometheus/alerts.yml`` are loaded when they
exist, so ``orch up --monitoring`` shows them firing. Its data lives under
``<state>/prometheus`` and goes with ``orch down --purge``; the process is
recorded (``ClusterRecord.prometheus_pid``) and stopped by ``orch down``
with etcd and the registry.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from orch.cluster.record import ClusterRecord, UpError, etcd_members

DEFAULT_PORT = 9090
SCRAPE_INTERVAL = "5s"
ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "examples" / "prometheus" / "alerts.yml"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise UpError("--monitoring needs Debian's prometheus: apt-get install prometheus "
                      "(./scripts/setup installs it)")
    return found


def config(rec: ClusterRecord, metrics: list[str]) -> dict[str, Any]:
    """The scrape configuration (a dict, written as JSON: YAML is a superset)."""
    urls = [m.metrics or m.client for m in etcd_members(rec)]
    etcd = [e for e in (u.split("://", 1)[-1].rstrip("/") for u in urls) if e]
    scrape = [
        {"job_name": "orch-controlplane", "static_configs": [{"targets": metrics}]},
        {"job_name": "orch-agent",
         "http_sd_configs": [{"url": f"http://{m}/sd/agents", "refresh_interval": SCRAPE_INTERVAL}
                             for m in metrics]},
    ]
    if etcd:
        scrape.append({"job_name": "etcd", "static_configs": [{"targets": etcd}]})
    out: dict[str, Any] = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": scrape,
    }
    if ALERTS.exists():
        out["rule_files"] = [str(ALERTS)]
    return out


def prepare(rec: ClusterRecord, metrics: list[str], port: int) -> tuple[list[str], str]:
    """The command line that runs Prometheus for ``rec``, and its log file."""
    root = Path(rec.state_dir) / "prometheus"
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "prometheus.yml"
    path.write_text(json.dumps(config(rec, metrics), indent=2) + "\n")
    # Paths as arguments of their own: `orch down` knows the cluster's
    # processes by an argument naming one of its directories.
    cmd = [prometheus_binary(), "--config.file", str(path), "--storage.tsdb.path", str(root / "data"),
           f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=2d",
           "--log.level=warn"]
    return cmd, str(root / "prometheus.log")


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=0.5) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def query(port: int, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """An instant query's result (its ``data.result``); raises ValueError with
    Prometheus' own error for an expression it refuses."""
    from urllib.error import HTTPError
    from urllib.parse import urlencode

    url = f"http://127.0.0.1:{port}/api/v1/query?{urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body = json.load(reply)
    except HTTPError as err:
        body = json.load(err)
    if body.get("status") != "success":
        raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    return list(body["data"]["result"])
