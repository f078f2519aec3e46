"""The API's writes: deploy, scale and remove services; drain, activate and
label nodes. (Networks: ``networks``.)

A manifest's deploy first makes the networks its stack uses (idempotently:
one that exists is taken as it is), then the versions of its secrets and
configs whose values changed (``secrets``), pinning each service's grants
to them, then writes its services; a service's write carries the networks
it names (``Networks.touch``) and the secret versions it pins
(``Secrets.touch``), so none of them can be removed under it. Removing a
service never removes a network or a secret (the leader removes the
versions nothing uses any more).

Every write is a compare-and-swap on the object read from this replica's
cache, retried a few times when another write got there first (a heartbeat
flush, another client), then refused ABORTED ("try again"): a second run of
a handler (``apierrors`` retries while etcd is away) repeats or finds done
what the first did. A deploy pins each registry image's tag to its digest
before it is stored, so every node runs the same bytes. Each write returns
once this replica's cache holds it (``read_own_write``). A changed spec is
a new revision of the service and, when its tasks' spec changed, starts a
rollout that the leader paces (``controllers.rollout``); scaling is neither.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

import grpc
import structlog
from structlog.typing import FilteringBoundLogger

from controlplane.controllers import update_started
from controlplane.logctx import node_fields, service_fields
from controlplane.store import Informer, Op, Store, StoreConflict
from model.objects import Service, TaskState
from model.units import MAX_REPLICAS
from model.wire import WireError, availability_from_pb, node_to_pb, service_to_pb, spec_from_pb
from proto import cluster_pb2 as cpb

from .lookups import find_node, find_service, read_own_write
from .networks import NetworkRefused, Networks
from .secrets import SecretRefused, Secrets

log = structlog.get_logger("orch.api")

ATTEMPTS = 5  # compare-and-swap tries before a write is refused ABORTED
RETRY_PAUSE = 0.05  # seconds: lets this replica's cache catch up with the write that won


class Deployer:
    """Writes services and nodes; reads what it changes from ``informer``."""

    def __init__(self, store: Store, informer: Informer, networks: Networks,
                 reserved_ports: frozenset[int] = frozenset(), secrets: Secrets | None = None) -> None:
        self.store = store
        self.informer = informer
        self.networks = networks
        self.secrets = secrets if secrets is not None else Secrets(store, informer, None)
        # Ports of the control plane and etcd, which no service may publish on
        # every node (nodes' API ports are added from their addresses).
        self.reserved_ports = reserved_ports

    # ---- services ------------------------------------------------------------

    def deploy(self, request: cpb.DeployRequest, context: grpc.ServicerContext) -> cpb.DeployResponse:
        call = log.bind(method="Deploy")
        specs, stack = _specs(request, context)
        if stack is not None:
            for wanted in stack.networks:  # before the services that use them
                try:
                    self.networks.ensure(wanted, stack.name, stack.path)
                except NetworkRefused as err:
                    context.abort(err.code, err.message)
        specs = self._pin_secrets(specs, stack, request, context)
        out = [self._apply(spec, context, call) for spec in specs]
        return cpb.DeployResponse(services=[service_to_pb(s) for s in out])

    def plan(self, request: cpb.PlanRequest, context: grpc.ServicerContext) -> cpb.PlanResponse:
        """What ``deploy`` of the same manifest would do (``controlplane.plan``);
        nothing is written, and no image is resolved."""
        from controlplane.plan import plan

        asked = request.deploy
        specs = None
        if asked.manifest or asked.manifest_path or asked.services:
            specs, stack = _specs(asked, context)
            specs = self._pin_secrets(specs, stack, asked, context, dry_run=True)
        without = [find_node(self.informer, ref, context).id for ref in request.without]
        if specs is None and not without:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "nothing to plan: give a manifest or nodes to do without")
        nodes = {n.id: n for n in self.informer.nodes()}
        plans = plan({s.id: s for s in self.informer.services()}, self.informer.tasks(), nodes, specs,
                     time.time(), without)
        return cpb.PlanResponse(services=[cpb.ServicePlan(
            name=p.name, action=p.action,
            changes=[cpb.FieldChange(field=c.field, old=c.old, new=c.new) for c in p.changes],
            tasks=[cpb.PlannedTask(slot=t.slot, node=nodes[t.node_id].name if t.node_id else "",
                                   reason=t.reason) for t in p.tasks]) for p in plans])

    def scale(self, request: cpb.ScaleRequest, context: grpc.ServicerContext) -> cpb.Service:
        if not 0 <= request.replicas <= MAX_REPLICAS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"invalid replicas {request.replicas}: expected 0 to {MAX_REPLICAS} "
                          "(orch's maximum per service)")
        svc = find_service(self.informer, request.service, context)
        if svc.spec.mode != "replicated":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"service {svc.spec.name} is global: it runs one task per node")
        spec = dataclasses.replace(svc.spec, replicas=request.replicas)
        return service_to_pb(self._apply(spec, context, log.bind(method="Scale")))

    def remove(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.RemoveResponse:
        for attempt in range(ATTEMPTS):
            svc = find_service(self.informer, request.name, context)
            call = log.bind(method="RemoveService", **service_fields(svc))
            try:
                self.store.delete(svc)
                break
            except StoreConflict:
                # The leader wrote it meanwhile (its VIPs, say): remove what it is now.
                call.info("service changed meanwhile; reading it again")
                time.sleep(RETRY_PAUSE * (attempt + 1))
        else:
            context.abort(grpc.StatusCode.ABORTED, f"service {request.name} kept changing; try again")
        call.info("service removed")
        read_own_write(self.informer, svc, self.store.revision())
        return cpb.RemoveResponse(id=svc.id)

    def _apply(self, spec: Any, context: grpc.ServicerContext, call: FilteringBoundLogger) -> Service:
        """Create or update the service named by ``spec``; one that already
        has this spec is left as it is."""
        call = call.bind(service=spec.name)
        # Every way in has checked this already; a count beyond it would have
        # the orchestrator create tasks until the process runs out of memory.
        if not 0 <= spec.replicas <= MAX_REPLICAS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"service {spec.name}: {spec.replicas} replicas is beyond 0 to {MAX_REPLICAS}")
        self._check_ports(spec, context)
        spec = _pin(spec, context, call)
        for _ in range(ATTEMPTS):
            now = time.time()
            existing = next((s for s in self.informer.services() if s.spec.name == spec.name), None)
            if existing is not None and existing.spec == spec:
                return existing
            try:
                touched = self.networks.touch(spec) + self.secrets.touch(spec)
            except (NetworkRefused, SecretRefused) as err:
                context.abort(err.code, err.message)
            try:
                if existing is None:
                    created = self._write(Service(id=secrets.token_hex(12), spec=spec, created_at=now,
                                                  updated_at=now, note="deploy"), touched, create=True)
                    call.info("service created", service_id=created.id, image=spec.image,
                              replicas=spec.replicas)
                    return read_own_write(self.informer, created)
                updated = self._write(update_started(existing, spec, now), touched)
                status = updated.update_status
                call.info("service updated", service_id=updated.id, image=spec.image, replicas=spec.replicas,
                          revision=updated.revision, rollout=status.state if status is not None else "")
                return read_own_write(self.informer, updated)
            except StoreConflict:
                time.sleep(RETRY_PAUSE)
        call.warning("service kept changing; not written", attempts=ATTEMPTS)
        context.abort(grpc.StatusCode.ABORTED, f"service {spec.name} kept changing; try again")
        raise AssertionError

    def _pin_secrets(self, specs: list[Any], stack: Any, request: cpb.DeployRequest,
                     context: grpc.ServicerContext, dry_run: bool = False) -> list[Any]:
        """The specs with each secret and config grant pinned to its version
        (``Secrets.resolve``; ready specs: each secret's latest)."""
        if not any(s.secrets or s.configs for s in specs):
            return specs
        files = {(_FILE_KINDS.get(f.kind, "secret"), f.key): bytes(f.data) for f in request.files
                 if not f.env_file}
        try:
            if stack is not None:
                return self.secrets.resolve(stack, files, dry_run=dry_run)
            return self.secrets.pin(specs)
        except SecretRefused as err:
            context.abort(err.code, err.message)
        raise AssertionError

    def _write(self, service: Service, touched: list[Op], create: bool = False) -> Service:
        """One transaction: the service, and the networks it names as they were read."""
        [written, *_] = self.store.batch([Op.create(service) if create else Op.update(service), *touched])
        assert isinstance(written, Service)
        return written

    def _check_ports(self, spec: Any, context: grpc.ServicerContext) -> None:
        """An ingress port answers on every node: never on one of orch's own ports."""
        reserved = set(self.reserved_ports) | {
            int(port) for n in self.informer.nodes()
            if (port := n.address.rpartition(":")[2]).isascii() and port.isdigit()}
        for port in spec.ports:
            if port.mode == "ingress" and port.published in reserved:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"service {spec.name}: host port {port.published}/{port.protocol} is reserved "
                              "for orch (the control plane, etcd or a node's API): publish another port")

    # ---- nodes -----------------------------------------------------------------

    def _data_held(self, node_id: str) -> list[str]:
        return _data_held_by(self.informer.tasks(), node_id)

    def update_node(self, request: cpb.UpdateNodeRequest, context: grpc.ServicerContext) -> cpb.Node:
        """Set a node's availability (drain, pause, active) and add or remove
        labels. A drain of a node that holds node-local volume data of
        running services' tasks is refused unless ``allow_data_loss``, which
        lets those tasks start elsewhere (``Node.data_released``, cleared
        when the node is activated)."""
        try:
            wanted = (availability_from_pb(request.availability) if request.HasField("availability")
                      else None)
        except WireError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {err}")
        for _ in range(ATTEMPTS):
            node = find_node(self.informer, request.node, context)
            labels = {**node.labels, **dict(request.add_labels)}
            for key in request.remove_labels:
                labels.pop(key, None)
            avail = wanted or node.availability
            released = node.data_released
            if avail == "drain" and wanted == "drain":
                held = self._data_held(node.id)
                if held and not request.allow_data_loss:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                  f"node {node.name} holds the data of {', '.join(held)} "
                                  "(node-local volumes): draining it would start them elsewhere with "
                                  "empty volumes; add --allow-data-loss to do so")
                released = released or request.allow_data_loss
            elif avail == "active":
                released = False
            try:
                updated = self.store.update(dataclasses.replace(
                    node, labels=labels, availability=avail, data_released=released))  # type: ignore[arg-type]
            except StoreConflict:
                time.sleep(RETRY_PAUSE)  # a heartbeat flush raced us
                continue
            log.info("node updated", method="UpdateNode", **node_fields(node), availability=avail,
                     labels=labels)
            return node_to_pb(read_own_write(self.informer, updated))
        log.warning("node kept changing; not updated", method="UpdateNode", node=request.node,
                    attempts=ATTEMPTS)
        context.abort(grpc.StatusCode.ABORTED, f"node {request.node} kept changing; try again")
        raise AssertionError


