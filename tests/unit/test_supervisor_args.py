"""The supervisor's hand-read options: what the agent passes, both option
forms, and a clear usage error (exit 2) for anything else."""

from __future__ import annotations

import pytest

from nodeagent.supervisor.__main__ import parse_args


def test_the_agents_arguments() -> None:
    opts = parse_args(["--state-dir", "/s", "--run-dir", "/r", "--bridge", "orchb0",
                       "--subnet", "10.1.0.0/24", "--warm-network", "--max-launching", "2"])
    assert opts == {"state_dir": "/s", "run_dir": "/r", "bridge": "orchb0",
                    "subnet": "10.1.0.0/24", "warm_network": True, "max_launching": "2"}


def test_defaults_and_the_equals_form() -> None:
    opts = parse_args(["--state-dir=/s", "--run-dir=/r"])
    assert opts == {"state_dir": "/s", "run_dir": "/r", "bridge": "orch0",
                    "subnet": "10.88.0.0/16", "warm_network": False}


@pytest.mark.parametrize(("argv", "message"), [
    (["--run-dir", "/r"], "--state-dir is required"),
    (["--state-dir", "/s", "--run-dir"], "--run-dir needs a value"),
    (["--state-dir", "/s", "--run-dir", "/r", "--bogus"], "unknown argument '--bogus'"),
    (["--state-dir", "/s", "--run-dir", "/r", "--max-launching", "two"],
     "--max-launching needs a whole number, not 'two'"),
])
def test_bad_arguments_exit_2_with_the_reason(argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m nodeagent.supervisor") and message in err
