"""`orch inspect`, `orch image inspect` and `orch system df` against a real
agent: typed messages on the wire, the documents users knew on stdout."""

from __future__ import annotations

import json

from tests.agent.conftest import Engine


def test_inspect_shows_the_container_its_request_and_its_runtime_spec(engine: Engine) -> None:
    engine.orch("run", "-d", "--name", "det1", "--memory", "64Mi", "-l", "k=v", "-p", "18090:80",
                "busybox", "sleep", "60")
    try:
        [doc] = json.loads(engine.orch("inspect", "det1").stdout)
        assert (doc["name"], doc["state"]) == ("det1", "running") and "busybox" in doc["image"]
        assert doc["pid"] > 0 and doc["command"] == ["sleep", "60"]
        assert doc["ports"] == [{"host_port": 18090, "container_port": 80, "protocol": "tcp",
                                 "host_ip": ""}]
        assert doc["labels"] == {"k": "v"} and doc["log_path"].endswith("/container.log")
        assert doc["config"]["memory_bytes"] == 64 << 20 and doc["config"]["command"] == {
            "values": ["sleep", "60"]}
        spec = doc["spec"]
        assert spec["id"] == doc["id"] and spec["process"]["args"] == ["sleep", "60"]
        assert spec["resources"]["memory_bytes"] == 64 << 20
        assert spec["network"]["address"] == doc["ip_address"]
    finally:
        engine.orch("rm", "-f", "det1")


def test_image_inspect_and_df(engine: Engine) -> None:
    [image] = json.loads(engine.orch("image", "inspect", "busybox").stdout)
    assert image["id"].startswith("sha256:") and image["diff_ids"] and image["size"] > 0
    assert set(image["config"]) >= {"cmd", "entrypoint", "env", "working_dir", "labels"}
    rows = json.loads(engine.orch("system", "df", "-o", "json").stdout)
    assert any(row["id"] == image["id"] and row["logical_size"] > 0 for row in rows[:-1])
    total = rows[-1]
    assert total["ref"] == "total" and total["disk"] >= total["unique"] > 0
    table = engine.orch("system", "df").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "ID", "SIZE", "UNIQUE", "SHARED"] and table[-1].startswith("total")
