"""Image jobs (import, pull, push, login), each in a process of its own.

The node agent runs these through :func:`run_job` rather than in itself. They
load the tar, gzip, hashing, TLS and HTTP code (httpx: the agent process
never imports it), and hold buffers while they run; a long-lived agent would
carry all of that for good after its first pull. In a process of their own
they also keep the CPU-heavy hashing and (de)compression away from the
agent's gRPC threads. Like the builder, a job is started by exec, never by
forking the agent.

``python -m nodeagent.images.job --state-dir D [--registry-ca FILE] VERB ARGS...``::

    import SOURCE REF          a one-layer image of a directory or tarball
    pull REMOTE                from a registry (credentials from D/auth.json)
    push REF REMOTE            to a registry
    login REGISTRY USER        the password comes on stdin

``--registry-ca`` trusts one more CA for the registry, besides the system's,
``$ORCH_REGISTRY_CA`` (the agent's own ``--registry-ca``) and certs.d
(:mod:`registry.transport`). An imported or pulled image's layers are
unpacked before the job ends (a pull refuses a hostile layer then), so the
first container of the image does not wait for them.

The job writes JSON lines on stdout: any number of
``{"progress": [kind, digest, done, total]}``, then ``{"result": "..."}`` or
``{"error": {"code": ..., "message": ...}}``. The error keeps the
:mod:`common.errors` code, so the agent answers with the same status it
would have given for the error raised in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Generator
from typing import Any

from common.errors import AgentError, InvalidArgument, from_dict

Progress = tuple[str, str, int, int]  # kind, digest, bytes done, bytes in all


def follow_job(state_dir: str, verb: str, *args: str, stdin: str = "",
               registry_ca: str = "") -> Generator[Progress, None, str]:
    """Run one job, yielding its progress as it comes. The generator returns
    the job's result, or raises its error. A caller that stops early leaves
    the job to finish unwatched (its output is dropped; subprocess reaps it),
    so a pull whose client went away still lands in the store."""
    cmd = [sys.executable, "-m", "nodeagent.images.job", "--state-dir", state_dir]
    if registry_ca:
        cmd += ["--registry-ca", registry_ca]
    cmd += [verb, *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, close_fds=True)
    assert proc.stdin is not None and proc.stdout is not None
    result: str | None = None
    error: AgentError | None = None
    other: list[str] = []  # anything not in the protocol: a crash's traceback
    try:
        try:
            with proc.stdin:
                proc.stdin.write(stdin.encode())
        except BrokenPipeError:  # it ended without reading: its output says why
            pass
        for raw in proc.stdout:
            msg = _parse(raw)
            if msg is None:
                other.append(raw.decode(errors="replace").rstrip())
            elif "progress" in msg:
                kind, digest, done, total = msg["progress"]
                yield kind, digest, done, total
            elif "result" in msg:
                result = str(msg["result"])
            elif "error" in msg:
                error = from_dict(msg["error"])
    finally:
        proc.stdout.close()
    code = proc.wait()
    if error is not None:
        raise error
    if result is None or code != 0:
        detail = next((line for line in reversed(other) if line.strip()), f"exit status {code}")
        raise AgentError(f"image {verb} failed: {detail}")
    return result


def run_job(state_dir: str, verb: str, *args: str, stdin: str = "", registry_ca: str = "") -> str:
    """Run one job to its end: its result, or its error raised here."""
    job = follow_job(state_dir, verb, *args, stdin=stdin, registry_ca=registry_ca)
    while True:
        try:
            next(job)
        except StopIteration as finished:
            return str(finished.value)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


# -- the job's side ----------------------------------------------------------


def _emit(msg: dict[str, object]) -> None:
    try:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # nobody follows any more: the job goes on regardless
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)


def _progress(kind: str, digest: str, done: int, total: int) -> None:
    _emit({"progress": [kind, digest, done, total]})


def _do(state_dir: str, verb: str, args: list[str], registry_ca: str = "") -> str:
    from nodeagent.images.store import ImageStore

    wants = {"import": 2, "pull": 1, "push": 2, "login": 2}
    if wants.get(verb) != len(args):
        raise InvalidArgument(f"image job {verb!r} with {len(args)} argument(s)")
    store = ImageStore(state_dir)
    if verb == "import":
        image = store.import_rootfs(args[0], args[1])
        store.lower_dirs(image)
        return image.id
    from registry.credentials import load_credentials
    from registry.reference import check_registry, parse_remote
    from registry.transport import Settings, check_ca_file

    settings = Settings.from_env(check_ca_file(registry_ca) if registry_ca else "")
    auth_path = os.path.join(state_dir, "auth.json")
    if verb == "login":
        from registry.login import login

        login(check_registry(args[0]), args[1], sys.stdin.read(), auth_path, settings)
        return ""
    remote = args[-1]
    creds = load_credentials(auth_path, parse_remote(remote).registry)
    if verb == "push":
        from nodeagent.images.push import push

        return push(store, args[0], remote, creds, progress=_progress, settings=settings)
    from nodeagent.images.pull import pull

    return pull(store, remote, creds, progress=_progress, settings=settings).id


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    registry_ca = ""
    if len(argv) >= 4 and argv[2] == "--registry-ca":
        registry_ca, argv = argv[3], argv[:2] + argv[4:]
    if len(argv) < 3 or argv[0] != "--state-dir":
        print("usage: python -m nodeagent.images.job --state-dir DIR [--registry-ca FILE] VERB ARGS...",
              file=sys.stderr)
        return 2
    try:
        result = _do(argv[1], argv[2], argv[3:], registry_ca)
    except AgentError as err:
        _emit({"error": err.to_dict()})
        return 1
    _emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
