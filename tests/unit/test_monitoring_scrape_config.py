"""`orch up --monitoring`'s Prometheus configuration scrapes every etcd member."""

from __future__ import annotations

from orch.cluster.monitoring import config
from orch.cluster.record import ClusterRecord, EtcdMember


def _targets(rec: ClusterRecord) -> list[str]:
    jobs = {job["job_name"]: job for job in config(rec, ["127.0.0.1:9101"])["scrape_configs"]}
    return [t for sc in jobs["etcd"]["static_configs"] for t in sc["targets"]] if "etcd" in jobs else []


def test_every_member_is_scraped() -> None:
    members = [EtcdMember(f"etcd{i}", f"/s/etcd/etcd{i}", f"http://127.0.0.1:{18100 + i}",
                          f"http://127.0.0.1:{18110 + i}", 100 + i) for i in range(3)]
    rec = ClusterRecord("/s", "/r", "127.0.0.1:18000", "127.0.0.1:18000", etcd_members=members,
                        etcd_pid=100, etcd_endpoint=members[0].client)
    assert _targets(rec) == ["127.0.0.1:18100", "127.0.0.1:18101", "127.0.0.1:18102"]


def test_a_record_from_before_members_scrapes_its_one_etcd() -> None:
    rec = ClusterRecord("/s", "/r", "127.0.0.1:18000", "127.0.0.1:18000", etcd_pid=7,
                        etcd_endpoint="http://127.0.0.1:2379")
    assert _targets(rec) == ["127.0.0.1:2379"]
    assert _targets(ClusterRecord("/s", "/r", "a:1", "a:1")) == []
