"""Secrets and configs through the cluster API and the dispatcher, on a real
etcd: create, list, inspect (metadata only; a config's value) and remove;
versions under one name; sealed in etcd (a raw read shows no plaintext); a
deploy pins the version its manifest's value is, and a changed value is a
new version and a rollout; a secret in use is not removed; the versions
nothing uses go; and only the node a granted task runs on receives a value,
with that task, over a real session."""

from __future__ import annotations

import dataclasses
import os
import queue
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from common.aioserver import LoopServer
from controlplane.api import ClusterAPI
from controlplane.dispatcher import Dispatcher
from controlplane.envelope import Kek
from controlplane.store import Informer, Kind, Store
from model.objects import Secret, SecretRef, Service, ServiceSpec, Task, TaskState, TaskStatus
from model.wire import service_from_pb, spec_to_pb, task_from_pb
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

KEK = Kek(os.urandom(32), "test")
VALUE = b"hunter2-" + os.urandom(8).hex().encode()
SECRET, CONFIG = cpb.SECRET_KIND_SECRET, cpb.SECRET_KIND_CONFIG
TOKEN = "join-token"


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code, self.message = code, message


class _Context:
    def is_active(self) -> bool:
        return True

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(code, message)


def Context() -> Any:  # the servicer context the API is handed, as far as it uses one
    return _Context()


@pytest.fixture
def api(store: Store, informer: Informer) -> ClusterAPI:
    return ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1", kek=KEK)


def _create(api: ClusterAPI, name: str, data: bytes, kind: Any = SECRET, **labels: str) -> cpb.Secret:
    request = cpb.CreateSecretRequest(kind=kind, name=name, data=data, labels=labels)
    return api.CreateSecret(request, Context())


def _get(api: ClusterAPI, name: str, kind: Any = SECRET) -> cpb.Secret:
    return api.GetSecret(cpb.SecretRef(kind=kind, name=name), Context())


def _deploy(api: ClusterAPI, text: str, **files: bytes) -> list[Service]:
    request = cpb.DeployRequest(manifest=textwrap.dedent(text), manifest_path="shop/m.yaml", stack="shop",
                                files=[cpb.ManifestFile(kind=SECRET, key=k, data=v)
                                       for k, v in files.items()])
    return [service_from_pb(s) for s in api.Deploy(request, Context()).services]


def _raw_values(store: Store) -> bytes:
    """Every byte etcd holds under /orch/, read with the etcd client itself."""
    resp = store._kv.get_range_response(b"/orch/", b"/orch0")
    return b"".join(kv.key + kv.value for kv in resp.kvs)


MANIFEST = """\
    services:
      web:
        image: busybox
        secrets: [db_password, {source: db_password, target: again, uid: "1000", mode: 0400}]
        configs: [app]
    secrets:
      db_password: {file: ./db.txt}
    configs:
      app: {content: "level=info"}
    """


def test_create_list_inspect_and_remove(api: ClusterAPI, store: Store) -> None:
    made = _create(api, "db", VALUE, tier="back")
    assert (made.name, made.number, made.size, dict(made.labels)) == ("db", 1, len(VALUE), {"tier": "back"})
    assert made.data == b"" and VALUE not in made.SerializeToString()
    got = _get(api, "db")
    assert got.id == made.id and got.data == b"" and VALUE not in got.SerializeToString()
    assert _get(api, made.id[:8]).name == "db"  # by a prefix of its id
    conf = _create(api, "app.conf", b"level=info\n", kind=CONFIG)
    assert _get(api, "app.conf", CONFIG).data == b"level=info\n"  # a config's value is visible
    assert conf.data == b""  # not in a create's answer, nor in a list's
    listed = api.ListSecrets(cpb.SecretListRequest(kind=SECRET), Context()).secrets
    assert [s.name for s in listed] == ["db"] and VALUE not in b"".join(s.SerializeToString() for s in listed)
    assert [s.name for s in api.ListSecrets(cpb.SecretListRequest(kind=CONFIG), Context()).secrets] == [
        "app.conf"]
    api.RemoveSecret(cpb.SecretRef(kind=SECRET, name="db"), Context())
    with pytest.raises(Aborted) as gone:
        _get(api, "db")
    assert gone.value.code == grpc.StatusCode.NOT_FOUND and store.list_secrets()[0].kind == "config"


