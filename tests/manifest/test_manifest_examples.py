"""The shipped example manifests parse to the specs they describe, and match the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from model.manifest import json_schema, load_manifest
from model.objects import NetworkAttachment, Placement, PortConfig, Resources, RestartPolicy, ServiceSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MI = 1024 * 1024
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]
DEFAULT = [NetworkAttachment("examples_default")]  # the stack is named after the directory


def test_web_example() -> None:
    assert load_manifest(str(EXAMPLES / "web.yaml")) == [
        ServiceSpec(
            name="web",
            image="busybox",
            command=HTTPD,
            ports=[PortConfig(8080, 80, "tcp")],
            labels={"com.example.app": "hello"},
            replicas=3,
            limits=Resources(cpus=0.25, memory_bytes=32 * MI),
            reservations=Resources(cpus=0.1, memory_bytes=16 * MI),
            stop_grace_period=1.0,
            networks=DEFAULT,
        )
    ]


def test_stack_example() -> None:
    specs = {spec.name: spec for spec in load_manifest(str(EXAMPLES / "stack.yaml"))}
    assert list(specs) == ["web", "api", "worker", "cache"]
    small = Resources(cpus=0.25, memory_bytes=32 * MI)  # the x-limits anchor
    shop = [NetworkAttachment("shop_default")]  # named by the manifest's name:

    assert specs["web"] == ServiceSpec(
        name="web", image="busybox", command=HTTPD, ports=[PortConfig(8080, 80)],
        labels={"com.example.tier": "front"}, replicas=3, limits=small,
        placement=Placement(preferences=["node.labels.zone"]),
        restart_policy=RestartPolicy(condition="any", delay=2.0), networks=shop,
    )

    api = specs["api"]
    assert api.entrypoint == ["/bin/sh", "-c"]
    assert api.command is not None and len(api.command) == 1 and "nc -l -p 9000" in api.command[0]
    assert api.env == ["GREETING=hello", "LOG_LEVEL=info"]
    assert api.ports == [PortConfig(9000, 9000, "tcp")]
    assert (api.replicas, api.stop_grace_period) == (2, 5.0)
    assert api.limits == Resources(cpus=1.0, memory_bytes=128 * MI)
    assert api.reservations == Resources(cpus=0.25, memory_bytes=64 * MI)
    assert api.placement == Placement(constraints=["node.labels.role!=edge"])
    assert api.restart_policy == RestartPolicy("on-failure", delay=0.5, max_attempts=5, window=90.0)

    assert specs["worker"] == ServiceSpec(
        name="worker", image="busybox", command=["sh", "-c", "while true; do date; sleep 30; done"],
        env=["INTERVAL=30"], mode="global", limits=small, networks=shop,
    )

    assert specs["cache"] == ServiceSpec(
        name="cache", image="busybox", command=["nc", "-ll", "-p", "6379", "-e", "cat"],
        ports=[PortConfig(6379, 6379)], replicas=2,
        placement=Placement(max_replicas_per_node=1),
        restart_policy=RestartPolicy("on-failure", delay=5.0, max_attempts=3),
        binpack=True, networks=shop,
    )


def test_published_schema_file_is_current() -> None:
    """Regenerate with: python -m model.manifest > examples/schema/orch-manifest.schema.json"""
    published = json.loads((EXAMPLES / "schema" / "orch-manifest.schema.json").read_text())
    assert published == json_schema()


def test_examples_validate_against_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(json_schema())
    validator = jsonschema.Draft202012Validator(json_schema())
    for path in sorted(EXAMPLES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        assert [error.message for error in validator.iter_errors(document)] == [], path.name
