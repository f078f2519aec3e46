"""The API's secrets and configs: create, list, inspect and remove them; the
versions a deploy pins in its services' specs; and the removal of versions
nothing uses any more.

A secret (or config) is a name with versions, one store object each
(``model.objects.Secret``), the value sealed under the cluster's
key-encryption key (``controlplane.envelope``) before it is written: no
plaintext reaches etcd. A value goes in through ``CreateSecret`` or a
deploy, and comes back out only to the node that runs a task granted it
(``controlplane.dispatcher``), and, a config's, to ``GetSecret``: no answer
and no log line carries a secret's value.

Versions, where Swarm makes a secret immutable (a stack deploy whose secret
file changed fails there): a value that differs from the name's latest is
stored as the next version under the same name, the services' specs pin it
(``SecretRef.secret_id``), so their tasks' spec changed, and the rolling
update machinery replaces them (``controllers.rollout``), each new task
with the new value. The old version stays while anything uses it: a
service's spec or a revision it can roll back to, or a task that has not
ended; then the leader removes it (:class:`Collector`). The latest version
always stays.

Safety across replicas, as for networks (``networks``): versions of one name
are numbered under a guard (``secret-<kind>-<name>``, compared and rewritten
with each new version); a service write carries the versions its spec pins,
rewritten as read (:meth:`Secrets.touch`), and a removal deletes versions as
read: whichever comes second fails its compare and looks again. So no
service ever pins a version that is gone, and a version in use is never
removed.

Errors are ``SecretRefused`` (a gRPC code and a one-line message).
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets as tokens
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import grpc
import structlog

from controlplane.envelope import EnvelopeError, Kek, binding, open_value, seal
from controlplane.store import Change, Informer, Kind, Op, Store, StoreConflict, StoreError
from model import secrets as rules
from model.objects import Secret, Service, ServiceSpec, Task
from model.wire import WireError, secret_kind_from_pb, secret_kind_to_pb
from proto import cluster_pb2 as cpb

from .lookups import read_own_write

if TYPE_CHECKING:
    from model.manifest import SecretDef, Stack

log = structlog.get_logger("orch.api")

__all__ = ["Collector", "SecretRefused", "Secrets"]

ATTEMPTS = 8
RETRY_PAUSE = 0.05
# What a plan shows for a version a deploy would make.
NEW_VERSION = "(new version)"


class SecretRefused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _guard(kind: str, name: str) -> str:
    return f"secret-{kind}-{name}"


def _refs(spec: ServiceSpec) -> Iterable[tuple[str, str, str]]:
    """(kind, name, version id) of each file ``spec`` grants."""
    for ref in spec.secrets:
        yield "secret", ref.source, ref.secret_id
    for ref in spec.configs:
        yield "config", ref.source, ref.secret_id


def _pinned(service: Service) -> set[str]:
    """The versions a service's spec and its revisions pin."""
    return {vid for spec in (service.spec, *(r.spec for r in service.history)) for _, _, vid in _refs(spec)}


