"""The CLI-facing gRPC API: one servicer, ``ClusterAPI``, made of its parts.

- ``deploy``: the writes: deploy (a manifest, parsed here, or specs), scale
  and remove services, with registry tags pinned to digests; node drain,
  activate and labels.
- ``networks``: create, list, get and remove overlay networks; the networks
  a deploy makes for its stack.
- ``secrets``: create, list, inspect and remove secrets and configs (values
  sealed under the cluster's key, ``controlplane.envelope``, and never
  answered, but a config's); the versions a deploy pins; on the leader, the
  removal of versions nothing uses.
- ``proxy``: logs and exec, proxied to the agents over mutual TLS.
- ``trust``: node removal (revoking its certificate), user
  certificates, join tokens.
- ``stats``: running tasks' resource use, one StatsAll call per node.
- ``events``: the Events and EventBatches streams, fed by the informer.
- ``reads``: list and get services, tasks and nodes; info.
- ``lookups``: finding the object a request names; reading one's own writes.

Writes go straight to the store with compare-and-swap; the controllers on the
leader react through their watch. Reads come from the informer's cache.

Composition, not mixins: each part is a class built with only what it uses
(the proxy and the event hub never see the store; reads never write), so a
part's dependencies are its constructor's arguments, a part can be built and
tested alone, and no part can reach another's state through ``self``.
``ClusterAPI`` is the servicer gRPC sees: one short method per RPC, so the
whole API surface reads in one place, each handing its call to its part.
Parts log through ``structlog`` with the RPC's name bound as ``method`` and
the service, task or node the call names (``controlplane.logctx``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

import grpc

from common.tls import ServerTLS
from controlplane.controllers.ipam import DEFAULT_POOL
from controlplane.envelope import Kek
from controlplane.store import Informer, Store
from controlplane.trust import Trust
from model.wire import network_to_pb
from proto import agent_pb2 as pb
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

from .deploy import Deployer
from .events import EVENT_BATCH, EventHub
from .networks import NetworkRefused, Networks
from .proxy import AgentProxy
from .reads import VERSION, Reads
from .rollouts import Rollouts
from .secrets import Collector, SecretRefused, Secrets
from .trust import TrustAPI

__all__ = ["EVENT_BATCH", "VERSION", "ClusterAPI"]


class ClusterAPI(cpb_grpc.ClusterAPIServicer):
    def __init__(self, store: Store, informer: Informer, replica_id: str,
                 is_leader: Callable[[], bool], leader_id: Callable[[], str | None], *,
                 network_pool: str = DEFAULT_POOL, reserved_ports: frozenset[int] = frozenset(),
                 kek: Kek | None = None, trust: Trust | None = None,
                 node_tls: ServerTLS | None = None) -> None:
        self.store = store
        self.informer = informer
        self.networks = Networks(store, informer, ipaddress.IPv4Network(network_pool))
        self.secrets = Secrets(store, informer, kek)
        # Removes the secret versions nothing uses, on the leader; the server starts it.
        self.collector = Collector(store, informer, is_leader)
        self.deployer = Deployer(store, informer, self.networks, reserved_ports, self.secrets)
        self.rollouts = Rollouts(store, informer, self.networks, self.secrets)
        self.proxy = AgentProxy(informer, node_tls)
        self.trust = TrustAPI(store, informer, trust)
        from .stats import TaskStats

        self.stats = TaskStats(informer, self.proxy.agent)
        self.hub = EventHub(informer)
        self.reads = Reads(informer, replica_id, is_leader, leader_id)

    # ---- writes (deploy) -----------------------------------------------------

    def Deploy(self, request: cpb.DeployRequest, context: grpc.ServicerContext) -> cpb.DeployResponse:
        return self.deployer.deploy(request, context)

    def Scale(self, request: cpb.ScaleRequest, context: grpc.ServicerContext) -> cpb.Service:
        return self.deployer.scale(request, context)

    def RemoveService(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.RemoveResponse:
        return self.deployer.remove(request, context)

    def UpdateNode(self, request: cpb.UpdateNodeRequest, context: grpc.ServicerContext) -> cpb.Node:
        return self.deployer.update_node(request, context)

    def Plan(self, request: cpb.PlanRequest, context: grpc.ServicerContext) -> cpb.PlanResponse:
        return self.deployer.plan(request, context)

    def Rollback(self, request: cpb.RollbackRequest, context: grpc.ServicerContext) -> cpb.Service:
        return self.rollouts.rollback(request, context)

    def History(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.HistoryResponse:
        return self.rollouts.history(request, context)

    def UpdateService(self, request: cpb.UpdateServiceRequest, context: grpc.ServicerContext) -> cpb.Service:
        return self.rollouts.update(request, context)

    # ---- trust ---------------------------------------------------------------

    def RemoveNode(self, request: cpb.RemoveNodeRequest, context: grpc.ServicerContext) -> cpb.RemoveResponse:
        return self.trust.remove_node(request, context)

    def IssueCertificate(self, request: cpb.IssueCertificateRequest,
                         context: grpc.ServicerContext) -> cpb.IssueCertificateReply:
        return self.trust.issue_certificate(request, context)

    def JoinTokens(self, request: cpb.JoinTokensRequest,
                   context: grpc.ServicerContext) -> cpb.JoinTokensReply:
        return self.trust.join_tokens(request, context)

    # ---- reads ---------------------------------------------------------------

    def GetService(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.Service:
        return self.reads.get_service(request, context)

    def ListServices(self, request: cpb.ListRequest,
                     context: grpc.ServicerContext) -> cpb.ListServicesResponse:
        return self.reads.list_services()

    def ListTasks(self, request: cpb.ListTasksRequest,
                  context: grpc.ServicerContext) -> cpb.ListTasksResponse:
        return self.reads.list_tasks(request, context)

    def ListNodes(self, request: cpb.ListRequest, context: grpc.ServicerContext) -> cpb.ListNodesResponse:
        return self.reads.list_nodes()

    def Info(self, request: cpb.InfoRequest, context: grpc.ServicerContext) -> cpb.InfoResponse:
        return self.reads.info()

    # ---- networks --------------------------------------------------------------

    def CreateNetwork(self, request: cpb.CreateNetworkRequest,
                      context: grpc.ServicerContext) -> cpb.Network:
        try:
            return network_to_pb(self.networks.create(request.name, request.subnet, dict(request.labels)))
        except NetworkRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    def ListNetworks(self, request: cpb.ListRequest,
                     context: grpc.ServicerContext) -> cpb.ListNetworksResponse:
        networks = sorted(self.informer.networks(), key=lambda n: n.name)
        return cpb.ListNetworksResponse(networks=[network_to_pb(n) for n in networks])

    def GetNetwork(self, request: cpb.NetworkRef, context: grpc.ServicerContext) -> cpb.Network:
        try:
            return network_to_pb(self.networks.find(request.name))
        except NetworkRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    def RemoveNetwork(self, request: cpb.NetworkRef, context: grpc.ServicerContext) -> cpb.RemoveResponse:
        try:
            return cpb.RemoveResponse(id=self.networks.remove(request.name).id)
        except NetworkRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    # ---- secrets and configs -------------------------------------------------------

    def CreateSecret(self, request: cpb.CreateSecretRequest, context: grpc.ServicerContext) -> cpb.Secret:
        try:
            return self.secrets.create(request)
        except SecretRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    def ListSecrets(self, request: cpb.SecretListRequest,
                    context: grpc.ServicerContext) -> cpb.ListSecretsResponse:
        try:
            return self.secrets.list(request)
        except SecretRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    def GetSecret(self, request: cpb.SecretRef, context: grpc.ServicerContext) -> cpb.Secret:
        try:
            return self.secrets.get(request)
        except SecretRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    def RemoveSecret(self, request: cpb.SecretRef, context: grpc.ServicerContext) -> cpb.RemoveResponse:
        try:
            return self.secrets.delete(request)
        except SecretRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    # ---- through the agents (proxy) ------------------------------------------

    def Logs(self, request: cpb.ServiceLogsRequest,
             context: grpc.ServicerContext) -> Iterator[cpb.TaskLogLine]:
        return self.proxy.logs(request, context)

    def LogBatches(self, request: cpb.ServiceLogsRequest,
                   context: grpc.ServicerContext) -> Iterator[cpb.TaskLogBatch]:
        return self.proxy.log_batches(request, context)

    def TaskStats(self, request: cpb.TaskStatsRequest,
                  context: grpc.ServicerContext) -> cpb.TaskStatsResponse:
        return self.stats.task_stats(request, context)

    def Exec(self, request: cpb.TaskExecRequest, context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        return self.proxy.exec(request, context)

    def ExecAttach(self, request_iterator: Iterator[cpb.TaskAttachInput],
                   context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        return self.proxy.exec_attach(request_iterator, context)

    # ---- events ----------------------------------------------------------------

    def Events(self, request: cpb.EventsRequest, context: grpc.ServicerContext) -> Iterator[cpb.Event]:
        return self.hub.events(request, context)

    def EventBatches(self, request: cpb.EventsRequest,
                     context: grpc.ServicerContext) -> Iterator[cpb.EventBatch]:
        return self.hub.event_batches(request, context)