def _data_held_by(tasks: Any, node_id: str) -> list[str]:
    """The running-wanted tasks whose node-local volume data ``node_id`` holds, by name."""
    from controlplane.controllers.snapshot import bound_volumes

    return sorted({t.name for t in tasks if t.data_node == node_id and t.desired_state == TaskState.RUNNING
                   and bound_volumes(t.spec)})


def _specs(request: cpb.DeployRequest, context: grpc.ServicerContext) -> tuple[list[Any], Any]:
    """The services to apply, and the manifest's stack (None for ready specs):
    a manifest's (parsed here, so the CLI need not load YAML and the model:
    half its start-up), with the profiles the request activates,
    or ready specs held to the same rules (``check_specs``), whose networks
    must exist. An empty manifest is an error, not a deploy of nothing: its
    path comes without text."""
    from model.manifest import ManifestError, check_specs, parse_stack

    try:
        if request.manifest or request.manifest_path:
            stack = parse_stack(request.manifest, request.manifest_path or "<manifest>", request.stack,
                                list(request.profiles), _env_files(request), dict(request.built_images))
            return stack.services, stack
        if not request.services:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "nothing to deploy: give a manifest or service specs")
        return check_specs(_decoded(request.services, context), "services"), None
    except ManifestError as err:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
    raise AssertionError