class Secrets:
    """Secrets and configs through ``store``; reads from ``informer``. Without
    a ``kek`` (no key file) no value can be sealed or opened: those calls are
    refused FAILED_PRECONDITION, the rest work."""

    def __init__(self, store: Store, informer: Informer, kek: Kek | None) -> None:
        self.store = store
        self.informer = informer
        self.kek = kek

    # ---- reads ---------------------------------------------------------------------

    def versions(self, kind: str, name: str) -> list[Secret]:
        """The versions of ``name``, oldest first."""
        return sorted((s for s in self.informer.secrets() if s.kind == kind and s.name == name),
                      key=lambda s: s.number)

    def latest(self, kind: str, name: str) -> Secret | None:
        found = self.versions(kind, name)
        return found[-1] if found else None

    def find(self, kind: str, ref: str) -> list[Secret]:
        """The versions of the secret ``ref`` names (a name, a version's id or a unique id prefix)."""
        found = self.versions(kind, ref)
        if not found and ref:
            matches = {s.name for s in self.informer.secrets() if s.kind == kind and s.id.startswith(ref)}
            if len(matches) == 1:
                found = self.versions(kind, matches.pop())
        if not found:
            raise SecretRefused(grpc.StatusCode.NOT_FOUND, f"no such {kind}: {ref}")
        return found

    def users(self, kind: str, name: str) -> tuple[list[str], list[Task]]:
        """The services granted ``name`` (their spec, not their history), and
        the tasks that have not ended and were given a version of it."""
        services = sorted(s.spec.name for s in self.informer.services()
                          if any((k, n) == (kind, name) for k, n, _ in _refs(s.spec)))
        tasks = [t for t in self.informer.tasks() if not t.status.state.terminal
                 and any((k, n) == (kind, name) for k, n, _ in _refs(t.spec))]
        return services, tasks

    def value(self, secret: Secret) -> bytes:
        """The plaintext of one version: to compare a new value with, and a config's for inspect."""
        kek = self._kek()
        if secret.sealed is None:
            raise SecretRefused(grpc.StatusCode.DATA_LOSS, f"{secret.kind} {secret.name} version "
                                                           f"{secret.number} holds no value")
        try:
            return open_value(kek, secret.sealed, binding(secret.id, secret.kind, secret.name))
        except EnvelopeError as err:
            raise SecretRefused(grpc.StatusCode.DATA_LOSS,
                                f"{secret.kind} {secret.name} version {secret.number}: {err}") from None

    def _kek(self) -> Kek:
        if self.kek is None:
            raise SecretRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                "this control plane has no secrets key (--secrets-key-file): it can "
                                "neither store nor read secret values")
        return self.kek

    def describe(self, kind: str, name: str, with_value: bool = False) -> cpb.Secret:
        """The secret as clients see it: metadata, and a config's value when asked."""
        found = self.versions(kind, name)
        if not found:
            raise SecretRefused(grpc.StatusCode.NOT_FOUND, f"no such {kind}: {name}")
        current = found[-1]
        services, tasks = self.users(kind, name)
        by_version: dict[str, list[str]] = {}
        for task in tasks:
            for k, n, vid in _refs(task.spec):
                if (k, n) == (kind, name) and task.name not in by_version.setdefault(vid, []):
                    by_version[vid].append(task.name)
        out = cpb.Secret(id=current.id, name=name, kind=secret_kind_to_pb(kind), number=current.number,
                         size=current.size, labels=current.labels, stack=current.stack,
                         created_at=found[0].created_at, updated_at=current.created_at,
                         versions=[cpb.SecretVersion(id=v.id, number=v.number, size=v.size,
                                                     created_at=v.created_at,
                                                     tasks=sorted(by_version.get(v.id, [])))
                                   for v in found],
                         services=services)
        if with_value and kind == "config":  # never a secret's
            out.data = self.value(current)
        return out

    # ---- writes --------------------------------------------------------------------

    def put(self, kind: str, name: str, data: bytes, labels: Mapping[str, str] | None = None,
            stack: str = "") -> tuple[Secret, bool]:
        """The version of ``name`` that holds ``data``: the latest when it holds
        it already (its labels set to ``labels``: they are not part of the
        value, and changing them rolls no task), else a new one. (version, made)."""
        try:
            rules.check_name(name, kind)
            rules.check_size(len(data), kind)
        except ValueError as err:
            raise SecretRefused(grpc.StatusCode.INVALID_ARGUMENT, f"{kind} {name}: {err}") from None
        kek = self._kek()
        labels = dict(labels or {})
        for _ in range(ATTEMPTS):
            guard = self.store.meta_version(_guard(kind, name))
            if not self.informer.wait_revision(guard, 5.0):
                raise SecretRefused(grpc.StatusCode.UNAVAILABLE,
                                    "this control plane's view of the cluster is behind; try again")
            current = self.latest(kind, name)
            if current is not None and hmac.compare_digest(self.value(current), data):
                if current.labels == labels:
                    return current, False
                try:
                    relabelled = self.store.update(dataclasses.replace(current, labels=labels))
                except StoreConflict:
                    time.sleep(RETRY_PAUSE)
                    continue
                return read_own_write(self.informer, relabelled), False
            ident = tokens.token_hex(12)
            version = Secret(id=ident, name=name, kind=kind,  # type: ignore[arg-type]
                             number=current.number + 1 if current is not None else 1, size=len(data),
                             labels=labels, stack=stack, created_at=time.time(),
                             sealed=seal(kek, data, binding(ident, kind, name)))
            try:
                [made] = self.store.write_guarded([Op.create(version)], guard=(_guard(kind, name), guard))
            except StoreConflict:
                time.sleep(RETRY_PAUSE)  # another version of it came first: decide again
                continue
            assert isinstance(made, Secret)
            log.info(f"{kind} version created", **{kind: name}, id=ident, number=made.number, size=len(data),
                     stack=stack)
            return read_own_write(self.informer, made), True
        raise SecretRefused(grpc.StatusCode.ABORTED, f"{kind} {name} kept changing; try again")

    def remove(self, kind: str, ref: str) -> Secret:
        """Remove every version of a secret no service is granted and no living task uses."""
        for _ in range(ATTEMPTS):
            found = self.find(kind, ref)
            name = found[-1].name
            services, tasks = self.users(kind, name)
            if services:
                raise SecretRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                    f"{kind} {name} is in use by service(s) {', '.join(services)}: remove "
                                    "them first (orch rm), or deploy them without it")
            if tasks:
                names = ", ".join(t.name for t in tasks[:5])
                raise SecretRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                    f"{kind} {name} is in use by task(s) {names}, which are still stopping: "
                                    "try again once they have ended")
            try:
                self.store.batch([Op.delete(v) for v in found])
            except StoreConflict:
                time.sleep(RETRY_PAUSE)  # a service was written with it meanwhile: look again
                continue
            log.info(f"{kind} removed", **{kind: name}, versions=len(found))
            read_own_write(self.informer, found[-1], self.store.revision())
            return found[-1]
        raise SecretRefused(grpc.StatusCode.ABORTED, f"{kind} {ref} kept changing; not removed: try again")

    # ---- deploys -------------------------------------------------------------------

    def resolve(self, stack: Stack, files: Mapping[tuple[str, str], bytes],
                dry_run: bool = False) -> list[ServiceSpec]:
        """The stack's services with each grant pinned to its version: an
        external one's latest, else the version that holds the value the
        deploy brought (made now if the value is new; a plan (``dry_run``)
        makes none and pins :data:`NEW_VERSION`)."""
        pinned: dict[tuple[str, str], str] = {}
        for wanted in stack.secrets:
            pinned[(wanted.kind, wanted.name)] = self._version_for(wanted, stack, files, dry_run)
        return [self._pin(spec, pinned) for spec in stack.services]

    def _version_for(self, wanted: SecretDef, stack: Stack, files: Mapping[tuple[str, str], bytes],
                     dry_run: bool) -> str:
        where = f"{stack.path}:{wanted.line}: {wanted.field}: " if wanted.line else f"{stack.path}: "
        current = self.latest(wanted.kind, wanted.name)
        if wanted.external:
            if current is None:
                raise SecretRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                    f"{where}external {wanted.kind} {wanted.name} does not exist: create it "
                                    f"with orch {wanted.kind} create {wanted.name} FILE")
            return current.id
        data = wanted.value.encode() if wanted.source == "content" else files.get((wanted.kind, wanted.key))
        if data is None:
            if dry_run:
                return current.id if current is not None else NEW_VERSION
            raise SecretRefused(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{where}the value of {wanted.kind} {wanted.key} ({wanted.source} "
                                f"{wanted.value}) did not come with the deploy: `orch deploy` reads it "
                                "on the deploying machine and sends it")
        try:
            if dry_run:
                same = current is not None and hmac.compare_digest(self.value(current), data)
                return current.id if same and current is not None else NEW_VERSION
            version, _ = self.put(wanted.kind, wanted.name, data, wanted.labels, stack.name)
        except SecretRefused as err:
            raise SecretRefused(err.code, where + err.message) from None
        return version.id

    def pin(self, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        """Ready specs (no manifest) with each grant pinned to its secret's latest version."""
        pinned: dict[tuple[str, str], str] = {}
        for spec in specs:
            for kind, name, _ in _refs(spec):
                current = self.latest(kind, name)
                if current is None:
                    raise SecretRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                        f"service {spec.name}: {kind} {name} does not exist: create it with "
                                        f"orch {kind} create {name} FILE")
                pinned[(kind, name)] = current.id
        return [self._pin(spec, pinned) for spec in specs]

    @staticmethod
    def _pin(spec: ServiceSpec, pinned: Mapping[tuple[str, str], str]) -> ServiceSpec:
        if not spec.secrets and not spec.configs:
            return spec
        secrets = [dataclasses.replace(r, secret_id=pinned[("secret", r.source)]) for r in spec.secrets]
        configs = [dataclasses.replace(r, secret_id=pinned[("config", r.source)]) for r in spec.configs]
        return dataclasses.replace(spec, secrets=secrets, configs=configs)

    def touch(self, spec: ServiceSpec) -> list[Op]:
        """The ops a write of ``spec`` carries: each version it pins, rewritten
        as read (see the module docstring). SecretRefused naming one that is gone."""
        ops: dict[str, Op] = {}
        for kind, name, vid in _refs(spec):
            version = self.informer.get(Kind.SECRET, vid) if vid else None
            if not isinstance(version, Secret):
                raise SecretRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                    f"service {spec.name}: {kind} {name} version {vid or '(none)'} does not "
                                    "exist (it was removed): deploy the service again")
            ops.setdefault(vid, Op.update(version))
        return list(ops.values())

    # ---- the API's calls -----------------------------------------------------------

    def create(self, request: cpb.CreateSecretRequest) -> cpb.Secret:
        kind = _kind(request.kind)
        self.put(kind, request.name, bytes(request.data), dict(request.labels))
        return self.describe(kind, request.name)

    def list(self, request: cpb.SecretListRequest) -> cpb.ListSecretsResponse:
        kind = _kind(request.kind)
        names = sorted({s.name for s in self.informer.secrets() if s.kind == kind})
        return cpb.ListSecretsResponse(secrets=[self.describe(kind, name) for name in names])

    def get(self, request: cpb.SecretRef) -> cpb.Secret:
        kind = _kind(request.kind)
        return self.describe(kind, self.find(kind, request.name)[-1].name, with_value=True)

    def delete(self, request: cpb.SecretRef) -> cpb.RemoveResponse:
        return cpb.RemoveResponse(id=self.remove(_kind(request.kind), request.name).id)