def test_a_value_is_sealed_in_etcd(api: ClusterAPI, store: Store) -> None:
    _create(api, "db", VALUE)
    _create(api, "cfg", b"visible-config-" + VALUE, kind=CONFIG)
    raw = _raw_values(store)
    assert b"/orch/secrets/" in raw and VALUE not in raw
    import base64

    assert base64.b64encode(VALUE) not in raw and VALUE.hex().encode() not in raw


def test_a_name_takes_versions_and_the_same_value_is_the_same_version(api: ClusterAPI) -> None:
    first = _create(api, "db", b"one")
    assert _create(api, "db", b"one").id == first.id
    relabelled = _create(api, "db", b"one", note="x")  # labels are not the value: no new version
    assert (relabelled.id, dict(relabelled.labels)) == (first.id, {"note": "x"})
    second = _create(api, "db", b"two")
    assert (second.number, [v.number for v in second.versions]) == (2, [1, 2])
    assert second.id != first.id and second.versions[0].id == first.id


def test_the_size_limit_is_500_kib(api: ClusterAPI) -> None:
    assert _create(api, "big", b"x" * 500 * 1024).size == 500 * 1024
    with pytest.raises(Aborted) as refused:
        _create(api, "bigger", b"x" * (500 * 1024 + 1))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 512000" in refused.value.message


@pytest.mark.parametrize(("name", "error"), [("bad name", "invalid secret name"),
                                             ("-x", "invalid secret name")])
def test_bad_names_are_refused(api: ClusterAPI, name: str, error: str) -> None:
    with pytest.raises(Aborted, match=error):
        _create(api, name, b"v")


def test_a_deploy_pins_versions_and_a_changed_value_rolls(api: ClusterAPI, store: Store) -> None:
    (web,) = _deploy(api, MANIFEST, db_password=VALUE)
    versions = {(s.kind, s.name): s for s in store.list_secrets()}
    db, app = versions[("secret", "shop_db_password")], versions[("config", "shop_app")]
    assert web.spec.secrets == [SecretRef("shop_db_password", "/run/secrets/db_password", secret_id=db.id),
                                SecretRef("shop_db_password", "/run/secrets/again", 1000, 0, 0o400, db.id)]
    assert web.spec.configs == [SecretRef("shop_app", "/app", secret_id=app.id)]
    (again,) = _deploy(api, MANIFEST, db_password=VALUE)
    assert again.version == web.version and again.revision == 1  # nothing changed: nothing written
    (rolled,) = _deploy(api, MANIFEST, db_password=b"rotated")
    new = next(s for s in store.list_secrets() if s.name == "shop_db_password" and s.number == 2)
    assert [r.secret_id for r in rolled.spec.secrets] == [new.id, new.id]
    assert rolled.revision == 2 and rolled.update_status is not None
    assert rolled.update_status.state == "updating"
    # The old version stays: the service's previous revision (a rollback's) pins it.
    assert {s.id for s in store.list_secrets()} >= {db.id, new.id}
    assert [v.number for v in _get(api, "shop_db_password").versions] == [1, 2]


def test_a_deploy_without_the_files_value_says_how(api: ClusterAPI) -> None:
    with pytest.raises(Aborted) as refused:
        _deploy(api, MANIFEST)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert ("shop/m.yaml:7: secrets.db_password: the value of secret db_password (file ./db.txt) did not "
            "come with the deploy") in refused.value.message


def test_an_external_secret_must_exist_and_ready_specs_pin_the_latest(api: ClusterAPI) -> None:
    text = """\
        services:
          web: {image: busybox, secrets: [key]}
        secrets:
          key: {external: true, name: api_key}
        """
    with pytest.raises(Aborted, match="external secret api_key does not exist: create it with orch secret "
                                      "create api_key FILE"):
        _deploy(api, text)
    made = _create(api, "api_key", b"k")
    assert _deploy(api, text)[0].spec.secrets[0].secret_id == made.id
    spec = ServiceSpec(name="ready", image="busybox",
                       secrets=[SecretRef("api_key", "/run/secrets/k", secret_id="forged")])
    reply = api.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), Context())
    assert service_from_pb(reply.services[0]).spec.secrets[0].secret_id == made.id


