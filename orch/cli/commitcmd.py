"""Container file commands: commit (a container's changes as a new image)
and cp (files between a container and the host, as `docker cp`).

`orch cp` moves one tar stream: out of the container it arrives from the
agent's CopyFrom and is unpacked here (or written to stdout for ``-``);
into it this side writes it (or passes stdin's on for ``-``) to CopyTo,
and the agent unpacks it. Where a copy lands is the same rule both ways
(``nodeagent.agent.copyfs.place``: Docker's, with its trailing ``/`` and
``/.``). Unpacking here never writes through a symlink to outside the
destination, and keeps the files' owner as the user running orch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
from collections.abc import Iterable, Iterator
from typing import Any

from orch.cli.client import Agent, CLIError

CHUNK = 256 << 10


def register(sub: Any) -> None:
    p = sub.add_parser("commit", help="make a new image of a container's changes")
    p.add_argument("-m", "--message", default="", help="a commit message (in the image's history)")
    p.add_argument("-a", "--author", default="", help='the author, e.g. "Name <email>"')
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="a Dockerfile instruction to apply to the image's config: CMD, ENTRYPOINT, "
                        "ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK")
    p.add_argument("-p", "--pause", action=argparse.BooleanOptionalAction, default=True,
                   help="accepted for Docker's sake: the container is never paused")
    p.add_argument("container")
    p.add_argument("ref", nargs="?", default="", metavar="IMAGE[:TAG]")
    p.set_defaults(func=cmd_commit)

    p = sub.add_parser("cp", help="copy files between a container and the host",
                       description="orch cp CONTAINER:SRC DEST|-  or  orch cp SRC|- CONTAINER:DEST "
                                   "(SRC/. copies a directory's contents; - is a tar stream on "
                                   "stdout or stdin)")
    p.add_argument("-a", "--archive", action="store_true",
                   help="keep the files' uid and gid (default: root's in the container)")
    p.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink in a host SRC")
    p.add_argument("src")
    p.add_argument("dest")
    p.set_defaults(func=cmd_cp)


def cmd_commit(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    image = agent.call("Commit", pb.CommitRequest(container=args.container, ref=args.ref,
                                                 message=args.message, author=args.author,
                                                 changes=args.change, pause=args.pause))
    print(image.id)
    return 0


# -- cp -------------------------------------------------------------------------------------


def split_arg(arg: str) -> tuple[str, str]:
    """("CONTAINER", "PATH") for CONTAINER:PATH; ("", arg) for a host path
    (absolute, starting with ".", or without a colon), as Docker splits."""
    if arg.startswith("/") or arg.startswith("."):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep:
        return "", arg
    return container, path


def cmd_cp(args: argparse.Namespace, agent: Agent) -> int:
    src_ctr, src = split_arg(args.src)
    dest_ctr, dest = split_arg(args.dest)
    if src_ctr and dest_ctr:
        raise CLIError("copying between containers is not supported: copy to the host first")
    if not src_ctr and not dest_ctr:
        raise CLIError("one of SRC and DEST must be CONTAINER:PATH")
    if src_ctr:
        if not src:
            raise CLIError(f"{args.src}: no path in the container given")
        _copy_out(agent, src_ctr, src, dest)
    else:
        if not dest:
            raise CLIError(f"{args.dest}: no path in the container given")
        _copy_in(agent, src, dest_ctr, dest, args.archive, args.follow_link)
    return 0


def _copy_out(agent: Agent, container: str, src: str, dest: str) -> None:
    from proto import agent_pb2 as pb

    chunks = (c.data for c in agent.stream("CopyFrom", pb.CopyFromRequest(container=container, path=src)))
    if dest == "-":
        out = sys.stdout.buffer
        for data in chunks:
            out.write(data)
        out.flush()
        return
    _unpack_here(_Reader(chunks), src.endswith("/.") or src == ".", dest)


def _unpack_here(stream: _Reader, contents: bool, dest: str) -> None:
    """Unpack the container's tar at the host path ``dest`` (``place``'s rule)."""
    from nodeagent.agent.copyfs import place, renamed, split_top, top_entry

    try:
        with _HostTar.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            first = tar.next()
            if first is None:
                return
            top, is_dot, src_is_dir = top_entry(first)
            kind = ("dir" if os.path.isdir(dest) else "file") if os.path.exists(dest) else "missing"
            unpack_dir, new_top = place(src_is_dir, contents or is_dot, dest, kind)
            if not os.path.isdir(unpack_dir):
                raise CLIError(f"no such directory: {unpack_dir}")
            dirs: list[tarfile.TarInfo] = []
            member: tarfile.TarInfo | None = first
            while member is not None:
                name = renamed(split_top(member.name), top, new_top, member.name)
                if name:
                    member.name = "/".join(name)
                    if member.islnk():
                        member.linkname = "/".join(renamed(split_top(member.linkname), top, new_top,
                                                           member.linkname))
                    member = _host_filter(member, unpack_dir)
                    # A directory's mode and mtime are set once its files are in
                    # (a read-only one would refuse them), deepest first.
                    tar.extract(member, unpack_dir, set_attrs=not member.isdir(), filter="fully_trusted")
                    if member.isdir():
                        dirs.append(member)
                member = tar.next()
            for info in sorted(dirs, key=lambda d: d.name, reverse=True):
                path = os.path.join(unpack_dir, info.name)
                tar.chmod(info, path)
                tar.utime(info, path)
    except ValueError as err:
        raise CLIError(str(err)) from None
    except tarfile.TarError as err:
        raise CLIError(f"cannot unpack the copy at {dest}: {err}") from None
    except OSError as err:
        raise CLIError(f"cannot unpack the copy at {dest}: {err.strerror or err}"
                       + (f": {err.filename}" if err.filename else "")) from None


class _HostTar(tarfile.TarFile):
    """Files unpacked on the host belong to whoever runs orch, as with
    `docker cp`: never chowned to the container's uids."""

    def chown(self, tarinfo: tarfile.TarInfo, targetpath: Any, numeric_owner: bool) -> None:
        pass


