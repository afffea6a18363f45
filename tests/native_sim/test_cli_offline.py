"""The command line where no issuer is needed: help, configuration, exit codes, errors."""

from __future__ import annotations

import socket

import pytest

from common.cli import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from common.errors import FlowError
from common.http import IssuerUnreachable
from native_sim import commands
from tests.native_sim.conftest import cli_env, run_cli
from tests.support import free_port

COMMANDS = ["login", "password-login", "call-api", "refresh", "whoami", "logout"]


@pytest.fixture
def offline_env(tmp_path):
    """An environment whose issuer and API are a closed port on loopback: nothing answers."""
    dead = free_port()
    return cli_env(
        {
            "ISSUER": f"http://127.0.0.1:{dead}/oauth2/default",
            "API_URL": f"http://127.0.0.1:{dead}",
            "NATIVE_REDIRECT_PORT": "0",
            "TRUSTED_MODE": "true",
            "HTTP_TIMEOUT": "2",
        },
        tmp_path / "tokens",
    )


def test_help_lists_every_command_and_the_exit_codes(offline_env):
    result = run_cli(offline_env, "--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout
    assert "exit codes:" in result.stdout and "4  timed out" in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_help(offline_env, name):
    result = run_cli(offline_env, name, "--help")
    assert result.returncode == 0
    assert f"python -m native_sim {name}" in result.stdout
    assert "--explain" in result.stdout


def test_unknown_command_is_a_usage_error(offline_env):
    assert run_cli(offline_env, "fly").returncode == 2


@pytest.mark.parametrize("name", ["call-api", "refresh", "whoami"])
def test_not_signed_in(offline_env, name):
    result = run_cli(offline_env, name)
    assert result.returncode == 5
    assert (
        result.stderr.strip()
        == "native_sim: Not signed in. Run `python -m native_sim login` to sign in again."
    )


def test_logout_when_not_signed_in_is_fine(offline_env):
    result = run_cli(offline_env, "logout")
    assert result.returncode == 0
    assert "Not signed in" in result.stdout


def test_a_bad_setting_is_one_line_naming_the_variable(offline_env):
    result = run_cli({**offline_env, "NATIVE_REDIRECT_PORT": "http"}, "login", "--no-browser")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "NATIVE_REDIRECT_PORT" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["login", "--no-browser", "--timeout", "5"],
        ["password-login", "--username", "someone@example.com", "--password-stdin"],
    ],
)
def test_issuer_unreachable(offline_env, args):
    result = run_cli(offline_env, *args, input="a-password\n")
    assert result.returncode == 3, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert len(error_lines) == 1
    assert "issuer_unreachable" in error_lines[0] and "could not be reached" in error_lines[0]
    assert "a-password" not in result.stdout + result.stderr


def test_login_refuses_a_port_in_use(offline_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli({**offline_env, "NATIVE_REDIRECT_PORT": str(port)}, "login", "--no-browser")
    assert result.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "NATIVE_REDIRECT_PORT" in result.stderr


def test_password_login_is_off_unless_trusted_mode(offline_env):
    result = run_cli(
        {**offline_env, "TRUSTED_MODE": "false"}, "password-login", "--password-stdin", input="x\n"
    )
    assert result.returncode == 2
    assert "Trusted mode is off" in result.stderr and "TRUSTED_MODE=true" in result.stderr


def test_timeout_option_is_validated(offline_env):
    assert run_cli(offline_env, "login", "--timeout", "never").returncode == 2
    assert run_cli(offline_env, "login", "--timeout", "0").returncode == 2
    too_long = run_cli({**offline_env, "LOGIN_TIMEOUT": "60"}, "login", "--timeout", "61")
    assert too_long.returncode == 2 and "LOGIN_TIMEOUT (60 seconds)" in too_long.stderr


# -- the error mapping, as functions -------------------------------------------------


def test_flow_errors_become_one_line_and_an_exit_code():
    assert commands.describe_flow_error(IssuerUnreachable("down."))[1] == EXIT_UNREACHABLE
    line, code = commands.describe_flow_error(
        FlowError("access_denied", "The issuer answered:\nno.", "Try again.")
    )
    assert code == EXIT_REFUSED
    assert line == "access_denied: The issuer answered: no. Try again."
    assert commands.describe_flow_error(FlowError("issuer_misconfigured", "bad"))[1] == EXIT_USAGE
    assert (
        commands.describe_flow_error(FlowError("api_unreachable", "The API is down."))[1] == EXIT_UNREACHABLE
    )
