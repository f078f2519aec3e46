"""README.md's "Three machines with TLS", run as written on three network
namespace "machines" and a fourth one for the laptop, with the units of
examples/systemd/.

What the section says is read, not repeated here:
- its fenced ``sh`` blocks run in order, each under bash in the netns of the
  machines its first line names (``# on m1``, ``# on m2 and m3``, ``# on
  every machine``, ``# on the laptop``), those of one block at once;
- ``systemctl``, ``ssh`` and ``scp`` are stand-ins (this file, run as a
  script): ``systemctl enable --now UNIT`` reads the unit the block copied to
  the machine's /etc/systemd/system, expands its ExecStart= with its
  EnvironmentFile= as systemd does (``${VAR}`` one word, ``$VAR`` split at
  whitespace) and runs it in the background in the machine's netns, returning
  once what it serves accepts connections (what Type=notify would wait for);
  ``ssh HOST CMD`` runs CMD on the machine with that address, ``scp`` copies
  between the machines' files.

Each machine has files of its own: the paths the section and the units use
(/etc/orch, /etc/systemd/system, /var/lib/orch, /opt/orch, /run/orch) are
rewritten to directories of that machine (its /opt/orch is this checkout),
and the documentation addresses 192.0.2.x to a private /24 of the test's
bridge; nothing routes out of it. One line is not run: ``scripts/setup``
installs Debian packages and rebuilds the venv every other test uses; what it
makes is checked instead. The agents get ``ORCH_AGENT_OPTS=--dns-upstream
none`` (the machines here have no resolver to ask).

At the end everything is stopped as an admin would (the agents'
``ExecStop`` with ``--all``, then SIGTERM by pid) and the test fails if
anything of it is left: processes, mounts, container cgroups, namespaces,
links, directories.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
UNITS = REPO / "examples" / "systemd"
SECTION = "## Three machines with TLS"
DOC_NET = "192.0.2."  # the section's addresses (RFC 5737 documentation range)
PATHS = ("/etc/orch", "/etc/systemd/system", "/var/lib/orch", "/run/orch", "/opt/orch")
_PATH = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, PATHS)) + r")(?![\w.-])")
INSTALL = "/opt/orch/scripts/setup"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AGENT_OPTS = "ORCH_AGENT_OPTS=--dns-upstream none\n"
SHIMS = ("systemctl", "ssh", "scp")
MACHINES = ("m1", "m2", "m3")
LAPTOP = "laptop"
PAGE = "hello from orch"  # examples/images/busybox.sh's /www/index.html


# ---- the machines ---------------------------------------------------------------------

@dataclass
class Machine:
    name: str
    netns: str
    address: str  # its address here
    doc_address: str  # its address in the section
    net: str  # the test's /24, "10.221.N."
    root: str  # its files
    run: str  # its /run/orch

    @property
    def home(self) -> str:
        return f"{self.root}/root"

    def place(self, path: str) -> str:
        return self.run if path == "/run/orch" else self.root + path

    def rewrite(self, text: str) -> str:
        """``text`` as this machine sees it: its paths and the test's addresses."""
        return _PATH.sub(lambda m: self.place(m.group(1)), text.replace(DOC_NET, self.net))

    def unrewrite(self, text: str) -> str:
        """The paths of ``rewrite`` back to the section's (addresses stay)."""
        for path in PATHS:
            text = text.replace(self.place(path), path)
        return text


