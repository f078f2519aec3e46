"""Specs that come without a manifest (``Deploy``'s ``services``) are held to the
manifest's rules by ``check_specs``: valid ones pass unchanged, others are refused
naming the source and the field."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given, settings
from test_manifest_roundtrip import manifests

from model.manifest import ManifestError, check_specs
from model.objects import NetworkAttachment, PortConfig, Resources, RestartPolicy, ServiceSpec, spec_from_dict


@settings(max_examples=100, deadline=None)
@given(manifests())
def test_valid_specs_pass_unchanged(specs: list[ServiceSpec]) -> None:
    assert check_specs(specs, "services_json") == specs


WEB = ServiceSpec(name="web", image="busybox")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"replicas": 10**12}, "services_json: services.web.deploy.replicas: 1000000000000 is too large: "
                               "at most 100000 replicas per service (orch's limit)"),
        ({"replicas": -1}, "services_json: services.web.deploy.replicas: expected a non-negative integer, "
                           "got -1"),
        ({"stop_grace_period": 1e18}, "services_json: services.web.stop_grace_period: 1.0e+18 is too long: "
                                      "at most 24h"),
        ({"stop_grace_period": math.inf}, "services_json: services.web.stop_grace_period: expected a "
                                          "duration such as 5s, 1m30s, 500ms or a number of seconds, "
                                          "got .inf"),
        ({"restart_policy": RestartPolicy(delay=-1.0)}, "services_json: services.web.deploy.restart_policy."
                                                        "delay: expected a duration"),
        ({"limits": Resources(cpus=1e-7)}, "services_json: services.web.deploy.resources.limits.cpus: "
                                           "invalid cpu quantity"),
        ({"limits": Resources(cpus=math.nan)}, "services_json: services.web.deploy.resources.limits.cpus: "
                                               "invalid cpu quantity"),
        ({"limits": Resources(memory_bytes=2**70)}, "services_json: services.web.deploy.resources.limits."
                                                    "memory: invalid memory quantity"),
        ({"limits": Resources(pids=-5)}, "services_json: services.web.deploy.resources.limits.pids: "
                                         "invalid pids limit -5"),
        ({"name": "Web"}, "services_json: services.Web: invalid service name 'Web'"),
        ({"name": ""}, 'services_json: services[""]: invalid service name'),
        ({"image": "Busybox"}, "services_json: services.web.image: invalid image reference"),
        ({"command": []}, "services_json: services.web.command: the command is empty"),
        ({"env": ["A=\0"]}, "services_json: services.web.environment[0]: the value of 'A' holds a NUL"),
        ({"labels": {"orch.task": "x"}}, 'services_json: services.web.labels["orch.task"]: label '
                                         "'orch.task' is reserved"),
        ({"ports": [PortConfig(80, 80, "sctp", "host")]},
         "services_json: services.web.ports[0].protocol: unknown protocol 'sctp'"),
        ({"ports": [PortConfig(80, 80, "tcp", "bridge")]},  # type: ignore[arg-type]
         "services_json: services.web.ports[0].mode: unknown port mode 'bridge'"),
        ({"ports": [PortConfig(80, 80)]}, "services_json: services.web.ports[0]: an ingress port needs the "
                                          "service on a network"),
        ({"ports": [PortConfig(80, 80)], "networks": [NetworkAttachment("n")], "endpoint_mode": "dnsrr"},
         "services_json: services.web.ports[0]: an ingress port cannot be used with endpoint_mode: dnsrr"),
        ({"networks": [NetworkAttachment("-n")]}, "services_json: networks.net1.name: invalid network name "
                                                  "'-n'"),
        ({"networks": [NetworkAttachment("n", ["bad_alias"])]},
         "services_json: services.web.networks.n.aliases[0]: invalid alias 'bad_alias'"),
        ({"networks": [NetworkAttachment("n"), NetworkAttachment("n")]},
         "services_json: services.web.networks[1]: network 'n' is listed twice"),
        ({"endpoint_mode": "ipvs"}, "services_json: services.web.deploy.endpoint_mode: expected one of vip, "
                                    "dnsrr, got 'ipvs'"),
        ({"ports": [PortConfig(0, 80)]}, "services_json: services.web.ports[0]: port '0' is out of range"),
        ({"mode": "everywhere"}, "services_json: services.web.deploy.mode: 'everywhere' is not a value a "
                                 "manifest can hold"),
        ({"storage_size": -1}, "services_json: services.web.storage_opt.size: expected a memory size of "
                               "at least 1 byte, got -1"),
    ],
)
def test_invalid_specs_are_refused_with_the_field(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        check_specs([dataclasses.replace(WEB, **change)], "services_json")
    assert str(caught.value).startswith(expected), str(caught.value)
    assert caught.value.line == 0  # the text was generated: its lines mean nothing to the sender


def test_a_service_given_twice_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"^services_json: services\.web: the service is given twice"):
        check_specs([WEB, WEB], "services_json")


def test_a_spec_of_the_wrong_types_is_refused() -> None:
    spec = spec_from_dict({"name": "web", "image": "busybox", "labels": ["a", "b"]})
    with pytest.raises(ManifestError, match=r"^services_json: "):
        check_specs([spec], "services_json")
    spec = spec_from_dict({"name": "web", "image": "busybox", "replicas": "3"})
    with pytest.raises(ManifestError, match=r"services\.web\.deploy\.replicas: expected a non-negative"):
        check_specs([spec], "services_json")


def test_a_global_services_replicas_are_ignored() -> None:
    spec = dataclasses.replace(WEB, mode="global", replicas=7)
    assert check_specs([spec], "services_json") == [dataclasses.replace(spec, replicas=1)]
