"""``device-login``: the device authorization grant (RFC 8628) from the command line.

Real parts only: the dev issuer and the resource server under gunicorn, the
CLI as a subprocess, and a person approving on the issuer's ``/activate``
pages: Chromium where the test is about the browser, a ``requests``
session where it is about who approves what.
"""

from __future__ import annotations

import json

import pytest

from common.config import load_settings
from native_sim.storage import TOKEN_FILE_NAME
from tests.device_helpers import USER_CODE, DeviceRun, approve, approve_in_browser, base_of
from tests.native_sim.conftest import cli_env, run_cli

pytestmark = pytest.mark.usefixtures("dev_issuer", "resource_server")


@pytest.fixture
def start_device():
    """Start ``device-login`` runs; each is stopped by PID at the end of the test."""
    runs: list[DeviceRun] = []

    def start(env: dict[str, str], *extra: str) -> DeviceRun:
        run = DeviceRun(env, *extra)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


def stored(token_dir) -> dict | None:
    path = token_dir / TOKEN_FILE_NAME
    return json.loads(path.read_text()) if path.exists() else None


@pytest.mark.browser
def test_approved_in_chromium_then_call_api_refresh_and_logout(
    browser, suite_env, env, token_dir, start_device
):
    settings = load_settings(suite_env)
    run = start_device(env, "--explain")
    code = run.user_code()
    complete = run.complete_uri()
    run.waiting()
    out = run.out
    # verification_uri, user_code and verification_uri_complete, each on a line of its own.
    assert base_of(suite_env["ISSUER"]) + "/activate" in out
    assert USER_CODE.match(code) and complete == f"{base_of(suite_env['ISSUER'])}/activate?user_code={code}"
    assert any(line.startswith("█") for line in out), "no QR code drawn"

    approve_in_browser(browser, complete, settings.demo_username, settings.demo_password)
    exit_code, stdout, stderr = run.finish()
    assert exit_code == 0, stderr
    assert f"Signed in as {settings.demo_username}" in stdout
    # --explain narrates each step; the device code is shortened, never shown in full.
    assert "Device authorization request" in stdout and "Token request (device code)" in stdout
    assert "ID token validation" in stdout and "authorization_pending" in stdout
    device_code_lines = [line for line in stdout.splitlines() if line.strip().startswith("device_code:")]
    assert device_code_lines and all("…" in line for line in device_code_lines)

    record = stored(token_dir)
    assert record["client"] == "native" and record["client_id"] == settings.native_client_id
    assert record["tokens"]["id_claims"]["email"] == settings.demo_username
    assert record["tokens"]["refresh_token"] not in stdout
    # DPOP=auto found DPoP at the dev issuer: the polls carried proofs, so the
    # tokens are bound (RFC 9449 §5) to the key stored beside them.
    assert record["tokens"]["token_type"] == "DPoP" and "d" in record["tokens"]["dpop_jwk"]

    # The same stored tokens as `login`'s: the other commands work on them.
    api = run_cli(env, "call-api")
    assert api.returncode == 0, api.stderr
    assert "Your access token was accepted" in api.stdout
    again = run_cli(env, "refresh")
    assert again.returncode == 0 and "rotated" in again.stdout, again.stderr
    who = run_cli(env, "whoami")
    assert who.returncode == 0 and "(device authorization grant)" in who.stdout, who.stdout
    signed_out = run_cli(env, "logout")
    assert signed_out.returncode == 0, signed_out.stderr
    assert stored(token_dir) is None


def test_two_devices_pending_at_once_each_get_their_own_users_tokens(suite_env, tmp_path, start_device):
    (first_user, first_password), (second_user, second_password) = load_settings(
        suite_env
    ).dev_issuer_extra_users[3:5]
    dirs = [tmp_path / "device-a", tmp_path / "device-b"]
    runs = [start_device(cli_env(suite_env, directory), "--no-qr") for directory in dirs]
    codes = [run.user_code() for run in runs]
    assert codes[0] != codes[1]
    base = base_of(suite_env["ISSUER"])
    # Approved in the opposite order, by different people.
    assert approve(base, codes[1], second_user, second_password).status_code == 200
    assert approve(base, codes[0], first_user, first_password).status_code == 200
    for run, directory, user in zip(runs, dirs, (first_user, second_user), strict=True):
        exit_code, stdout, stderr = run.finish()
        assert exit_code == 0, stderr
        assert f"Signed in as {user}" in stdout
        assert stored(directory)["tokens"]["id_claims"]["email"] == user


def test_a_denial_ends_with_one_line_and_exit_1_and_stores_nothing(suite_env, env, token_dir, start_device):
    username, password = load_settings(suite_env).dev_issuer_extra_users[0]
    run = start_device(env, "--no-qr")
    code = run.user_code()
    run.waiting()
    assert not any("█" in line for line in run.out), "--no-qr drew a QR code"
    assert approve(base_of(suite_env["ISSUER"]), code, username, password, decision="deny").status_code == 200
    exit_code, stdout, stderr = run.finish()
    assert exit_code == 1, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("native_sim: access_denied: The sign-in was denied"), (
        stderr
    )
    assert stored(token_dir) is None


def test_ctrl_c_ends_cleanly_with_exit_130(env, token_dir, start_device):
    run = start_device(env, "--no-qr")
    run.waiting()
    run.interrupt()
    exit_code, stdout, stderr = run.finish(timeout=30)
    assert exit_code == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["native_sim: Interrupted: nothing was stored."]
    assert stored(token_dir) is None
