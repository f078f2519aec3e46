"""The CLI tells a control plane it cannot reach from one that answered
UNAVAILABLE with a reason (etcd down, etcd without quorum): the reason is
shown, not "cannot reach"."""

from __future__ import annotations

from orch.cli.client import Agent, Cluster
from orch.cli.h2grpc import UNAVAILABLE, RpcError


def test_a_reason_the_server_gave_is_shown() -> None:
    api = Cluster(["127.0.0.1:1"])
    said = RpcError(UNAVAILABLE, "the cluster store (etcd) is unavailable: no quorum; try again later")
    assert api.translate(said).message == said.details
    broken = RpcError(UNAVAILABLE, "connection refused", transport=True)
    assert api.translate(broken).message.startswith("cannot reach the control plane at 127.0.0.1:1")
    assert api.translate(RpcError(UNAVAILABLE, "")).message.startswith("cannot reach")


def test_the_agent_alike() -> None:
    agent = Agent("unix:///nonexistent/agent.sock")
    assert agent.translate(RpcError(UNAVAILABLE, "supervisor restarting")).message == "supervisor restarting"
    broken = agent.translate(RpcError(UNAVAILABLE, "x", transport=True))
    assert broken.message.startswith("cannot reach the orch agent")