@dataclass
class World:
    base: str  # every machine's files
    run_base: str  # their /run/orch
    bridge: str
    subnet: str
    prefix: str
    machines: dict[str, Machine] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return f"{self.base}/world.json"

    @property
    def shims(self) -> str:
        return f"{self.base}/bin"

    def save(self) -> None:
        Path(self.file).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: str) -> World:
        data = json.loads(Path(path).read_text())
        machines = {k: Machine(**v) for k, v in data.pop("machines").items()}
        return cls(**data, machines=machines)

    def by_host(self, host: str) -> Machine:
        address = host.rpartition("@")[2]
        for m in self.machines.values():
            if address in (m.address, m.doc_address):
                return m
        raise SystemExit(f"ssh: Could not resolve hostname {host}: no such machine here")

    def env(self, m: Machine) -> dict[str, str]:
        """A root login's environment on ``m``: the stand-ins first, then orch's venv."""
        return {"PATH": f"{self.shims}:{m.root}/opt/orch/.venv/bin:{SYSTEMD_PATH}", "HOME": m.home,
                "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash", "LANG": "C.UTF-8",
                "ORCH_CLUSTER_RUN_DIR": f"{m.run}/no-local-cluster",  # never a local `orch up` record
                "ORCH_RM_WORLD": self.file, "ORCH_RM_MACHINE": m.name}


def netns_exec(netns: str, cmd: list[str]) -> list[str]:
    from orch.cluster.local import netns_exec as in_netns

    return in_netns(netns, cmd)