def _env_files(request: cpb.DeployRequest) -> dict[str, list[str]]:
    """The variables of each env_file the CLI read, by path as the manifest
    writes it (``NAME=value`` strings, NUL-separated: the CLI parsed the
    file; a value may hold a newline, never a NUL)."""
    return {f.env_file: bytes(f.data).decode(errors="replace").split("\0") if f.data else []
            for f in request.files if f.env_file}


_FILE_KINDS = {cpb.SECRET_KIND_SECRET: "secret", cpb.SECRET_KIND_CONFIG: "config"}


def _decoded(services: Any, context: grpc.ServicerContext) -> list[Any]:
    """Ready specs; the versions their grants name are the control plane's
    to pin (``Secrets.pin``), so any the sender set are dropped."""
    specs = []
    for index, message in enumerate(services):
        try:
            spec = spec_from_pb(message)
        except WireError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"services[{index}].{err}")
        specs.append(dataclasses.replace(
            spec, secrets=[dataclasses.replace(r, secret_id="") for r in spec.secrets],
            configs=[dataclasses.replace(r, secret_id="") for r in spec.configs]))
    return specs


def _pin(spec: Any, context: grpc.ServicerContext, call: FilteringBoundLogger) -> Any:
    """Resolve a registry image's tag to its digest now, so every node
    runs the same bytes however the tag moves later."""
    from registry.reference import names_registry

    if "@" in spec.image or not names_registry(spec.image):
        return spec
    # Only now the HTTP client (httpx): loading it costs a local image's
    # first deploy ~20 ms for nothing. Its CAs: --registry-ca, certs.d.
    from common.errors import AgentError
    from registry.manifest import resolve_digest
    from registry.reference import parse_remote

    try:
        remote = parse_remote(spec.image)
        digest = resolve_digest(spec.image)
    except AgentError as err:
        call.warning("image not resolved; service not written", image=spec.image, error=err.message)
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      f"service {spec.name}: cannot resolve image {spec.image}: {err.message}")
    pinned = remote.with_digest(digest).canonical
    call.info("image pinned", image=spec.image, pinned=pinned)
    return dataclasses.replace(spec, image=pinned)
