"""model.health: a container's health from its probes' results (pure), and
how checks are written, merged with the image's and carried on the wire."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model import wire
from model.health import (
    FIRST_PROBE,
    HEALTHY,
    LOG_KEEP,
    OUTPUT_MAX,
    STARTING,
    UNHEALTHY,
    HealthCheck,
    HealthResult,
    HealthState,
    HttpProbe,
    TcpProbe,
    from_image_config,
    merged,
)


def _result(ok: bool, output: str = "") -> HealthResult:
    return HealthResult(start=0.0, end=0.0, exit_code=0 if ok else 1, output=output)


@given(retries=st.integers(1, 5), start_period=st.sampled_from([0.0, 10.0]),
       outcomes=st.lists(st.tuples(st.booleans(), st.floats(0, 5), st.text(max_size=20)), max_size=40))
def test_status_follows_the_rules(retries: int, start_period: float,
                                  outcomes: list[tuple[bool, float, str]]) -> None:
    state = HealthState(HealthCheck(test=("CMD", "true"), retries=retries, start_period=start_period),
                        started=0.0)
    now, succeeded, streak = 0.0, False, 0
    for ok, step, output in outcomes:
        now += step
        state.record(_result(ok, output), now)
        if ok:
            succeeded, streak = True, 0
        elif succeeded or now >= start_period:
            streak += 1
        assert state.failing_streak == streak
        if not succeeded:
            assert state.status in (STARTING, UNHEALTHY)
        assert (state.status == UNHEALTHY) == (streak >= retries)
        if succeeded and streak < retries:
            assert state.status == HEALTHY
        assert len(state.log) <= LOG_KEEP


def test_starting_until_the_first_success_and_failures_in_the_start_period_do_not_count() -> None:
    state = HealthState(HealthCheck(test=("CMD", "x"), retries=1, start_period=10, start_interval=1,
                                    interval=30), started=100.0)
    assert state.status == STARTING and state.next_delay(100.0) == 1
    assert not state.record(_result(False), 105.0)  # in the start period: no count
    assert state.status == STARTING and state.failing_streak == 0
    assert state.record(_result(True), 106.0) and state.status == HEALTHY
    assert state.next_delay(106.0) == 30  # once healthy: the interval
    assert state.record(_result(False), 107.0) and state.status == UNHEALTHY  # counts, even in the period
    assert state.record(_result(True), 108.0) and state.status == HEALTHY


def test_socket_probes_ramp_up_from_the_start_until_the_first_success() -> None:
    check = HealthCheck(http=HttpProbe(port=80), start_period=10, start_interval=0.1, interval=30)
    state = HealthState(check, started=0.0)
    delays = []
    for i in range(6):
        delays.append(state.next_delay(i * 0.01))
        state.record(_result(False), i * 0.01)
    assert delays == pytest.approx([FIRST_PROBE, 2 * FIRST_PROBE, 4 * FIRST_PROBE, 8 * FIRST_PROBE, 0.1, 0.1])
    state.record(_result(True), 1.0)
    assert state.next_delay(1.0) == 30
    # exec probes keep Docker's start interval from the start
    assert HealthState(HealthCheck(test=("CMD", "x"), start_period=10, start_interval=0.1),
                       started=0.0).next_delay(0.0) == 0.1
    # out of the start period: the interval
    assert HealthState(dataclasses.replace(check, start_period=0), started=0.0).next_delay(0.0) == 30


def test_the_log_keeps_five_results_capped_at_4_kib() -> None:
    state = HealthState(HealthCheck(test=("CMD", "x")), started=0.0)
    for i in range(8):
        state.record(_result(True, "é" * OUTPUT_MAX + str(i)), float(i))
    assert len(state.log) == LOG_KEEP
    assert all(len(r.output.encode()) <= OUTPUT_MAX for r in state.log)
    assert state.to_dict()["status"] == HEALTHY and len(state.to_dict()["log"]) == LOG_KEEP


def test_docker_defaults_and_argv() -> None:
    hc = HealthCheck(test=("CMD-SHELL", "curl -f localhost"))
    assert (hc.effective_interval(), hc.effective_timeout(), hc.effective_retries(),
            hc.effective_start_period(), hc.effective_start_interval()) == (30, 30, 3, 0, 5)
    assert hc.argv() == ["/bin/sh", "-c", "curl -f localhost"]
    assert HealthCheck(test=("CMD", "a", "b c")).argv() == ["a", "b c"]
    assert not HealthCheck(test=("NONE",)).runs and not HealthCheck(test=("CMD", "x"), disable=True).runs
    assert HealthCheck(http=HttpProbe(80)).runs and HealthCheck(tcp=TcpProbe(6379)).runs


def test_the_images_check_fills_what_the_container_leaves_unset() -> None:
    image = from_image_config({"Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                                               "Retries": 4}})
    assert image == HealthCheck(test=("CMD-SHELL", "true"), interval=5.0, retries=4)
    assert merged(None, image) == image
    assert merged(HealthCheck(interval=1.0), image) == HealthCheck(test=("CMD-SHELL", "true"), interval=1.0,
                                                                   retries=4)
    assert merged(HealthCheck(test=("NONE",)), image) is None  # --no-healthcheck
    assert merged(HealthCheck(disable=True), image) is None
    probe = merged(HealthCheck(http=HttpProbe(8080, "/h")), image)
    assert probe is not None and probe.test == () and probe.http == HttpProbe(8080, "/h")
    assert probe.retries == 4
    assert merged(None, None) is None and from_image_config({}) is None


def test_a_check_survives_the_wire_and_the_store_form() -> None:
    for hc in (HealthCheck(), HealthCheck(test=("CMD", "x"), interval=0.5, timeout=2.0, retries=7,
                                          start_period=3.0, start_interval=0.25),
               HealthCheck(http=HttpProbe(80, "/healthz", 204)),
               HealthCheck(tcp=TcpProbe(5432), disable=True)):
        assert wire.healthcheck_from_pb(wire.healthcheck_to_pb(hc)) == hc
        assert HealthCheck.from_dict(hc.to_dict()) in (hc, None)