def test_a_secret_in_use_is_not_removed(api: ClusterAPI, store: Store, informer: Informer) -> None:
    (web,) = _deploy(api, MANIFEST, db_password=VALUE)
    with pytest.raises(Aborted) as refused:
        api.RemoveSecret(cpb.SecretRef(kind=SECRET, name="shop_db_password"), Context())
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "secret shop_db_password is in use by service(s) web" in refused.value.message
    task = store.create(Task(id="t1", service_id=web.id, service_name="web", slot=1, spec=web.spec,
                             node_id="n1", status=TaskStatus(TaskState.RUNNING)))
    api.RemoveService(cpb.ServiceRef(name="web"), Context())
    with pytest.raises(Aborted, match=r"in use by task\(s\) web\.1\.t1, which are still stopping"):
        api.RemoveSecret(cpb.SecretRef(kind=SECRET, name="shop_db_password"), Context())
    done = store.update(dataclasses.replace(task, status=TaskStatus(TaskState.SHUTDOWN)))
    informer.wait_revision(done.version, 5)
    api.RemoveSecret(cpb.SecretRef(kind=SECRET, name="shop_db_password"), Context())
    assert [s.name for s in store.list_secrets()] == ["shop_app"]


def test_versions_nothing_uses_go_and_the_latest_stays(api: ClusterAPI, store: Store,
                                                       informer: Informer) -> None:
    (web,) = _deploy(api, MANIFEST, db_password=b"one")
    _deploy(api, MANIFEST, db_password=b"two")
    first = next(s for s in store.list_secrets() if s.name == "shop_db_password" and s.number == 1)
    task = store.create(Task(id="old", service_id=web.id, service_name="web", slot=1, spec=web.spec,
                             node_id="n1", status=TaskStatus(TaskState.RUNNING)))
    api.RemoveService(cpb.ServiceRef(name="web"), Context())
    informer.wait_revision(store.revision(), 5)
    assert api.collector.collect() == 0  # a running task still has version 1
    done = store.update(dataclasses.replace(task, status=TaskStatus(TaskState.SHUTDOWN)))
    informer.wait_revision(done.version, 5)
    assert api.collector.collect() == 1
    left = sorted((s.name, s.number) for s in store.list_secrets())
    assert left == [("shop_app", 1), ("shop_db_password", 2)] and store.get_secret(first.id) is None


def test_a_rollback_to_a_removed_version_is_refused(api: ClusterAPI, store: Store,
                                                    informer: Informer) -> None:
    text = "services:\n  web: {image: busybox, secrets: [k]}\nsecrets:\n  k: {external: true}\n"
    _create(api, "k", b"one")
    _deploy(api, text)
    _create(api, "k", b"two")
    _deploy(api, text)
    old = next(s for s in store.list_secrets() if s.number == 1)
    store.delete(old)  # as if removed behind the API's back
    informer.wait_revision(store.revision(), 5)
    with pytest.raises(Aborted, match=r"revision 1: service web: secret k version \w+ does not exist"):
        api.Rollback(cpb.RollbackRequest(service="web"), Context())


def test_events_never_carry_secrets(api: ClusterAPI, store: Store) -> None:
    got: queue.Queue[cpb.Event] = queue.Queue()
    context = Context()
    stream = api.Events(cpb.EventsRequest(keepalive=0.05), context)  # type: ignore[arg-type]
    def read() -> None:
        for event in stream:
            got.put(event)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.2)  # the stream is open before the write
    _create(api, "db", VALUE)
    _deploy(api, "services:\n  web: {image: busybox}\n")
    seen: list[cpb.Event] = []
    deadline = time.monotonic() + 5
    while not any(e.WhichOneof("object") == "service" for e in seen) and time.monotonic() < deadline:
        try:
            seen.append(got.get(timeout=0.2))
        except queue.Empty:
            continue
    puts = [e for e in seen if e.action in (cpb.EVENT_ACTION_PUT, cpb.EVENT_ACTION_DELETE)]
    # The secret's write is no event (the deploy's network and service are).
    assert [e.WhichOneof("object") for e in puts] == ["network", "service"]
    assert all(VALUE not in e.SerializeToString() for e in seen)


# ---- delivery: only with the task, only to its node -------------------------------------