def _kind(number: int) -> str:
    try:
        return secret_kind_from_pb(number)
    except WireError as err:
        raise SecretRefused(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None


class Collector:
    """Removes the versions nothing uses (see the module docstring), on the
    leader only, shortly after a change that may have freed one: a task that
    ended or went, a service changed or removed. Its own thread, so the
    informer's handlers never wait on the store."""

    def __init__(self, store: Store, informer: Informer, is_leader: Callable[[], bool],
                 delay: float = 1.0, period: float = 60.0) -> None:
        self.store = store
        self.informer = informer
        self.is_leader = is_leader
        self.delay = delay  # seconds: the changes of a rollout's burst make one pass
        self.period = period
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        informer.add_handler(self.on_change)

    def start(self) -> Collector:
        self._wake.set()  # what a leader before this one left
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="secret-collector", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def on_change(self, change: Change) -> None:
        if change.kind == Kind.SECRET and change.type != "delete":
            self._wake.set()  # a new version: the one before may be unused already
        elif change.kind == Kind.TASK:
            old, new = change.old, change.obj
            ended = new.status.state.terminal and not (isinstance(old, Task) and old.status.state.terminal) \
                if isinstance(new, Task) else False
            if isinstance(new, Task) and (new.spec.secrets or new.spec.configs) and (
                    change.type == "delete" or ended):
                self._wake.set()
        elif change.kind == Kind.SERVICE:
            before = _pinned(change.old) if isinstance(change.old, Service) else set()
            gone = change.type == "delete" or not isinstance(change.obj, Service)
            after = set() if gone else _pinned(change.obj)  # type: ignore[arg-type]
            if before - after:
                self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.period)  # a replica that becomes leader looks within a period
            if self._stop.wait(self.delay):
                return
            self._wake.clear()
            if not self.is_leader():
                continue
            try:
                self.collect()
            except StoreError as err:
                log.warning("unused secret versions not removed", error=str(err))
                self._wake.set()

    def unused(self) -> list[Secret]:
        """The versions nothing uses and that are not their name's latest."""
        used: set[str] = set()
        for service in self.informer.services():
            used |= _pinned(service)
        for task in self.informer.tasks():
            if not task.status.state.terminal:
                used.update(vid for _, _, vid in _refs(task.spec))
        latest: dict[tuple[str, str], Secret] = {}
        versions = self.informer.secrets()
        for v in versions:
            have = latest.get((v.kind, v.name))
            if have is None or v.number > have.number:
                latest[(v.kind, v.name)] = v
        keep = used | {v.id for v in latest.values()}
        return [v for v in versions if v.id not in keep]

    def collect(self) -> int:
        """Remove the unused versions (each compared as read); how many went."""
        removed = 0
        for version in self.unused():
            try:
                self.store.delete(version)
            except StoreConflict:
                continue  # touched by a service write meanwhile: in use after all
            removed += 1
            log.info(f"{version.kind} version removed: nothing uses it", **{version.kind: version.name},
                     id=version.id, number=version.number)
        return removed