def _host_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's "tar" filter (nothing lands, or is written through a
    symlink, outside ``dest``), except that a symlink keeps its target as
    the container has it: it is only a name, never followed here."""
    if member.issym():
        checked = tarfile.tar_filter(member.replace(linkname="", deep=False), dest)
        return checked.replace(linkname=member.linkname, deep=False)
    return tarfile.tar_filter(member, dest)


def _copy_in(agent: Agent, src: str, container: str, dest: str, archive: bool, follow: bool) -> None:
    import grpc

    from proto import agent_pb2 as pb
    from proto import agent_pb2_grpc as pb_grpc

    data = _stdin_tar() if src == "-" else _host_tar(src, archive, follow)
    first = next(data, b"")  # a bad SRC fails here, before any connection

    failed: list[CLIError] = []

    def requests() -> Iterator[pb.CopyToChunk]:
        yield pb.CopyToChunk(container=container, path=dest, data=first)
        try:
            for chunk in data:
                yield pb.CopyToChunk(data=chunk)
        except CLIError as err:  # gRPC cancels the call: the reason is ours to tell
            failed.append(err)
            raise

    agent.channel  # noqa: B018 (the agent's own checks: its socket is there, and ours to use)
    with grpc.insecure_channel(agent.host) as channel:
        try:
            pb_grpc.AgentStub(channel).CopyTo(requests())
        except grpc.RpcError as err:
            if failed:
                raise failed[0] from None
            if err.code() == grpc.StatusCode.UNAVAILABLE and not err.details():
                raise CLIError(agent.not_running_message()) from None
            raise CLIError(err.details() or f"copy failed: {err.code()}") from None


def _host_tar(src: str, archive: bool, follow: bool) -> Iterator[bytes]:
    from nodeagent.agent.copyfs import tar_of

    contents = src.endswith("/.") or src == "."
    follow = follow or src.endswith("/") or contents
    try:
        fd = os.open(src, os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))
    except OSError as err:
        raise CLIError(f"{src}: {err.strerror}") from None
    try:
        top = "." if contents else (os.path.basename(os.path.normpath(src)) or ".")
        if contents and not os.path.isdir(f"/proc/self/fd/{fd}"):
            raise CLIError(f"{src}: not a directory")
        try:
            yield from tar_of(fd, top, owner=None if archive else (0, 0))
        except OSError as err:
            raise CLIError(f"cannot read {src}: {err.strerror or err}"
                           + (f": {err.filename}" if err.filename else "")) from None
    finally:
        os.close(fd)


def _stdin_tar() -> Iterator[bytes]:
    """Stdin's tar, after a ``.`` entry: its members are the contents of
    the destination directory (a tar is a sequence of blocks, so the two
    join as they are)."""
    import time

    head = sys.stdin.buffer.read(tarfile.BLOCKSIZE)
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        what = "empty" if not head else "not a tar archive"
        raise CLIError(f"stdin is {what}: `orch cp - CONTAINER:DIR` takes a tar stream") from None
    dot = tarfile.TarInfo(".")
    dot.type, dot.mode, dot.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
    yield dot.tobuf(tarfile.PAX_FORMAT) + head
    while data := sys.stdin.buffer.read(CHUNK):
        yield data


class _Reader:
    """Chunks of bytes as a file to read (tarfile's stream mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data