class Node:
    """One agent's session over real gRPC: every assignments message it gets."""

    def __init__(self, stub: cpb_grpc.DispatcherStub, name: str) -> None:
        self.outbox: queue.Queue[cpb.AgentMessage | None] = queue.Queue()
        self.messages: list[cpb.Assignments] = []
        self.node_id: queue.Queue[str] = queue.Queue()
        self.lock = threading.Lock()
        self.outbox.put(cpb.AgentMessage(register=cpb.Register(name=name, address="127.0.0.1:1", cpus=1,
                                                               memory_bytes=1 << 30, token=TOKEN)))
        self.replies = stub.Session(iter(self.outbox.get, None))
        threading.Thread(target=self._read, daemon=True).start()
        self.id = self.node_id.get(timeout=10)

    def _read(self) -> None:
        try:
            for reply in self.replies:
                if reply.WhichOneof("msg") == "registered":
                    self.node_id.put(reply.registered.node_id)
                elif reply.WhichOneof("msg") == "assignments":
                    with self.lock:
                        self.messages.append(reply.assignments)
        except grpc.RpcError:
            pass

    def payloads(self) -> dict[str, bytes]:
        with self.lock:
            return {p.id: bytes(p.data) for m in self.messages for p in m.secrets}

    def tasks(self) -> set[str]:
        with self.lock:
            return {t.id for m in self.messages for t in m.tasks}

    def close(self) -> None:
        self.outbox.put(None)
        self.replies.cancel()


@pytest.fixture
def nodes(store: Store, informer: Informer) -> Iterator[Callable[[str], Node]]:
    servicer = Dispatcher(store, informer, TOKEN, kek=KEK)
    server = LoopServer()
    cpb_grpc.add_DispatcherServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    made: list[Node] = []

    def node(name: str) -> Node:
        made.append(Node(cpb_grpc.DispatcherStub(channel), name))
        return made[-1]

    yield node
    for n in made:
        n.close()
    channel.close()
    server.stop(grace=0).wait()
    servicer.stop()


def _wait(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "not reached"
        time.sleep(0.01)
    return found


def test_only_the_node_of_a_granted_task_receives_the_value(api: ClusterAPI, store: Store,
                                                            nodes: Callable[[str], Node]) -> None:
    (web,) = _deploy(api, MANIFEST, db_password=VALUE)
    db = next(s for s in store.list_secrets() if s.kind == "secret")
    n1, n2 = nodes("n1"), nodes("n2")
    plain = store.create(Task(id="plain", service_id="s2", service_name="plain", slot=1,
                              spec=ServiceSpec(name="plain", image="busybox"), node_id=n2.id,
                              status=TaskStatus(TaskState.ASSIGNED)))
    granted = store.create(Task(id="granted", service_id=web.id, service_name="web", slot=1, spec=web.spec,
                                node_id=n1.id, status=TaskStatus(TaskState.ASSIGNED)))
    assert _wait(lambda: n1.payloads().get(db.id)) == VALUE
    _wait(lambda: "plain" in n2.tasks())
    assert n2.payloads() == {} and "granted" not in n2.tasks()
    message = next(m for m in n1.messages if any(t.id == "granted" for t in m.tasks))
    assert {p.id for p in message.secrets} == {r.secret_id for r in (*web.spec.secrets, *web.spec.configs)}
    # A node that joins later gets its full set: nothing of n1's.
    n3 = nodes("n3")
    _wait(lambda: n3.messages)
    assert n3.payloads() == {} and n3.tasks() == set()
    # Told to stop, the task is sent without any value.
    count = len(n1.messages)
    store.update(dataclasses.replace(granted, desired_state=TaskState.SHUTDOWN))
    _wait(lambda: len(n1.messages) > count)
    assert all(not m.secrets for m in n1.messages[count:])
    sent = next(task_from_pb(t) for m in n1.messages for t in m.tasks if t.id == "granted")
    assert sent.spec == web.spec and plain.node_id == n2.id  # the spec names versions, never values


def test_a_version_sealed_under_another_key_is_not_sent(store: Store, informer: Informer,
                                                        nodes: Callable[[str], Node]) -> None:
    other = ClusterAPI(store, informer, "r2", is_leader=lambda: True, leader_id=lambda: "r2",
                       kek=Kek(os.urandom(32), "other"))
    made = _create(other, "db", VALUE)
    spec = ServiceSpec(name="web", image="busybox",
                       secrets=[SecretRef("db", "/run/secrets/db", secret_id=made.id)])
    n1 = nodes("n1")
    store.create(Task(id="t", service_id="s", service_name="web", slot=1, spec=spec, node_id=n1.id,
                      status=TaskStatus(TaskState.ASSIGNED)))
    _wait(lambda: "t" in n1.tasks())
    assert n1.payloads() == {}
    assert isinstance(informer.get(Kind.SECRET, made.id), Secret)
