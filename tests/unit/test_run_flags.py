"""Values that break things, refused by the CLI with the flag's name before anything
is sent: ``orch run``/``create`` (both the quick parser and argparse), ``exec -u``,
``stop -t``, ``scale`` and ``agent --default-pids-limit``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orch.cli import agentcmd, build_parser, clustercmd, runcmd
from orch.cli.client import CLIError

ROOT = Path(__file__).resolve().parents[2]

# The global connection options, which the quick parser leaves to argparse.
_GLOBAL = ("func", "command", "host", "cluster", "tlscacert", "tlscert", "tlskey")


def _values(argv: list[str]) -> dict[str, Any]:
    """Options as argparse reads them (the quick parser, where it answers, must agree)."""
    args = vars(build_parser(["run", *argv]).parse_args(["run", *argv]))
    quick = runcmd.parse_quick(argv)
    if quick is not None:
        assert quick == {k: v for k, v in args.items() if k not in _GLOBAL}
    return args


def _config(argv: list[str]) -> dict[str, Any]:
    return runcmd.config_fields(_values([*argv, "busybox", "true"]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stop-timeout", "1e400"], "invalid --stop-timeout '1e400'"),
        (["--stop-timeout", "inf"], "invalid --stop-timeout 'inf'"),
        (["--stop-timeout", "nan"], "invalid --stop-timeout 'nan'"),
        (["--stop-timeout=-1"], "invalid --stop-timeout '-1'"),
        (["--stop-timeout", "86401"], "from 0 to 86400 (24h)"),
        (["--stop-timeout", "\u0665"], "invalid --stop-timeout"),
        (["-u", "4294967295"], "invalid user '4294967295': a numeric uid or gid is 0 to 4294967294"),
        (["-u", "99999999999"], "invalid user '99999999999'"),
        (["--user", "0:4294967295"], "invalid user '0:4294967295'"),
        (["-p", "80:80/"], "invalid port mapping '80:80/'"),
        (["-p", "\u0668\u0660:80"], "invalid port mapping"),
        (["-p", "80:80\n"], "invalid port mapping"),
        (["-p", "8080:80/sctp"], "invalid port mapping"),
        (["--name", ""], "invalid --name ''"),
        (["--hostname", "a b"], "invalid hostname 'a b'"),
        (["--hostname", ""], "invalid hostname ''"),
        (["--hostname", "a" * 65], "invalid hostname"),
        (["-l", "orch.task=x"], "invalid label 'orch.task': labels under 'orch.' are orch's own"),
        (["--label", "orch.service=y"], "invalid label 'orch.service'"),
        (["--pids-limit=-2"], "invalid --pids-limit -2"),
        (["--pids-limit", "4194305"], "invalid --pids-limit 4194305"),
        (["--pids-limit", "1.5"], "invalid --pids-limit '1.5'"),
        (["--memory", "\u0666\u0664Mi"], "invalid memory quantity"),
        (["--memory", "64Mi "], "invalid memory quantity"),
        (["-m", "99999999999999999999999Ti"], "at most 4096Pi"),
        (["--cpus", "0.0000001"], "from 0.01 to 1024"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(CLIError) as caught:
        _config(argv)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        ([], "pids_limit", 0),  # the node's default
        (["--pids-limit=-1"], "pids_limit", -1),  # Docker's spelling of unlimited
        (["--pids-limit", "100"], "pids_limit", 100),
        (["--pids-limit", "0"], "pids_limit", 0),
        (["--stop-timeout", "2.5"], "stop_timeout", 2.5),
        ([], "stop_timeout", None),  # the image's (or 10 s)
        (["-u", "4294967294:0"], "user", "4294967294:0"),
        (["-u", "nobody"], "user", "nobody"),
        (["--hostname", "web-1.example"], "hostname", "web-1.example"),
        ([], "hostname", ""),
        ([], "name", ""),  # a generated one
        (["--name", "web"], "name", "web"),
        (["-p", "8080:80/udp"], "ports", [{"host_port": 8080, "container_port": 80, "protocol": "udp",
                                           "host_ip": ""}]),
        (["-l", "orchestra=1"], "labels", {"orchestra": "1"}),
        (["--cpus", "10m"], "cpus", 0.01),
    ],
)
def test_good_values(argv: list[str], field: str, value: Any) -> None:
    assert _config(argv)[field] == value


def test_plain_run_loads_no_checker() -> None:
    """The common ``orch run IMAGE CMD`` does not import model.units (start-up time)."""
    code = ("import sys; from orch.cli import runcmd; "
            "runcmd.config_fields(runcmd.parse_quick(['--rm', 'busybox', 'true'])); "
            "print('model.units' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def _orch(*argv: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """The real CLI, pointed at an agent and a cluster that do not exist: a refusal
    must come before any connection is tried."""
    env = {**os.environ, "ORCH_HOST": f"unix://{tmp}/none.sock", "ORCH_CLUSTER_RUN_DIR": str(tmp)}
    env.pop("ORCH_CLUSTER", None)
    return subprocess.run([sys.executable, "-m", "orch", *argv], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--rm", "--stop-timeout", "1e400", "busybox", "true"], "invalid --stop-timeout '1e400'"),
        (["run", "-u", "4294967295", "busybox", "id"], "invalid user '4294967295'"),
        (["create", "--name", "", "busybox", "true"], "invalid --name ''"),
        (["run", "-d", "-p", "80:80/", "busybox", "true"], "invalid port mapping '80:80/'"),
        (["exec", "-u", "4294967295", "web", "id"], "invalid user '4294967295'"),
        (["stop", "-t", "inf", "web"], "invalid --time 'inf'"),
        (["scale", "web=1000000000000"], "at most 100000 replicas per service"),
    ],
)
def test_the_cli_says_so_in_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    proc = _orch(*argv, tmp=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("pair", ["web=1000000000000", "web=100001", "web=\u00b2", "web=\u0665", "web=-1",
                                  "web= 3", "=3", "web", "web=3.0"])
def test_scale_refuses(pair: str) -> None:
    with pytest.raises(CLIError, match="invalid scale"):
        clustercmd.parse_scale(["ok=1", pair])  # checked before anything is sent


def test_scale_accepts() -> None:
    assert clustercmd.parse_scale(["a=0", "b=100000"]) == [("a", 0), ("b", 100000)]


@pytest.mark.parametrize(("text", "options"), [(None, {}), ("0", {"default_pids_limit": 0}),
                                               ("4096", {"default_pids_limit": 4096}),
                                               ("4194304", {"default_pids_limit": 4194304})])
def test_agent_default_pids_limit(text: str | None, options: dict[str, int]) -> None:
    assert agentcmd._default_pids_limit(argparse.Namespace(default_pids_limit=text)) == options


@pytest.mark.parametrize("text", ["-1", "4194305", "x", "\u0661", " 1", "1e3"])
def test_agent_default_pids_limit_refuses(text: str) -> None:
    with pytest.raises(CLIError, match="invalid --default-pids-limit"):
        agentcmd._default_pids_limit(argparse.Namespace(default_pids_limit=text))
