"""Cluster commands: up, down, controlplane, deploy, scale, services, nodes,
node drain|activate|label, and the cluster forms of ps, rm, logs and exec.

The CLI is in cluster mode when ``-C/--cluster`` or ``$ORCH_CLUSTER`` names a
control plane, or a local cluster is up (``orch up`` wrote its record);
``$ORCH_HOST`` (or ``-H``) forces the local engine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from orch.cli.client import CLIError, Cluster
from orch.cli.common import add_output, add_profile, ago, profiles, read_manifest, write_exec_output
from orch.cli.output import emit

DEFAULT_RUN = "/run/orch/cluster"
DEFAULT_STATE = "/var/lib/orch/cluster"
CONTROLPLANE_SOCKET = "/run/orch/controlplane.sock"  # controlplane.server.DEFAULT_SOCKET




def _local_record() -> dict[str, Any] | None:
    """The record `orch up` wrote (root-only), or None when no cluster is up."""
    path = os.path.join(os.environ.get("ORCH_CLUSTER_RUN_DIR", DEFAULT_RUN), "cluster.json")
    try:
        with open(path) as f:
            record = json.load(f)
    except PermissionError:
        raise CLIError(f"permission denied: the local cluster ({path}) is for root only; run orch "
                       "as root, or use --cluster HOST:PORT with a user certificate (--tlscert)")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def cluster_endpoints(args: argparse.Namespace) -> tuple[list[str], Any] | None:
    """Every control-plane endpoint to try, in order, and the TLS files for
    TCP ones (``orch.cli.tlschannel.CLITLS`` or None); None when the CLI is
    not in cluster mode.

    ``-C``/``$ORCH_CLUSTER`` name them (``HOST:PORT`` or ``unix:///PATH``,
    comma-separated); otherwise the local cluster's record gives each
    replica's root-only unix socket first, then its TCP address; otherwise,
    on a control plane's host, its default socket. The TLS
    files come from the flags or the environment, else (root on the local
    cluster's host) from the admin certificate ``orch up`` made.
    """
    explicit = getattr(args, "cluster", None) or os.environ.get("ORCH_CLUSTER")
    if explicit:
        endpoints = [e.strip() for e in str(explicit).split(",") if e.strip()]
        if not endpoints:
            raise CLIError("--cluster: expected HOST:PORT[,HOST:PORT...]")
        try:
            record = _local_record()
        except CLIError:
            record = None
        return endpoints, _tls(args, record)
    if getattr(args, "host", None) or os.environ.get("ORCH_HOST"):
        return None
    record = _local_record()
    if record is None:
        # A control plane's host: `orch controlplane`'s default socket.
        return ([f"unix://{CONTROLPLANE_SOCKET}"], _tls(args, None)) if os.path.exists(CONTROLPLANE_SOCKET) \
            else None
    sockets = [f"unix://{path}" for path in record.get("sockets", [])]
    tcp = [listen[0] for listen in record.get("listens", []) if listen] or [record["controlplane"]]
    return sockets + tcp, _tls(args, record)


def _tls(args: argparse.Namespace, record: dict[str, Any] | None) -> Any:
    from orch.cli.tlsfiles import CLITLS, tls_from

    given = tls_from(args)
    if given is not None:
        return given
    path = (record or {}).get("cert_path", "")
    if path and os.access(os.path.join(path, "key.pem"), os.R_OK):
        ca, cert, key = (os.path.join(path, f) for f in ("ca.pem", "cert.pem", "key.pem"))
        return CLITLS(ca, cert, key)
    return None


def cluster_address(args: argparse.Namespace) -> str | None:
    """The first control-plane endpoint, or None outside cluster mode."""
    found = cluster_endpoints(args)
    return found[0][0] if found else None


def client(args: argparse.Namespace) -> Cluster:
    found = cluster_endpoints(args)
    if found is None:
        raise CLIError("no cluster: start one with `orch up`, or point at a control plane with "
                       "--cluster HOST:PORT or $ORCH_CLUSTER")
    endpoints, tls = found
    return Cluster(endpoints, tls)


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start a local cluster: etcd, a control plane, N agents")
    p.add_argument("--nodes", type=int, default=1, help="1 to 254 (default 1)")
    p.add_argument("--state-dir", default=DEFAULT_STATE)
    p.add_argument("--run-dir", default=DEFAULT_RUN)
    p.add_argument("--subnet", default="10.89.0.0/24",
                   help="the nodes' private network (bridge .1, node i .10+i)")
    p.add_argument("--bridge", default="orchup0", help="its bridge (at most 15 characters)")
    p.add_argument("--prefix", default="orch-", help="network namespace name prefix")
    p.add_argument("--port", type=int, default=7700, help="control plane port (replica i: +i)")
    p.add_argument("--controlplanes", type=int, default=1, help="control-plane replicas (1 to 9)")
    p.add_argument("--etcd-members", type=int, default=None, metavar="N",
                   help="etcd members: 1 (default), 3, 5 or 7; several listen on loopback ports "
                        "--port+200+i (clients) and --port+210+i (peers). A kept state starts "
                        "again with the members it has")
    p.add_argument("--registry", type=int, nargs="?", const=5000, default=None, metavar="PORT",
                   help="also start a registry on the cluster network (default port 5000)")
    p.add_argument("--monitoring", type=int, nargs="?", const=9090, default=None, metavar="PORT",
                   help="also start Prometheus on 127.0.0.1:PORT (default 9090), scraping the "
                        "control planes, the agents (found through /sd/agents) and etcd")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop the local cluster and remove what it created")
    p.add_argument("--run-dir", default=DEFAULT_RUN)
    p.add_argument("--state-dir", default=None,
                   help=f"with --purge and no cluster up: the kept state to delete (default {DEFAULT_STATE})")
    p.add_argument("--purge", action="store_true", help="also delete its state (etcd data, images)")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("controlplane", help="run a control plane (foreground)")
    p.add_argument("--etcd", default=None,
                   help="etcd endpoints, URL[,URL...] (default: run an etcd of its own, its data in "
                   "STATE_DIR/etcd, stopped with it)")
    p.add_argument("--listen", default="127.0.0.1:7700", help="ADDR:PORT[,ADDR:PORT...]")
    p.add_argument("--join", default="", metavar="HOST:PORT[,...]",
                   help="join the control planes there (a new replica of a running cluster): it gets "
                   "the CA and the secrets key with the control-plane token")
    p.add_argument("--token-file", default="", metavar="FILE",
                   help="with --join: the control-plane join token (0600; or $ORCH_JOIN_TOKEN)")
    p.add_argument("--pki-dir", default="", metavar="DIR",
                   help="the cluster CA (ca.crt, ca.key 0600) and the join tokens' files (default: "
                   "STATE_DIR/pki; made there by a first replica)")
    p.add_argument("--cert-days", type=float, default=90.0, metavar="DAYS",
                   help="lifetime of the certificates it signs (default 90; renewed at 50-80%%)")
    p.add_argument("--socket", default=CONTROLPLANE_SOCKET,
                   help="root-only unix socket for the local CLI ('' for none)")
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused: secrets stay out of argv
    p.add_argument("--state-dir", default="/var/lib/orch/controlplane")
    p.add_argument("--id", default="", help="this replica's id (default: random)")
    p.add_argument("--registry-ca", default="", metavar="FILE",
                   help="a PEM CA to trust for the registries whose tags a deploy pins, besides "
                   "the system's and /etc/orch/certs.d/HOST:PORT/ca.crt")
    p.add_argument("--metrics-listen", default="", metavar="HOST:PORT",
                   help="serve Prometheus metrics (/metrics) and the agents' service discovery "
                   "(/sd/agents) there")
    p.add_argument("--network-pool", default="10.96.0.0/11", metavar="CIDR",
                   help="where overlay networks' subnets come from, a /24 each (default 10.96.0.0/11)")
    p.add_argument("--secrets-key-file", default="", metavar="FILE",
                   help="the key that seals secrets in etcd (0600, 64 hex digits; every replica of a "
                   "cluster needs the same; default: made as STATE_DIR/secrets.key)")
    p.set_defaults(func=cmd_controlplane)

    p = sub.add_parser("deploy", help="apply a manifest and follow it until it runs")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-d", "--detach", action="store_true", help="return at once")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--build", action="store_true",
                   help="build each service's build: with the local engine ($ORCH_HOST), push it to the "
                        "cluster's registry and deploy it pinned to its digest")
    p.add_argument("--registry", default="", metavar="HOST:PORT",
                   help="where --build pushes (default: $ORCH_REGISTRY, else the local cluster's)")
    add_profile(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("scale", help="set replica counts: SVC=N [SVC=N...]")
    p.add_argument("pairs", nargs="+", metavar="SVC=N")
    p.set_defaults(func=cmd_scale)

    p = sub.add_parser("services", help="list services")
    add_output(p)
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("nodes", help="list nodes")
    add_output(p)
    p.set_defaults(func=cmd_nodes)

    p = sub.add_parser("node", help="drain, activate, label or remove a node")
    nsub = p.add_subparsers(dest="node_command", metavar="COMMAND", parser_class=type(p))
    nsub.required = True
    for verb in ("drain", "activate"):
        q = nsub.add_parser(verb, help=f"{verb} a node")
        q.add_argument("node")
        if verb == "drain":
            q.add_argument("--allow-data-loss", action="store_true",
                           help="also move the tasks whose node-local volume data the node holds: they "
                                "start elsewhere with empty volumes (refused without it)")
        q.set_defaults(func=cmd_node_availability, availability="active" if verb == "activate"
                       else "drain")
    q = nsub.add_parser("rm", help="remove a node and revoke its certificate (refused at once)")
    q.add_argument("nodes", nargs="+", metavar="NODE")
    q.add_argument("-f", "--force", action="store_true", help="also a node that is ready (its tasks move)")
    q.set_defaults(func=cmd_node_rm)
    q = nsub.add_parser("label", help="add K=V or remove K- labels")
    q.add_argument("node")
    q.add_argument("labels", nargs="+", metavar="K=V|K-")
    q.set_defaults(func=cmd_node_label)


# ---- local cluster -----------------------------------------------------------

def cmd_up(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cluster.local import UpError, up

    if os.geteuid() != 0:
        raise CLIError("orch up needs root (namespaces, cgroups, networks)")
    t0 = time.monotonic()
    try:
        rec = up(args.nodes, args.state_dir, args.run_dir, args.subnet, args.bridge, args.prefix,
                 args.port, args.controlplanes, args.registry, args.monitoring, args.etcd_members)
    except UpError as err:
        raise CLIError(str(err))
    print(f"cluster up: {len(rec.nodes)} node(s) ready in {time.monotonic() - t0:.1f} s")
    for node in rec.nodes:
        where = f"netns {node.netns}, " if node.netns else ""
        print(f"  {node.name}: {where}{node.address}")
    if rec.registry:
        print(f"registry: {rec.registry} (push with ORCH_HOST=unix://{rec.nodes[0].run_dir}/"
              f"agent.sock orch push IMAGE {rec.registry}/NAME:TAG)")
    if rec.prometheus:
        print(f"prometheus: http://{rec.prometheus} (dashboards to load into Grafana: examples/grafana)")
    print(f"control plane: {rec.controlplane} (the CLI finds it; elsewhere: "
          f"export ORCH_CLUSTER={rec.controlplane})")
    print(f"join another host: orch agent --join {rec.join} --token-file {rec.token_file} "
          "--listen HOST_ADDR:7701")
    return 0


def cmd_down(args: argparse.Namespace, _agent: Any) -> int:
    """Exit 0 once nothing of the cluster is left; 1, listing what is, otherwise."""
    from orch.cluster.local import UpError, down

    if os.geteuid() != 0:
        raise CLIError("orch down needs root (namespaces, cgroups, networks)")
    try:
        report = down(args.run_dir, purge=args.purge, state_dir=args.state_dir)
    except UpError as err:
        raise CLIError(str(err))
    if report.remains:
        print("orch down could not remove:", file=sys.stderr)
        for line in report.remains:
            print(f"  {line}", file=sys.stderr)
        record = os.path.join(args.run_dir, "cluster.json")
        kept = f"; {record} is kept: run orch down again" if os.path.exists(record) else ""
        raise CLIError(f"{len(report.remains)} thing(s) of the cluster remain (listed above){kept}")
    removed = f": deleted {', '.join(report.removed)}" if report.removed else ""
    if report.record is None:
        print("no cluster was up" + (f"; purged its kept state{removed}" if removed else ""))
    elif args.purge:
        print(f"cluster down and purged{removed}")
    else:
        print(f"cluster down (state kept in {report.record.state_dir}; --purge deletes it)")
    return 0


def cmd_controlplane(args: argparse.Namespace, _agent: Any) -> int:
    if args.token is not None:
        raise CLIError("--token would show the join token to every user in the process list; "
                       "pass it with --token-file FILE (mode 0600) or $ORCH_JOIN_TOKEN")
    from controlplane.server import ControlPlaneError, ControlPlaneOptions, check_options, serve

    etcd = [] if args.etcd is None else args.etcd.split(",")  # none: an embedded etcd
    opts = ControlPlaneOptions(etcd=etcd, listen=args.listen.split(","),
                               token_file=args.token_file, pki_dir=args.pki_dir,
                               join=[a for a in args.join.split(",") if a], cert_days=args.cert_days,
                               socket=args.socket, state_dir=args.state_dir, id=args.id,
                               registry_ca=args.registry_ca, network_pool=args.network_pool,
                               metrics_listen=args.metrics_listen,
                               secrets_key_file=getattr(args, "secrets_key_file", ""))
    try:
        check_options(opts)
        return serve(opts)
    except ControlPlaneError as err:
        raise CLIError(str(err))


# ---- services ------------------------------------------------------------------

def cmd_deploy(args: argparse.Namespace, agent: Any) -> int:
    from orch.cli.pbwire import decode_deploy_response, encode_deploy_request

    text = read_manifest(args.file)
    api = client(args)
    # The control plane parses the manifest (errors name this file, line
    # and field), so this process loads neither YAML nor the model. In wire
    # format by hand: the deploy path does without protobuf.
    # A manifest without a top-level name: is a stack named after its
    # directory, as Compose names a project (the control plane cannot see it).
    stack = os.path.basename(os.path.dirname(os.path.abspath(args.file)))
    from orch.cli.secretcmd import manifest_env_files, manifest_files

    files = manifest_files(text, args.file)  # the values of its secrets and configs, read here
    built: dict[str, str] = {}
    if args.build:
        from orch.cli import deploybuild

        todo = deploybuild.builds(text, args.file)
        if todo:
            record = _local_record()
            where = deploybuild.registry(args.registry, record)
            built = deploybuild.build_and_push(deploybuild.engine(args, agent, record), todo, where,
                                               _stack_name(text, stack))
    request = encode_deploy_request(text, args.file, stack=stack, files=files,
                                    profiles=profiles(args.profile),
                                    env_files=manifest_env_files(text, args.file), built=built)
    reply = api.call_bytes("Deploy", request)
    written = decode_deploy_response(reply)
    print(f"deployed {', '.join(w.name for w in written)}")
    if args.detach:
        return 0
    return follow_rollout(api, written, args.timeout)


def _stack_name(text: str, default: str) -> str:
    """The manifest's top-level ``name:`` if it has one (the stack's name), else ``default``."""
    import re

    match = re.search(r"^name\s*:\s*['\"]?([A-Za-z0-9][A-Za-z0-9_.-]*)", text, re.MULTILINE)
    return (match.group(1) if match else default).lower()


def follow_rollout(api: Cluster, written: list[Any], timeout: float, rollback: bool = False) -> int:
    """Live progress until every replica runs and every rollout completed
    (0), one is unplaceable (2), rolled back (3), paused (4) or fails (1).
    One stream (EventBatches): the services' state, then their changes."""
    from orch.cli.pbwire import decode_event_batch, encode_events_request
    from orch.cli.rollout import Rollout

    deadline = time.monotonic() + timeout
    names = [w.name for w in written]
    rollout = Rollout(names, written=written, rollback=rollback)
    last = ""
    request = encode_events_request(names, initial=True, keepalive=0.5)
    for data in api.stream_bytes("EventBatches", request):
        for action, _kind, obj in decode_event_batch(data):
            if action in ("put", "delete"):
                rollout.apply(action, obj)
            elif action == "synced":
                rollout.synced = True
        if not rollout.synced:
            continue  # keepalives too: an unplaceable verdict may ripen with time alone
        verdict = rollout.verdict()
        if verdict.missing:
            raise CLIError(f"no such service: {', '.join(verdict.missing)} (removed meanwhile?)")
        if verdict.text != last:
            print(verdict.text, flush=True)
            last = verdict.text
        if verdict.done:
            return 0
        if verdict.rolled_back:
            print("rolled back: " + "; ".join(verdict.rolled_back), file=sys.stderr)
            return 3
        if verdict.paused:
            print("paused: " + "; ".join(verdict.paused) + " (`orch update --resume SERVICE` goes on, "
                  "`orch rollback SERVICE` goes back)", file=sys.stderr)
            return 4
        if verdict.unplaceable:
            print("unplaceable: " + "; ".join(verdict.unplaceable[:5]), file=sys.stderr)
            return 2
        if verdict.failed:
            print("failed: " + "; ".join(verdict.failed[:5]), file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(f"not converged after {timeout:.0f} s", file=sys.stderr)
            return 1
    raise CLIError("the control plane ended the event stream; see orch ps")


def parse_scale(pairs: list[str]) -> list[tuple[str, int]]:
    """``SERVICE=REPLICAS`` pairs, all checked before any is sent (ASCII digits, within
    ``MAX_REPLICAS``): a bad pair must not leave the others half applied."""
    from model.units import MAX_REPLICAS

    out = []
    for pair in pairs:
        name, sep, count = pair.partition("=")
        if not sep or not name or not (count.isascii() and count.isdigit()):
            raise CLIError(f"invalid scale {pair!r}: expected SERVICE=REPLICAS")
        if len(count) > 7 or int(count) > MAX_REPLICAS:
            raise CLIError(f"invalid scale {pair!r}: at most {MAX_REPLICAS} replicas per service")
        out.append((name, int(count)))
    return out


def cmd_scale(args: argparse.Namespace, _agent: Any) -> int:
    from proto import cluster_pb2 as cpb

    pairs = parse_scale(args.pairs)
    api = client(args)
    for name, count in pairs:
        api.call("Scale", cpb.ScaleRequest(service=name, replicas=count))
        print(f"{name} scaled to {count}")
    return 0


def _plain(obj: Any) -> dict[str, Any]:
    """An object as ``-o json`` shows it: its fields (``model.to_dict``) and its version."""
    from model.objects import to_dict

    return {**to_dict(obj), "version": obj.version}


def cmd_services(args: argparse.Namespace, _agent: Any) -> int:
    from model.objects import TaskState
    from model.wire import service_from_pb, task_from_pb
    from proto import cluster_pb2 as cpb

    api = client(args)
    services = [service_from_pb(s) for s in api.call("ListServices", cpb.ListRequest()).services]
    tasks = [task_from_pb(t) for t in api.call("ListTasks", cpb.ListTasksRequest()).tasks]
    rows = []
    for s in services:
        mine = [t for t in tasks if t.service_id == s.id and t.desired_state == TaskState.RUNNING]
        running = sum(1 for t in mine if t.status.state == TaskState.RUNNING)
        target = s.spec.replicas if s.spec.mode == "replicated" else len(mine)
        ports = ", ".join(f"*:{p.published}->{p.target}/{p.protocol}" for p in s.spec.ports)
        rows.append([s.id[:12], s.spec.name, s.spec.mode, f"{running}/{target}", s.spec.image, ports,
                     _rollout(s)])
    emit(args.output, [_plain(s) for s in services],
         ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS", "ROLLOUT"], rows)
    return 0


def _rollout(service: Any) -> str:
    """A service's rollout for a table: "" once completed (or never started)."""
    status = service.update_status
    if status is None or status.state == "completed":
        return ""
    state = status.state.replace("_", " ")
    if status.state.endswith("completed"):
        return state
    failed = f", {len(status.failed)} failed" if status.failed else ""
    return f"{state} {status.updated}/{status.total}{failed}"


def cmd_cluster_ps(args: argparse.Namespace) -> int:
    from model.wire import node_from_pb, task_from_pb
    from proto import cluster_pb2 as cpb

    api = client(args)
    service = args.service or ""
    tasks = [task_from_pb(t) for t in api.call(
        "ListTasks", cpb.ListTasksRequest(service=service, all=args.all)).tasks]
    nodes = {n.id: n.name for n in map(node_from_pb, api.call("ListNodes", cpb.ListRequest()).nodes)}

    out, rows = [], []
    for t in sorted(tasks, key=lambda t: (t.service_name, t.slot, -t.created_at)):
        state, desired, status = t.status.state.label(), t.desired_state.label(), t.status
        node = nodes.get(t.node_id, t.node_id[:12])
        name = f"{t.service_name}.{t.slot or node}"
        out.append({"id": t.id, "name": name, "service": t.service_name, "slot": t.slot,
                    "node": node, "node_id": t.node_id, "created": t.created_at, "state": state,
                    "desired": desired, "since": status.timestamp, "error": status.error,
                    "message": status.message, "health": status.health,
                    "networks": [{"network": n.name, "network_id": n.network_id, "address": n.address,
                                  "aliases": list(n.aliases)} for n in t.networks]})
        health = f" ({status.health})" if status.health and state == "running" else ""
        rows.append([t.id[:12], name, node, desired, f"{state}{health} {ago(status.timestamp)}",
                     status.error or (status.message if state == "pending" else "")])
    emit(args.output, out, ["ID", "NAME", "NODE", "DESIRED", "STATE", "ERROR"], rows)
    return 0


def cmd_nodes(args: argparse.Namespace, _agent: Any) -> int:
    from model.wire import node_from_pb
    from proto import cluster_pb2 as cpb

    api = client(args)
    nodes = [node_from_pb(n) for n in api.call("ListNodes", cpb.ListRequest()).nodes]
    out = [_plain(n) for n in nodes]
    rows = [[n.id[:12], n.name, n.state, n.availability, n.address,
             ",".join(f"{k}={v}" for k, v in sorted(n.labels.items()))] for n in nodes]
    emit(args.output, out, ["ID", "NAME", "STATE", "AVAILABILITY", "ADDRESS", "LABELS"], rows)
    return 0


def cmd_node_availability(args: argparse.Namespace, _agent: Any) -> int:
    from model.wire import availability_to_pb
    from proto import cluster_pb2 as cpb

    client(args).call("UpdateNode", cpb.UpdateNodeRequest(
        node=args.node, availability=availability_to_pb(args.availability),
        allow_data_loss=getattr(args, "allow_data_loss", False)))
    print(f"{args.node}: {args.availability}")
    return 0


def cmd_node_rm(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cli.common import remove_each
    from proto import cluster_pb2 as cpb

    api = client(args)
    return remove_each(args.nodes, lambda name: api.call("RemoveNode", cpb.RemoveNodeRequest(
        node=name, force=args.force)))


def cmd_node_label(args: argparse.Namespace, _agent: Any) -> int:
    from proto import cluster_pb2 as cpb

    add, remove = {}, []
    for item in args.labels:
        if item.endswith("-") and "=" not in item:
            remove.append(item[:-1])
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"invalid label {item!r}: expected KEY=VALUE or KEY-")
        add[key] = value
    client(args).call("UpdateNode", cpb.UpdateNodeRequest(node=args.node, add_labels=add,
                                                          remove_labels=remove))
    print(args.node)
    return 0


def cmd_cluster_rm(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    api = client(args)
    for name in args.containers:
        api.call("RemoveService", cpb.ServiceRef(name=name))
        print(name)
    return 0


def cmd_cluster_logs(args: argparse.Namespace) -> int:
    from orch.cli.containers import log_window, write_lines
    from proto import cluster_pb2 as cpb

    since, until = log_window(args)
    request = cpb.ServiceLogsRequest(service=args.container, follow=args.follow, since=since, until=until)
    if args.tail is not None:
        request.tail = args.tail
    stamp = args.timestamps
    for batch in client(args).stream("LogBatches", request):
        head = f"{batch.task}@{batch.node} | "
        if batch.notice:
            sys.stderr.write(f"{head}{batch.notice}\n")
            sys.stderr.flush()
        write_lines(batch.lines, head, stamp, args.follow)
    return 0


def cmd_cluster_exec(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    if not args.cmd:
        raise CLIError("exec needs a command: orch exec TASK CMD [ARG...]")
    request = cpb.TaskExecRequest(task=args.container, command=args.cmd)
    if getattr(args, "interactive", False) or getattr(args, "tty", False):
        from orch.cli import interactive

        request.tty, request.stdin = args.tty, args.interactive
        return interactive.exec_cluster(client(args), request)
    return write_exec_output(client(args).stream("Exec", request))
