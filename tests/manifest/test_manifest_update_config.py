"""Rolling updates in a manifest: ``deploy.update_config``, ``deploy.rollback_config``
(Compose's keys, swarmkit's defaults) and ``x-orch.rebalance``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_manifest_roundtrip import update_configs

from model.manifest import ManifestError, check_specs, dump_manifest, json_schema, parse_manifest
from model.objects import ServiceSpec, UpdateConfig

HEAD = "services:\n  web:\n    image: busybox\n"


def _service(body: str) -> ServiceSpec:
    """The one service of a manifest whose ``web`` service has ``body`` (indented below it)."""
    indented = "".join(f"    {line}\n" for line in body.splitlines())
    (spec,) = parse_manifest(HEAD + indented, "m.yaml")
    return spec


def test_absent_keys_are_swarmkits_defaults() -> None:
    spec = _service("deploy: {replicas: 2}")
    expected = UpdateConfig(parallelism=1, delay=0.0, failure_action="pause", monitor=5.0,
                            max_failure_ratio=0.0, order="stop-first")
    assert spec.update_config == spec.rollback_config == expected
    assert spec.rebalance is True


def test_every_key_in_block_style() -> None:
    spec = _service(
        "deploy:\n"
        "  update_config:\n"
        "    parallelism: 0\n"
        "    delay: 1m30s\n"
        "    failure_action: rollback\n"
        "    monitor: 500ms\n"
        "    max_failure_ratio: 0.25\n"
        "    order: start-first\n"
        "  rollback_config:\n"
        "    parallelism: 4\n"
        "    delay: 2\n"
        "    failure_action: continue\n"
        "    monitor: 0s\n"
        "    max_failure_ratio: 1\n"
        "    order: stop-first\n"
        "x-orch:\n"
        "  rebalance: false\n")
    assert spec.update_config == UpdateConfig(0, 90.0, "rollback", 0.5, 0.25, "start-first")
    assert spec.rollback_config == UpdateConfig(4, 2.0, "continue", 0.0, 1.0, "stop-first")
    assert isinstance(spec.rollback_config.max_failure_ratio, float)
    assert spec.rebalance is False


def test_absent_keys_keep_their_defaults_beside_given_ones() -> None:
    spec = _service("deploy:\n  update_config: {order: start-first}\n  rollback_config: {parallelism: 0}")
    assert spec.update_config == UpdateConfig(order="start-first")
    assert spec.rollback_config == UpdateConfig(parallelism=0)


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("10s", 10.0), ("1.5", 1.5), ("1h", 3600.0),
                                               ("24h", 86400.0), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    spec = _service(f"deploy: {{update_config: {{delay: {text}, monitor: {text}}}}}")
    assert spec.update_config.delay == spec.update_config.monitor == pytest.approx(seconds)


def test_an_empty_mapping_is_the_defaults() -> None:
    spec = _service("deploy: {update_config: {}, rollback_config: {}}")
    assert spec.update_config == spec.rollback_config == UpdateConfig()


def test_rebalance_true_is_the_default_spelled_out() -> None:
    assert _service("x-orch: {rebalance: true}").rebalance is True


_UPDATE = "services.web.deploy.update_config"
_ROLLBACK = "services.web.deploy.rollback_config"

# (case id, body below the service, exact str(error)); every error is on line 6,
# where the value is written.
ERRORS: list[tuple[str, str, str]] = [
    ("parallelism_negative", "update_config:\n  parallelism: -1",
     f"m.yaml:6: {_UPDATE}.parallelism: expected a non-negative integer, got -1"),
    ("parallelism_fraction", "update_config:\n  parallelism: 1.5",
     f"m.yaml:6: {_UPDATE}.parallelism: expected a non-negative integer, got 1.5"),
    ("parallelism_word", "rollback_config:\n  parallelism: all",
     f"m.yaml:6: {_ROLLBACK}.parallelism: expected a non-negative integer, got 'all'"),
    ("parallelism_too_large", "update_config:\n  parallelism: 2147483648",
     f"m.yaml:6: {_UPDATE}.parallelism: 2147483648 is too large: at most 2147483647"),
    ("delay_negative", "update_config:\n  delay: -1s",
     f"m.yaml:6: {_UPDATE}.delay: expected a duration such as 5s, 1m30s, 500ms or a number of seconds, "
     "got '-1s'"),
    ("delay_too_long", "update_config:\n  delay: 25h",
     f"m.yaml:6: {_UPDATE}.delay: '25h' is too long: at most 24h"),
    ("monitor_word", "rollback_config:\n  monitor: soon",
     f"m.yaml:6: {_ROLLBACK}.monitor: expected a duration such as 5s, 1m30s, 500ms or a number of "
     "seconds, got 'soon'"),
    ("monitor_too_long", "update_config:\n  monitor: 86401",
     f"m.yaml:6: {_UPDATE}.monitor: 86401 is too long: at most 24h"),
    ("failure_action_unknown", "update_config:\n  failure_action: stop",
     f"m.yaml:6: {_UPDATE}.failure_action: expected one of pause, continue, rollback, got 'stop'"),
    ("rollback_failure_action_rollback", "rollback_config:\n  failure_action: rollback",
     f"m.yaml:6: {_ROLLBACK}.failure_action: expected pause or continue, got 'rollback': a failed "
     "rollback has no earlier spec to go back to (Compose and Docker allow only pause or continue here)"),
    ("rollback_failure_action_unknown", "rollback_config:\n  failure_action: retry",
     f"m.yaml:6: {_ROLLBACK}.failure_action: expected one of pause, continue, got 'retry'"),
    ("max_failure_ratio_above_one", "update_config:\n  max_failure_ratio: 1.5",
     f"m.yaml:6: {_UPDATE}.max_failure_ratio: expected a number from 0 to 1 (a fraction, such as 0.1), "
     "got 1.5"),
    ("max_failure_ratio_negative", "update_config:\n  max_failure_ratio: -0.1",
     f"m.yaml:6: {_UPDATE}.max_failure_ratio: expected a number from 0 to 1 (a fraction, such as 0.1), "
     "got -0.1"),
    ("max_failure_ratio_nan", "rollback_config:\n  max_failure_ratio: .nan",
     f"m.yaml:6: {_ROLLBACK}.max_failure_ratio: expected a number from 0 to 1 (a fraction, such as 0.1), "
     "got .nan"),
    ("max_failure_ratio_percent", "update_config:\n  max_failure_ratio: 10%",
     f"m.yaml:6: {_UPDATE}.max_failure_ratio: expected a number from 0 to 1 (a fraction, such as 0.1), "
     "got '10%'"),
    ("max_failure_ratio_boolean", "update_config:\n  max_failure_ratio: true",
     f"m.yaml:6: {_UPDATE}.max_failure_ratio: expected a number from 0 to 1 (a fraction, such as 0.1), "
     "got true"),
    ("order_underscore", "update_config:\n  order: start_first",
     f"m.yaml:6: {_UPDATE}.order: expected one of stop-first, start-first, got 'start_first'"),
    ("unknown_key", "update_config:\n  paralelism: 2",
     f"m.yaml:6: {_UPDATE}.paralelism: unknown key 'paralelism' (did you mean 'parallelism'?)"),
    ("not_a_mapping", "rollback_config:\n  - pause",
     f"m.yaml:6: {_ROLLBACK}: expected a mapping, got a list"),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_bad_values_name_the_line_and_field(body: str, expected: str) -> None:
    indented = "".join(f"      {line}\n" for line in body.splitlines())
    with pytest.raises(ManifestError) as caught:
        parse_manifest(HEAD + "    deploy:\n" + indented, "m.yaml")
    assert str(caught.value) == expected
    assert "\n" not in str(caught.value)


def test_bad_rebalance_names_the_line_and_field() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(HEAD + "    x-orch:\n      rebalance: no thanks\n", "m.yaml")
    assert str(caught.value) == ("m.yaml:5: services.web.x-orch.rebalance: expected true or false, "
                                 "got 'no thanks'")


def test_dump_leaves_the_defaults_out() -> None:
    text = dump_manifest([_service("deploy: {replicas: 2}")])
    assert "update_config" not in text and "rollback_config" not in text and "rebalance" not in text


def test_dump_writes_only_what_differs() -> None:
    spec = dataclasses.replace(_service(""), update_config=UpdateConfig(parallelism=0, order="start-first"),
                               rollback_config=UpdateConfig(monitor=0.0), rebalance=False)
    service = yaml.safe_load(dump_manifest([spec]))["services"]["web"]
    assert service["deploy"]["update_config"] == {"parallelism": 0, "order": "start-first"}
    assert service["deploy"]["rollback_config"] == {"monitor": 0.0}
    assert service["x-orch"] == {"rebalance": False}
    assert parse_manifest(dump_manifest([spec]))[0] == spec


@settings(max_examples=100, deadline=None)
@given(update_configs(rollback=False), update_configs(rollback=True), st.booleans())
def test_round_trip(update: UpdateConfig, rollback: UpdateConfig, rebalance: bool) -> None:
    spec = dataclasses.replace(_service(""), update_config=update, rollback_config=rollback,
                               rebalance=rebalance)
    assert parse_manifest(dump_manifest([spec])) == [spec]
    assert check_specs([spec], "services_json") == [spec]


WEB = ServiceSpec(name="web", image="busybox")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"update_config": UpdateConfig(parallelism=-1)},
         "services_json: services.web.deploy.update_config.parallelism: expected a non-negative integer"),
        ({"update_config": UpdateConfig(max_failure_ratio=2.0)},
         "services_json: services.web.deploy.update_config.max_failure_ratio: expected a number from 0 to 1"),
        ({"update_config": UpdateConfig(failure_action="abort")},  # type: ignore[arg-type]
         "services_json: services.web.deploy.update_config.failure_action: expected one of pause, continue"),
        ({"rollback_config": UpdateConfig(failure_action="rollback")},
         "services_json: services.web.deploy.rollback_config.failure_action: expected pause or continue, "
         "got 'rollback'"),
        ({"rollback_config": UpdateConfig(monitor=-5.0)},
         "services_json: services.web.deploy.rollback_config.monitor: expected a duration"),
        ({"rollback_config": UpdateConfig(order="random")},  # type: ignore[arg-type]
         "services_json: services.web.deploy.rollback_config.order: expected one of stop-first, start-first"),
        ({"rebalance": "no"},
         "services_json: services.web.x-orch.rebalance: expected true or false, got 'no'"),
    ],
)
def test_specs_without_a_manifest_are_held_to_the_same_rules(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        check_specs([dataclasses.replace(WEB, **change)], "services_json")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_the_schema_takes_the_same_values() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())

    def errors(deploy: dict[str, Any], x_orch: dict[str, Any] | None = None) -> list[str]:
        service: dict[str, Any] = {"image": "busybox", "deploy": deploy}
        if x_orch is not None:
            service["x-orch"] = x_orch
        return [e.message for e in validator.iter_errors({"services": {"web": service}})]

    good = {"parallelism": 0, "delay": "10s", "failure_action": "rollback", "monitor": 5,
            "max_failure_ratio": 0.5, "order": "start-first"}
    assert errors({"update_config": good, "rollback_config": {**good, "failure_action": "continue"}},
                  {"rebalance": False}) == []
    assert errors({"rollback_config": {"failure_action": "rollback"}})
    assert errors({"update_config": {"max_failure_ratio": 1.5}})
    assert errors({"update_config": {"parallelism": -1}})
    assert errors({"update_config": {"order": "start_first"}})
    assert errors({}, {"rebalance": "no"})
