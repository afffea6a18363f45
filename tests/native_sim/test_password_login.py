"""``password-login``: the trusted-app mode (Resource Owner Password grant, deprecated).

The password reaches the CLI the way a person types it, on a terminal
(a pseudo-terminal here, so that echo really is switched off), or through
``--password-stdin``; never as a command-line argument.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest

from common.config import load_settings
from native_sim.storage import TOKEN_FILE_NAME
from tests.native_sim.conftest import cli_env, run_cli
from tests.support import ROOT, free_port, gunicorn

pytestmark = pytest.mark.usefixtures("dev_issuer", "resource_server")


def run_on_terminal(
    env: dict[str, str], args: list[str], answers: list[tuple[str, str]], timeout: float = 60
) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its terminal; answer each prompt as it appears.

    :param answers: ``(prompt, text to type)`` pairs, in order.
    :return: the exit code and everything the terminal showed.
    """
    master, slave = os.openpty()
    # A new session without a controlling terminal: getpass then reads from
    # (and switches off echo on) standard input, which is this pty.
    proc = subprocess.Popen(
        [sys.executable, "-m", "native_sim", *args],
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if pending and pending[0][0].encode() in shown.rsplit(b"\n", 1)[-1]:
                os.write(master, pending.pop(0)[1].encode() + b"\n")
            if not ready and proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, shown.decode("utf-8", "replace")


def test_password_login_on_a_terminal(suite_env, env, token_dir):
    settings = load_settings(suite_env)
    code, terminal = run_on_terminal(
        env,
        ["password-login"],
        [("Username: ", settings.demo_username), ("Password: ", settings.demo_password)],
    )
    assert code == 0, terminal
    assert "RFC 9700" in terminal and "MUST NOT be used" in terminal
    assert f"Signed in as {settings.demo_username} (trusted mode, password grant)" in terminal
    # Echo was off: the password never appeared on the terminal.
    assert settings.demo_password not in terminal
    assert settings.demo_username in terminal  # the username is echoed, as usual

    record = json.loads((token_dir / TOKEN_FILE_NAME).read_text())
    assert record["client"] == "trusted" and record["client_id"] == settings.trusted_client_id
    assert record["tokens"]["id_claims"]["email"] == settings.demo_username  # the ID token was validated
    assert settings.demo_password not in (token_dir / TOKEN_FILE_NAME).read_text()

    # The tokens work like those of `login`; refresh authenticates the trusted client with Basic.
    api = run_cli(env, "call-api")
    assert api.returncode == 0, api.stderr
    assert f'"client_id": "{settings.trusted_client_id}"' in api.stdout
    again = run_cli(env, "refresh")
    assert again.returncode == 0, again.stderr
    assert run_cli(env, "logout").returncode == 0


def test_wrong_password_on_a_terminal(suite_env, env, token_dir):
    settings = load_settings(suite_env)
    code, terminal = run_on_terminal(
        env, ["password-login", "--username", settings.demo_username], [("Password: ", "not-the-password")]
    )
    assert code == 1
    assert "native_sim: Wrong username or password: the issuer refused them (invalid_grant)." in terminal
    assert "not-the-password" not in terminal
    assert not (token_dir / TOKEN_FILE_NAME).exists()


def test_password_stdin_with_explain_redacts_the_password(suite_env, env, token_dir):
    settings = load_settings(suite_env)
    result = run_cli(
        env,
        "--explain",
        "password-login",
        "--username",
        settings.demo_username,
        "--password-stdin",
        input=settings.demo_password + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Token request (password)" in result.stdout
    assert "password: [redacted]" in result.stdout
    assert "Authorization: [redacted]" in result.stdout  # the client's Basic credentials too
    assert settings.demo_password not in result.stdout + result.stderr
    assert "ID token validation" in result.stdout


def test_wrong_password_on_stdin(suite_env, env, token_dir):
    settings = load_settings(suite_env)
    result = run_cli(
        env,
        "password-login",
        "--username",
        settings.demo_username,
        "--password-stdin",
        input="wrong-password\n",
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == "native_sim: Wrong username or password: the issuer refused them (invalid_grant)."
    )
    assert "wrong-password" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def issuer_without_password_grant(suite_env):
    """A second dev issuer, started with TRUSTED_MODE=false: its trusted client has no password grant."""
    port = free_port()
    env = {**suite_env, "ISSUER": f"http://127.0.0.1:{port}/oauth2/default", "TRUSTED_MODE": "false"}
    service = gunicorn(
        "dev_issuer-no-password",
        "dev_issuer:create_app()",
        env,
        port,
        workers=1,
        health_path="/oauth2/default/.well-known/openid-configuration",
    ).start()
    yield env["ISSUER"]
    service.stop()


def test_refused_clearly_when_the_issuer_does_not_offer_the_grant(
    suite_env, token_dir, issuer_without_password_grant
):
    # The client is in trusted mode; the issuer is not.
    env = cli_env(suite_env, token_dir, ISSUER=issuer_without_password_grant, TRUSTED_MODE="true")
    settings = load_settings(suite_env)
    result = run_cli(
        env,
        "password-login",
        "--username",
        settings.demo_username,
        "--password-stdin",
        input=settings.demo_password + "\n",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "does not" in last and "password grant" in last.lower()
    assert not (token_dir / TOKEN_FILE_NAME).exists()
