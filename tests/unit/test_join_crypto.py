"""common.join: a request proves its token without carrying it; what a
joining control plane is given opens only with its token and request."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import join

SECRET = "0123456789abcdefghijklmno"
CSR = b"-----BEGIN CERTIFICATE REQUEST-----\nxyz\n-----END CERTIFICATE REQUEST-----\n"


def test_a_proof_checks_out_under_its_secret_and_never_contains_it() -> None:
    proof = join.proof(SECRET, "node", CSR, "n1", "", 1000.0)
    join.check_proof(SECRET, proof, "node", CSR, "n1", "", 1000.0, now=1010.0)
    assert SECRET.encode() not in proof


@pytest.mark.parametrize("field", ["secret", "role", "csr", "name", "node_id", "time"])
def test_a_proof_of_anything_else_is_refused(field: str) -> None:
    args = {"secret": SECRET, "role": "node", "csr": CSR, "name": "n1", "node_id": "", "time": 1000.0}
    proof = join.proof(args["secret"], args["role"], args["csr"], args["name"], args["node_id"], args["time"])
    changed = dict(args, **{field: {"secret": "x" * 25, "role": "controlplane", "csr": CSR + b"!",
                                    "name": "n2", "node_id": "abc", "time": 1001.0}[field]})
    with pytest.raises(join.JoinError, match="wrong join token"):
        join.check_proof(changed["secret"], proof, changed["role"], changed["csr"], changed["name"],
                         changed["node_id"], changed["time"], now=1000.0)


def test_an_old_request_is_refused_naming_the_clocks() -> None:
    proof = join.proof(SECRET, "node", CSR, "n1", "", 1000.0)
    with pytest.raises(join.JoinError, match="check the clocks"):
        join.check_proof(SECRET, proof, "node", CSR, "n1", "", 1000.0, now=1000.0 + join.PROOF_WINDOW + 1)


@given(data=st.binary(max_size=4096), context=st.binary(min_size=1, max_size=64))
def test_sealed_data_opens_with_its_secret_and_context_only(data: bytes, context: bytes) -> None:
    sealed = join.seal_for(SECRET, data, context)
    assert join.open_from(SECRET, sealed, context) == data
    if data:
        assert data not in sealed or len(data) < 4
    with pytest.raises(join.JoinError):
        join.open_from("y" * 25, sealed, context)
    with pytest.raises(join.JoinError):
        join.open_from(SECRET, sealed, context + b"!")