def bash(world: World, m: Machine, script: str) -> subprocess.Popen[str]:
    """``script`` under bash on ``m`` (errexit, nounset, pipefail), in its home."""
    return subprocess.Popen(netns_exec(m.netns, ["bash", "-euo", "pipefail", "-c", script]),
                            cwd=m.home, env=world.env(m), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# ---- the section -------------------------------------------------------------------

@dataclass
class Block:
    where: list[str]
    text: str

    def script(self, m: Machine) -> str:
        """The block as ``m`` runs it: its own name and address in the
        ``NAME=... ADDR=...`` line, setup's results checked instead of run."""
        lines = []
        for line in self.text.splitlines():
            if re.match(r"NAME=\S+ ADDR=\S+", line):
                line = re.sub(r"^NAME=\S+ ADDR=\S+", f"NAME={m.name} ADDR={m.doc_address}", line)
            elif line.strip() == INSTALL:
                line = " && ".join(f"test -x {p}" for p in (
                    INSTALL, "/opt/orch/.venv/bin/orch", "/opt/orch/.venv/libexec/orch-init"))
            lines.append(line)
        return m.rewrite("\n".join(lines) + "\n")


def readme_section() -> str:
    text = README.read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def readme_blocks() -> list[Block]:
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```$", readme_section(), re.S | re.M):
        first = body.splitlines()[0]
        found = re.match(r"# on (every machine|the laptop|m\d(?: and m\d)*)\b", first)
        assert found, f"a block of {SECTION!r} names where it runs in its first line (# on ...): {first!r}"
        where = found.group(1)
        names = {"every machine": list(MACHINES), "the laptop": [LAPTOP]}.get(where) or where.split(" and ")
        blocks.append(Block(names, body))
    return blocks


def documented_ports() -> set[tuple[int, str]]:
    """Every ``PORT/proto`` and ``LOW-HIGH/proto`` the section names."""
    ports = set()
    for low, high, proto in re.findall(r"\b(\d+)(?:-(\d+))?/(tcp|udp)\b", readme_section()):
        ports |= {(p, proto) for p in range(int(low), int(high or low) + 1)}
    return ports


# ---- units, as systemd reads them ------------------------------------------------------

def read_unit(path: str) -> dict[str, list[str]]:
    """key -> values of a unit file (sections flattened; continuation lines joined)."""
    out: dict[str, list[str]] = {}
    pending = ""
    for raw in Path(path).read_text().splitlines():
        line = (pending + raw.strip()) if pending else raw.strip()
        if line.endswith("\\") and not line.startswith(("#", ";")):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def read_env_file(path: str) -> dict[str, str]:
    env = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        key, sep, value = line.partition("=")
        if not line or line.startswith(("#", ";")) or not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def expand(command: str, env: dict[str, str]) -> list[str]:
    """systemd's expansion of ExecStart=: ``$VAR`` alone is split at
    whitespace into zero or more words; ``${VAR}`` is one word, or part of one."""
    words: list[str] = []
    for word in shlex.split(command):
        alone = re.fullmatch(r"\$([A-Za-z_]\w*)", word)
        if alone:
            words += env.get(alone.group(1), "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_]\w*)\}", lambda m: env.get(m.group(1), ""), word))
    return words


@dataclass
class Unit:
    name: str
    env: dict[str, str]
    start: list[str]
    stop: list[list[str]]


def load_unit(m: Machine, name: str) -> Unit:
    """The unit as installed on ``m`` (its /etc/systemd/system), with its environment."""
    spec = read_unit(m.rewrite(f"/etc/systemd/system/{name}.service"))
    env: dict[str, str] = {}
    for path in spec.get("EnvironmentFile", []):
        optional = path.startswith("-")
        with contextlib.suppress(*((FileNotFoundError,) if optional else ())):
            env.update(read_env_file(m.rewrite(path.lstrip("-"))))
    [start] = spec["ExecStart"]
    return Unit(name, env, [m.rewrite(a) for a in expand(start, env)],
                [[m.rewrite(a) for a in expand(cmd, env)] for cmd in spec.get("ExecStop", [])])


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def serves(argv: list[str]) -> list[tuple[int, Any]]:
    """What a started unit accepts connections on once it is ready: its
    --listen addresses, etcd's metrics URL, its unix sockets."""
    found: list[tuple[int, Any]] = []
    for value in flag_values(argv, "--listen"):
        for addr in value.split(","):
            host, _, port = addr.rpartition(":")
            found.append((socket.AF_INET, (host, int(port))))
    for url in flag_values(argv, "--listen-metrics-urls"):
        parts = urlsplit(url)
        found.append((socket.AF_INET, (parts.hostname, parts.port)))
    found += [(socket.AF_UNIX, path) for path in flag_values(argv, "--socket")]
    if "agent" in argv[1:3]:
        found += [(socket.AF_UNIX, f"{run}/agent.sock") for run in flag_values(argv, "--run-dir")]
    return found


def _accepts(family: int, address: Any) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(address)
            return True
        except OSError:
            return False


def pid_file(m: Machine, unit: str) -> Path:
    return Path(m.root, "units", f"{unit}.pid")


def journal(m: Machine, unit: str) -> Path:
    return Path(m.root, "journal", f"{unit}.log")


def start_unit(m: Machine, name: str, timeout: float = 60) -> None:
    unit = load_unit(m, name)
    journal(m, name).parent.mkdir(parents=True, exist_ok=True)
    pid_file(m, name).parent.mkdir(parents=True, exist_ok=True)
    with open(journal(m, name), "ab") as log:
        proc = subprocess.Popen(unit.start, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env={"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8",
                                                             **unit.env})
    pid_file(m, name).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    waiting = serves(unit.start)
    while waiting:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with code {proc.returncode}:\n{_tail(journal(m, name))}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} does not serve {waiting[0][1]} after {timeout:.0f} s:\n"
                             f"{_tail(journal(m, name))}")
        waiting = [w for w in waiting if not _accepts(*w)]
        if waiting:
            time.sleep(0.05)


def stop_unit(m: Machine, name: str, extra: tuple[str, ...] = ()) -> list[str]:
    """ExecStop= (with ``extra`` flags), then SIGTERM (SIGKILL after 15 s)
    to the unit's process; what failed, one line each."""
    from orch.cluster import sweep

    problems = []
    unit = load_unit(m, name)
    for cmd in unit.stop:
        proc = subprocess.run(netns_exec(m.netns, [*cmd, *extra]), capture_output=True, text=True,
                              timeout=180, env={"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", **unit.env})
        if proc.returncode != 0:
            problems.append(f"{m.name}: {name}: ExecStop {' '.join(cmd)}: {proc.stderr.strip()}")
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file(m, name).read_text())
        sweep.terminate({pid: m.root}, 15)
        pid_file(m, name).unlink()
    return problems


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


# ---- the stand-ins ---------------------------------------------------------------------

def shim_systemctl(world: World, m: Machine, args: list[str]) -> int:
    if args == ["daemon-reload"]:
        return 0
    if args[:2] == ["enable", "--now"] or args[:1] == ["start"]:
        for name in args[2:] if args[0] == "enable" else args[1:]:
            start_unit(m, name.removesuffix(".service"))
        return 0
    if args[:1] == ["stop"]:
        problems = [p for name in args[1:] for p in stop_unit(m, name.removesuffix(".service"))]
        print("\n".join(problems), file=sys.stderr, end="\n" if problems else "")
        return 1 if problems else 0
    print(f"systemctl (the test's stand-in): {' '.join(args)}: not supported", file=sys.stderr)
    return 1


def shim_ssh(world: World, m: Machine, args: list[str]) -> int:
    words = list(args)
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        if flag in ("-o", "-p", "-l", "-i") and words:
            words.pop(0)
    if len(words) < 2:
        print("ssh (the test's stand-in): ssh HOST COMMAND", file=sys.stderr)
        return 255
    remote = world.by_host(words[0])
    command = remote.rewrite(m.unrewrite(" ".join(words[1:])))
    proc = subprocess.run(netns_exec(remote.netns, ["bash", "-c", command]), cwd=remote.home,
                          env=world.env(remote))
    return proc.returncode


def shim_scp(world: World, m: Machine, args: list[str]) -> int:
    flags = [a for a in args if a.startswith("-")]
    paths = [a for a in args if not a.startswith("-")]
    if len(paths) < 2 or set("".join(flags)) - set("-rpq"):
        print("scp (the test's stand-in): scp [-rpq] SOURCE... TARGET", file=sys.stderr)
        return 1

    def local(spec: str) -> str:
        host, sep, path = spec.partition(":")
        if not sep or "/" in host:
            return spec
        remote = world.by_host(host)
        path = remote.rewrite(m.unrewrite(path))
        return path if path.startswith("/") else f"{remote.home}/{path}"

    cp = ["cp", *(["-r"] if "r" in "".join(flags) else []), *(["-p"] if "p" in "".join(flags) else [])]
    return subprocess.run([*cp, *map(local, paths)]).returncode


def shim_main(argv: list[str]) -> int:
    world = World.load(os.environ["ORCH_RM_WORLD"])
    m = world.machines[os.environ["ORCH_RM_MACHINE"]]
    shims: dict[str, Callable[[World, Machine, list[str]], int]] = {
        "systemctl": shim_systemctl, "ssh": shim_ssh, "scp": shim_scp}
    return shims[argv[0]](world, m, argv[1:])


# ---- the test --------------------------------------------------------------------------

def test_units_follow_the_product() -> None:
    """The units name the etcd binary orch ships, give etcd the settings and
    TLS flags orch gives every etcd it runs and let only control planes'
    certificates in; the section names the units' ports (and the join port,
    the API's + JOIN_PORT_OFFSET)."""
    from common import pki
    from common.identity import JOIN_PORT_OFFSET
    from controlplane.etcd import EtcdSettings, EtcdTLS, etcd_binary

    etcd = expand(read_unit(str(UNITS / "orch-etcd.service"))["ExecStart"][0],
                  {"ORCH_NAME": "m1", "ORCH_ADDR": "192.0.2.11", "ORCH_ETCD_CLUSTER": "m1=x"})
    assert etcd[0].startswith("/opt/orch/")
    assert os.path.samefile(str(REPO) + etcd[0].removeprefix("/opt/orch"), etcd_binary())
    tls = EtcdTLS("/etc/orch/etcd/ca.crt", "/etc/orch/etcd/m1.crt", "/etc/orch/etcd/m1.key",
                  client_name=pki.SERVER_NAMES["controlplane"], peer_name=pki.SERVER_NAMES["etcd"])
    for args in (EtcdSettings().args(), tls.args()):
        for i, arg in enumerate(args):
            if arg.startswith("--"):
                value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else None
                assert arg in etcd, f"orch-etcd.service lacks {arg}"
                if value is not None:
                    assert value in flag_values(etcd, arg), f"orch-etcd.service: {arg} is not {value}"
    assert flag_values(etcd, "--client-cert-allowed-hostname") == [pki.SERVER_NAMES["controlplane"]]
    assert flag_values(etcd, "--peer-cert-allowed-hostname") == [pki.SERVER_NAMES["etcd"]]
    ports = documented_ports()
    cp = read_unit(str(UNITS / "orch-controlplane.service"))["ExecStart"][0]
    api = int(re.search(r"--listen \$\{ORCH_ADDR\}:(\d+)", cp).group(1))  # type: ignore[union-attr]
    agent = read_unit(str(UNITS / "orch-agent.service"))["ExecStart"][0]
    node = int(re.search(r"--listen \$\{ORCH_ADDR\}:(\d+)", agent).group(1))  # type: ignore[union-attr]
    for port in (api, api + JOIN_PORT_OFFSET, node, 2379, 2380):
        assert (port, "tcp") in ports, f"the section does not name port {port}/tcp"
    assert (4789, "udp") in ports


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    missing = [t for t in ("ip", "nsenter", "bash", "curl", "ss") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    from orch.cluster.hostnet import HostNet, HostNetError

    for _ in range(5):  # names and a /24 no other run here has
        tag = secrets.token_hex(2)
        net = HostNet(f"orm{tag}b", f"10.221.{1 + int(tag, 16) % 254}.0/24", f"orm{tag}-")
        try:
            net.preflight(len(MACHINES) + 1)
            break
        except HostNetError as err:
            busy = str(err)
    else:
        pytest.skip(f"this host's network: {busy}")
    base = tmp_path / "machines"
    world = World(str(base), f"/run/orm{tag}", net.bridge, str(net.subnet), net.prefix)
    prefix = str(net.subnet.network_address).rpartition(".")[0] + "."
    for i, name in enumerate([*MACHINES, LAPTOP], 1):
        node = net.node(i)
        m = Machine(name, node.name, node.address, DOC_NET + node.address.rpartition(".")[2], prefix,
                    str(base / name), f"{world.run_base}/{name}")
        world.machines[name] = m
        for d in ("etc/systemd/system", "var/lib", "root", "opt"):
            Path(m.root, d).mkdir(parents=True, exist_ok=True)
        Path(m.root, "opt/orch").symlink_to(REPO)  # "a copy of this repository in /opt/orch"
    Path(world.run_base).mkdir(mode=0o755)
    Path(world.shims).mkdir()
    for shim in SHIMS:
        path = Path(world.shims, shim)
        path.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} {shim} "$@"\n')
        path.chmod(0o755)
    world.save()
    try:
        net.ensure_bridge()
        for i in range(1, len(MACHINES) + 2):
            net.add_node(i)
        yield world
    finally:
        leftovers = teardown(world, net)
    assert not leftovers, "left behind:\n" + "\n".join(leftovers)


def run_block(world: World, block: Block) -> dict[str, str]:
    """Run ``block`` on its machines at once; their output, by machine."""
    procs = {name: bash(world, world.machines[name], block.script(world.machines[name]))
             for name in block.where}
    out, failed = {}, []
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        print(f"--- {block.text.splitlines()[0]} [{name}]\n{stdout}{stderr}", end="")
        out[name] = stdout
        if proc.returncode != 0:
            failed.append(f"on {name}: exit {proc.returncode}\nstdout: {stdout}\nstderr: {stderr}")
    if failed:
        raise AssertionError(f"README block failed:\n{block.text}\n" + "\n".join(failed) + journals(world))
    return out


def journals(world: World) -> str:
    return "".join(f"\n--- {m.name} {log.name}:\n{_tail(log)}" for m in world.machines.values()
                   for log in sorted(Path(m.root, "journal").glob("*.log")))


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def one_line(world: World, m: Machine, line: str) -> subprocess.CompletedProcess[str]:
    proc = bash(world, m, m.rewrite(line))
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(line, proc.returncode, stdout, stderr)


def listening(m: Machine) -> set[tuple[str, int, str]]:
    """(address, port, proto) of every listening socket in ``m``'s netns."""
    out = subprocess.run(netns_exec(m.netns, ["ss", "-Hltun"]), capture_output=True, text=True,
                         check=True).stdout
    found = set()
    for line in out.splitlines():
        cols = line.split()
        host, _, port = cols[4].rpartition(":")
        found.add((host.split("%")[0].strip("[]"), int(port), cols[0]))
    return found


def test_three_machines_with_tls(world: World) -> None:
    blocks = readme_blocks()
    assert [b.where for b in blocks][:1] == [list(MACHINES)], "the section starts on every machine"
    for block in blocks:
        if "curl " in block.text:
            # A published port answers on every node once its rules are
            # there, a moment after the deploy converged: asked until then.
            assert PAGE in wait_for("the page", functools.partial(_fetch, world, block))
            continue
        run_block(world, block)
        if "/etc/orch/agent.env" in block.text:
            for name in block.where:
                with open(world.machines[name].rewrite("/etc/orch/agent.env"), "a") as f:
                    f.write(AGENT_OPTS)
        services = [ln for ln in block.text.splitlines() if re.search(r"\borch .*\bservices$", ln)]
        for line in services:
            def converged(line: str = line) -> bool:
                proc = one_line(world, world.machines[LAPTOP], line)
                return proc.returncode == 0 and bool(re.search(r"\bweb\b.*\b3/3\b", proc.stdout))
            wait_for(f"{line}: web 3/3", converged)
    # The page from every node, as the section's last block fetches it from one.
    [fetch] = [b for b in blocks if "curl " in b.text]
    for name in ("m2", "m3"):
        text = re.sub(re.escape(DOC_NET) + r"\d+", world.machines[name].doc_address, fetch.text)
        fetched = wait_for(f"the page from {name}", functools.partial(_fetch, world, Block([LAPTOP], text)))
        assert PAGE in fetched
    # etcd takes control planes only: not a node's certificate, a user's, nor a member's.
    m3, laptop = world.machines["m3"], world.machines[LAPTOP]
    [node_state] = flag_values(load_unit(m3, "orch-agent").start, "--state-dir")
    [user] = re.findall(r"ORCH_CERT_PATH=~/(\S+)", readme_section())[:1]
    etcd = load_unit(world.machines["m1"], "orch-controlplane").env["ORCH_ETCD"].split(",")[0]
    for who, files in (("m3's node", [f"{node_state}/pki/{f}" for f in ("ca.crt", "node.crt", "node.key")]),
                       ("alice's", [f"{laptop.home}/{user}/{f}" for f in ("ca.pem", "cert.pem", "key.pem")]),
                       ("m3's etcd member",
                        [m3.rewrite(f"/etc/orch/etcd/{f}") for f in ("ca.crt", "m3.crt", "m3.key")])):
        refused = etcdctl(m3, etcd, *files)
        assert refused.returncode != 0 and "bad certificate" in refused.stderr, \
            f"etcd at {etcd} took {who} certificate: {refused.stdout}{refused.stderr}"
    # What listens beyond loopback is what the section says to open (but the
    # published ports: nftables answers those), and the metrics it names
    # listen on loopback only.
    ports = documented_ports()
    published = {(int(str(p).split(":")[0]), "tcp") for p in
                 yaml.safe_load((REPO / "examples/web.yaml").read_text())["services"]["web"]["ports"]}
    outside, inside = set(), set()
    for name in MACHINES:
        sockets = listening(world.machines[name])
        print(f"--- listening on {name}: {sorted(sockets)}")
        outside |= {(port, proto) for host, port, proto in sockets if not _loopback(host)}
        inside |= {port for host, port, proto in sockets if _loopback(host)}
    assert outside == ports - published, f"listening beyond loopback: {sorted(outside)}; the section: {ports}"
    metrics = re.search(r"The metrics \(([^)]*)\)", readme_section())
    assert metrics, "the section names the metrics ports: The metrics (...)"
    assert inside == {int(p) for p in re.findall(r"\d+", metrics.group(1))}


def etcdctl(m: Machine, endpoint: str, ca: str, cert: str, key: str) -> subprocess.CompletedProcess[str]:
    """A read of etcd at ``endpoint`` from ``m`` with these TLS files."""
    from controlplane.etcd import etcdctl_binary

    return subprocess.run(netns_exec(m.netns, [etcdctl_binary(), "--endpoints", endpoint, "--cacert", ca,
                                               "--cert", cert, "--key", key, "--dial-timeout", "2s",
                                               "--command-timeout", "3s", "get", "--prefix", "/",
                                               "--keys-only", "--limit", "1"]),
                          capture_output=True, text=True, timeout=60)


def _loopback(host: str) -> bool:
    return host.startswith("127.") or host == "::1"


def _fetch(world: World, block: Block) -> str:
    m = world.machines[LAPTOP]
    proc = bash(world, m, block.script(m))
    stdout, _ = proc.communicate(timeout=30)
    return stdout if proc.returncode == 0 and PAGE in stdout else ""


# ---- teardown --------------------------------------------------------------------------

def container_cgroups(world: World) -> list[str]:
    """``orch/<id>`` of every container any machine's agent made."""
    ids = set()
    for m in world.machines.values():
        for containers in Path(m.root, "var/lib/orch").glob("*/containers"):
            for d in (containers, containers / ".trash"):
                with contextlib.suppress(OSError):
                    ids |= {e for e in os.listdir(d) if re.fullmatch(r"[0-9a-f]{12,64}", e)}
    return [f"orch/{i}" for i in sorted(ids)]


def teardown(world: World, net: Any) -> list[str]:
    """Stop everything as an admin would; what that left (then removed by
    force), and whatever still exists afterwards, one line each."""
    from orch.cluster import sweep
    from orch.cluster.hostnet import link_exists, netns_path

    cgroups = container_cgroups(world)
    problems: list[str] = []
    order = ("orch-agent", "orch-controlplane", "orch-etcd")
    for unit in order:  # each unit on every machine at once, as admins on three machines would
        extra = ("--all",) if unit == "orch-agent" else ()
        running = [m for m in world.machines.values() if pid_file(m, unit).exists()]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            for found in pool.map(lambda m, u=unit, e=extra: stop_unit(m, u, e), running):
                problems += found
    target = sweep.Target(dirs=[world.base, world.run_base],
                          netns=[m.netns for m in world.machines.values()],
                          cgroups=sorted({*cgroups, *container_cgroups(world)}))
    problems += sweep.remains(target)
    sweep.sweep(target)
    for i in range(1, len(world.machines) + 1):
        net.remove_node(i)
    net.remove_bridge()
    still = sweep.remains(target)
    problems += [f"after the sweep: {r}" for r in still]
    for path in (world.run_base, world.base):
        if not still:  # never under a mount that stayed
            shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(path):
            problems.append(f"directory {path}")
    problems += [f"network namespace {m.netns}" for m in world.machines.values()
                 if os.path.exists(netns_path(m.netns))]
    problems += [f"interface {ifname}" for ifname in
                 [net.bridge, *(net.node(i).host_veth for i in range(1, len(world.machines) + 1))]
                 if link_exists(ifname)]
    return problems


if __name__ == "__main__":  # a stand-in: systemctl, ssh or scp
    sys.exit(shim_main(sys.argv[1:]))
