"""``orch cert`` and ``orch token``: the cluster's certificates and join tokens.

- ``orch cert issue --user NAME [--out DIR] [--days N]``: a certificate for a
  person using the API from another machine. The key is made here and never
  leaves this process's files; the control plane signs a request for it.
  ``DIR`` gets ``ca.pem``, ``cert.pem`` and ``key.pem`` (0600), the layout
  ``$ORCH_CERT_PATH`` (and ``--tlscacert/--tlscert/--tlskey``) read.
- ``orch cert ca [--pki-dir DIR]``: make the cluster CA before anything
  runs (on real machines, etcd's TLS needs it first); prints its digest.
- ``orch cert etcd NAME --ip ADDR[,ADDR] [--pki-dir DIR] --out DIR``: an etcd
  member's certificate, signed by the CA in the pki dir (no control plane
  needed): ``DIR`` gets ``ca.crt``, ``NAME.crt`` and ``NAME.key``.
- ``orch token [node|controlplane]``: the join tokens; ``orch token rotate
  ROLE`` replaces one: new joins need the new token, joined nodes are left
  alone.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from orch.cli.client import CLIError

DEFAULT_PKI = "/var/lib/orch/controlplane/pki"


def register(sub: Any) -> None:
    p = sub.add_parser("cert", help="the cluster's certificates: a user's, the CA, an etcd member's")
    csub = p.add_subparsers(dest="cert_command", metavar="COMMAND", parser_class=type(p))
    csub.required = True
    q = csub.add_parser("issue", help="a certificate for a user of the API (through the control plane)")
    q.add_argument("--user", required=True, metavar="NAME", help="the user's name (the certificate's CN)")
    q.add_argument("--out", default="", metavar="DIR", help="where to write ca.pem, cert.pem, key.pem "
                   "(default: ./NAME)")
    q.add_argument("--days", type=float, default=0.0, help="lifetime (default: the cluster's, 90)")
    q.set_defaults(func=cmd_cert_issue)
    q = csub.add_parser("ca", help="make the cluster CA in the pki dir (if there is none); print its digest")
    q.add_argument("--pki-dir", default=DEFAULT_PKI, metavar="DIR")
    q.set_defaults(func=cmd_cert_ca)
    q = csub.add_parser("etcd", help="an etcd member's certificate, signed by the CA in the pki dir")
    q.add_argument("name", help="the member's name")
    q.add_argument("--ip", required=True, metavar="ADDR[,ADDR]", help="the addresses it serves at")
    q.add_argument("--pki-dir", default=DEFAULT_PKI, metavar="DIR")
    q.add_argument("--out", required=True, metavar="DIR")
    q.set_defaults(func=cmd_cert_etcd)

    p = sub.add_parser("token", help="print the join tokens, or rotate one")
    p.add_argument("words", nargs="*", metavar="[rotate] [node|controlplane]")
    p.add_argument("-q", "--quiet", action="store_true", help="only the token (give a role)")
    p.set_defaults(func=cmd_token)


def _client(args: argparse.Namespace) -> Any:
    from orch.cli.clustercmd import client

    return client(args)


def cmd_cert_issue(args: argparse.Namespace, _agent: Any) -> int:
    from common import pki
    from common.auth import write_private
    from proto import cluster_pb2 as cpb

    out = args.out or args.user
    if os.path.exists(os.path.join(out, "key.pem")):
        raise CLIError(f"{out}/key.pem exists: pick another --out, or remove it first")
    key = pki.new_key()
    reply = _client(args).call("IssueCertificate", cpb.IssueCertificateRequest(
        name=args.user, csr=pki.new_csr(key), days=args.days))
    write_private(os.path.join(out, "key.pem"), key)
    write_private(os.path.join(out, "cert.pem"), bytes(reply.cert))
    write_private(os.path.join(out, "ca.pem"), bytes(reply.ca))
    who = pki.identity(bytes(reply.cert))
    print(f"{out}: ca.pem, cert.pem, key.pem for user {who.node_id} of cluster {who.cluster_id}, valid "
          f"{(who.not_after - who.not_before) / 86400:.0f} days; use: ORCH_CERT_PATH={out} "
          "orch -C HOST:PORT ...")
    return 0


def cmd_cert_ca(args: argparse.Namespace, _agent: Any) -> int:
    from common import pki
    from controlplane.trust import TrustError, create_ca

    try:
        ca = create_ca(args.pki_dir)
    except (TrustError, OSError) as err:
        raise CLIError(f"the CA in {args.pki_dir}: {err}")
    print(f"CA of cluster {pki.ca_cluster_id(ca.cert_pem)} in {args.pki_dir}; digest "
          f"{pki.ca_digest(ca.cert_pem)}")
    return 0


def cmd_cert_etcd(args: argparse.Namespace, _agent: Any) -> int:
    import shutil

    from common import pki
    from controlplane.trust import TrustError, etcd_tls, load_ca

    try:
        ca = load_ca(args.pki_dir)
    except TrustError as err:
        raise CLIError(str(err))
    if ca is None:
        raise CLIError(f"no CA in {args.pki_dir}: make one with orch cert ca --pki-dir {args.pki_dir}")
    addresses = [a for a in args.ip.split(",") if a]
    try:
        tls = etcd_tls(ca, args.out, args.name, addresses)
    except pki.CertError as err:
        raise CLIError(f"--ip: {err}")
    if not os.path.exists(tls.ca_file):
        shutil.copyfile(os.path.join(args.pki_dir, "ca.crt"), tls.ca_file)
    print(f"{args.out}: ca.crt, {args.name}.crt, {args.name}.key")
    return 0


def cmd_token(args: argparse.Namespace, _agent: Any) -> int:
    from proto import cluster_pb2 as cpb

    words = list(args.words)
    rotate = bool(words) and words[0] == "rotate"
    if rotate:
        words = words[1:]
    if len(words) > 1 or (words and words[0] not in ("node", "controlplane")) or (rotate and not words):
        raise CLIError("usage: orch token [node|controlplane] | orch token rotate node|controlplane")
    role = words[0] if words else ""
    reply = _client(args).call("JoinTokens", cpb.JoinTokensRequest(rotate=role if rotate else ""))
    tokens = {"node": reply.node, "controlplane": reply.controlplane}
    if args.quiet and role:
        print(tokens[role])
        return 0
    if rotate:
        print(f"rotated the {role} join token: joined nodes keep their certificates; new joins need")
    for name in [role] if role else ["node", "controlplane"]:
        print(f"{name:13} {tokens[name]}")
    return 0
