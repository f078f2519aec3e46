"""The API's rollout verbs: roll a service back, list its revisions, pause
or resume its rollout. (Deploys start rollouts: ``deploy``.)

A rollback is a new revision whose spec is an earlier one's (the replica
count stays as it is: scaling is not a revision), rolled out with that
spec's ``rollback_config``, as swarmkit does. Pausing stops the leader from
starting more tasks of a rollout (the ones under way finish); resuming goes
on from where it stood. Every write is a compare-and-swap on the service as
this replica's cache holds it, retried a few times, as ``deploy`` does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import grpc
import structlog

from controlplane.controllers import rolled_back
from controlplane.logctx import service_fields
from controlplane.plan import spec_changes
from controlplane.store import Informer, Op, Store, StoreConflict
from model.objects import Service
from model.wire import service_to_pb
from proto import cluster_pb2 as cpb

from .deploy import ATTEMPTS, RETRY_PAUSE
from .lookups import find_service, read_own_write
from .networks import NetworkRefused, Networks
from .secrets import SecretRefused, Secrets

log = structlog.get_logger("orch.api")

PAUSED = {"updating": "paused", "rollback_started": "rollback_paused"}
RESUMED = {paused: active for active, paused in PAUSED.items()}


class Refused(Exception):
    """A request that does not apply to the service as it is; ``code`` and ``message`` for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Rollouts:
    def __init__(self, store: Store, informer: Informer, networks: Networks,
                 secrets: Secrets | None = None) -> None:
        self.store = store
        self.informer = informer
        self.networks = networks
        # A revision's spec pins the secret versions it ran with: a rollback
        # to one whose version is gone (its secret removed) is refused.
        self.secrets = secrets if secrets is not None else Secrets(store, informer, None)

    def rollback(self, request: cpb.RollbackRequest, context: grpc.ServicerContext) -> cpb.Service:
        def back(svc: Service) -> tuple[Service, list[Op]]:
            target = _revision(svc, request.to)
            spec = next(r.spec for r in svc.history if r.revision == target)
            try:
                touched = self.networks.touch(spec)
            except NetworkRefused as err:
                raise Refused(err.code, err.message) from None
            try:
                touched += self.secrets.touch(spec)
            except SecretRefused as err:
                raise Refused(err.code, f"revision {target}: {err.message}") from None
            return rolled_back(svc, spec, f"rollback to {target}", time.time()), touched

        return self._rewrite(request.service, "Rollback", back, context)

    def update(self, request: cpb.UpdateServiceRequest, context: grpc.ServicerContext) -> cpb.Service:
        if request.pause == request.resume:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give one of pause or resume")

        def pause_or_resume(svc: Service) -> tuple[Service, list[Op]]:
            status = svc.update_status
            moves = PAUSED if request.pause else RESUMED
            if status is None or status.state not in moves:
                now = status.state.replace("_", " ") if status is not None else "never updated"
                verb = "pause" if request.pause else "resume"
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION,
                              f"service {svc.spec.name}: no rollout to {verb} (its rollout: {now})")
            message = "paused by a user" if request.pause else "resumed by a user"
            moved = dataclasses.replace(status, state=moves[status.state], message=message)  # type: ignore[arg-type]
            return dataclasses.replace(svc, update_status=moved), []

        return self._rewrite(request.service, "UpdateService", pause_or_resume, context)

    def history(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.HistoryResponse:
        svc = find_service(self.informer, request.name, context)
        revisions = [*((r.revision, r.spec, r.created_at, r.note) for r in svc.history),
                     (svc.revision, svc.spec, svc.updated_at or svc.created_at, svc.note)]
        out = []
        for i, (number, spec, at, note) in enumerate(revisions):
            before = revisions[i - 1][1] if i else None
            changes = spec_changes(before, spec) if before is not None else []
            out.append(cpb.HistoryEntry(
                revision=number, created_at=at, note=note or "deploy", current=number == svc.revision,
                changes=[cpb.FieldChange(field=c.field, old=c.old, new=c.new) for c in changes
                         if c.field != "replicas"]))
        return cpb.HistoryResponse(revisions=out)

    def _rewrite(self, ref: str, method: str, change: Callable[[Service], tuple[Service, list[Op]]],
                 context: grpc.ServicerContext) -> cpb.Service:
        """``change`` applied to the service named ``ref``, compare-and-swapped."""
        for _ in range(ATTEMPTS):
            svc = find_service(self.informer, ref, context)
            try:
                changed, touched = change(svc)
            except Refused as err:
                context.abort(err.code, err.message)
            try:
                [written, *_] = self.store.batch([Op.update(changed), *touched])
            except StoreConflict:
                time.sleep(RETRY_PAUSE)  # the leader moved the rollout meanwhile
                continue
            assert isinstance(written, Service)
            status = written.update_status
            log.info("service rollout changed", method=method, **service_fields(written),
                     revision=written.revision, state=status.state if status else "")
            return service_to_pb(read_own_write(self.informer, written))
        context.abort(grpc.StatusCode.ABORTED, f"service {ref} kept changing; try again")
        raise AssertionError


def _revision(svc: Service, asked: int) -> int:
    """The revision a rollback goes to: ``asked``, or (0) the one before the current one."""
    kept = [r.revision for r in svc.history]
    name = svc.spec.name
    if not kept:
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"service {name} has no earlier revision "
                      f"to roll back to (it is at revision {svc.revision})")
    if asked == 0:
        return kept[-1]
    if asked == svc.revision:
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"service {name} is at revision {asked} already")
    if asked not in kept:
        raise Refused(grpc.StatusCode.NOT_FOUND,
                      f"service {name} has no revision {asked}: kept are {_ranges(kept)} and the current "
                      f"{svc.revision} (see `orch history {name}`)")
    return asked


def _ranges(numbers: list[int]) -> str:
    return f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
