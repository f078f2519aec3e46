"""Liveness beacons: the format, and the control plane's ear on real UDP sockets."""

from __future__ import annotations

import socket
import threading

from hypothesis import given
from hypothesis import strategies as st

from common.beacon import Sender, opened, parsed, sealed
from controlplane.beacon import BeaconListener

KEY = bytes(range(32))


@given(st.text(min_size=1, max_size=60).filter(lambda s: len(s.encode()) < 256),
       st.integers(min_value=0, max_value=2**64 - 1))
def test_a_sealed_beacon_parses_back_and_opens_with_its_key_only(node_id: str, seq: int) -> None:
    data = sealed(KEY, node_id, seq)
    fields = parsed(data)
    assert fields is not None
    got_id, got_seq, body, mac = fields
    assert (got_id, got_seq) == (node_id, seq)
    assert opened(KEY, body, mac)
    assert not opened(bytes(32), body, mac)


@given(st.binary(max_size=300))
def test_garbage_never_parses_into_an_authentic_beacon(data: bytes) -> None:
    fields = parsed(data)
    assert fields is None or not opened(KEY, fields[2], fields[3])


def test_the_ear_takes_sealed_fresh_beacons_of_open_sessions_only() -> None:
    heard: list[str] = []
    ear = BeaconListener(["127.0.0.1"], 0, heard.append)
    try:
        key = ear.open("n1")
        assert ear.take(sealed(key, "n1", 1)) == "n1"
        assert ear.take(sealed(key, "n1", 1)) is None  # a replay
        assert ear.take(sealed(key, "n1", 2)) == "n1"
        assert ear.take(sealed(bytes(32), "n1", 3)) is None  # forged
        assert ear.take(sealed(key, "n2", 3)) is None  # no session
        newer = ear.open("n1")  # a new session voids the old key
        assert ear.take(sealed(key, "n1", 9)) is None
        ear.close("n1", key)  # an old session's end leaves the new one
        assert ear.take(sealed(newer, "n1", 1)) == "n1"
        ear.close("n1", newer)
        assert ear.take(sealed(newer, "n1", 2)) is None
    finally:
        ear.stop()


def test_a_sender_reaches_the_ear_over_udp() -> None:
    got = threading.Event()
    heard: list[str] = []

    def on_beat(node_id: str) -> None:
        heard.append(node_id)
        if len(heard) >= 3:
            got.set()

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    ear = BeaconListener(["127.0.0.1"], port, on_beat).start()
    sender = Sender("127.0.0.1", port, ear.open("n1"), "n1", interval=0.01).start()
    try:
        assert got.wait(10)
        assert set(heard) == {"n1"}
    finally:
        sender.stop()
        ear.stop()
