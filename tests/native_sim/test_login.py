"""``login``: Authorization Code + PKCE through a real browser and the loopback redirect.

Real parts only: the dev issuer and the resource server under gunicorn, the
CLI as a subprocess, Chromium following the printed URL through the issuer's
sign-in page to the CLI's loopback listener.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from common.client import Client
from common.config import load_settings
from common.introspection import introspect as introspect_token
from common.issuer import Issuer
from native_sim.storage import TOKEN_FILE_NAME
from tests.native_sim.conftest import cli_env, run_cli

pytestmark = pytest.mark.usefixtures("dev_issuer", "resource_server")


def sign_in_with_browser(browser, url: str, settings) -> None:
    """Follow the authorization URL as a person would, up to the 'you can close this window' page."""
    browser.get(url)
    wait = WebDriverWait(browser, 20)
    wait.until(EC.presence_of_element_located((By.ID, "username"))).send_keys(settings.demo_username)
    browser.find_element(By.ID, "password").send_keys(settings.demo_password)
    browser.find_element(By.ID, "sign-in").click()
    wait.until(EC.presence_of_element_located((By.ID, "close-window")))


def listening_addresses(port: int) -> list[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                if len(address) == 8:
                    found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                else:
                    found.append(f"ipv6:{address}")
    return found


def non_loopback_ipv4() -> list[str]:
    """This machine's IPv4 addresses outside 127/8."""
    try:
        output = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        output = ""
    addresses = [
        field.split("/")[0]
        for line in output.splitlines()
        for i, field in enumerate(line.split())
        if i > 0 and line.split()[i - 1] == "inet"
    ]
    return [a for a in addresses if not a.startswith("127.")]


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


def stored(token_dir) -> dict:
    return json.loads((token_dir / TOKEN_FILE_NAME).read_text())


def introspect(suite_env, record: dict, token: str, hint: str) -> dict:
    """Ask the issuer about a token, as the client it was issued to (RFC 7662 §2.1)."""
    settings = load_settings(suite_env)
    if record["client"] == "trusted":
        client = Client(
            Issuer(settings),
            client_id=settings.trusted_client_id,
            client_secret=settings.trusted_client_secret,
        )
    else:
        client = Client(
            Issuer(settings), client_id=settings.native_client_id, token_endpoint_auth_method="none"
        )
    return introspect_token(client, token, hint)


@pytest.mark.browser
def test_login_refuses_a_forged_callback_and_completes_the_real_one(
    browser, suite_env, token_dir, start_login
):
    # NATIVE_REDIRECT_PORT=0: any free port, which RFC 8252 §7.3 says the issuer must accept.
    env = cli_env(suite_env, token_dir, NATIVE_REDIRECT_PORT="0", PAR="off")  # the URL's redirect_uri is read
    settings = load_settings(suite_env)
    run = start_login(env)
    url = run.authorization_url()
    query = parse_qs(urlsplit(url).query)
    redirect_uri = query["redirect_uri"][0]
    port = urlsplit(redirect_uri).port
    assert redirect_uri == f"http://127.0.0.1:{port}/callback"
    assert query["code_challenge_method"] == ["S256"] and query["state"][0] and query["nonce"][0]
    assert port != int(suite_env["NATIVE_REDIRECT_PORT"])

    # Bound to the loopback literal only: nowhere else on this machine can reach it.
    assert listening_addresses(port) == ["127.0.0.1"]
    assert refused("127.0.0.2", port)
    for address in non_loopback_ipv4():
        assert refused(address, port), f"the listener answers on {address}"

    # Another local program forges a callback: refused, and the command keeps waiting.
    forged = requests.get(redirect_uri, params={"code": "forged-code", "state": "forged-state"}, timeout=5)
    assert forged.status_code == 400
    assert "does not match" in forged.text
    time.sleep(0.3)
    assert run.proc.poll() is None

    sign_in_with_browser(browser, url, settings)
    code, out, err = run.finish()
    assert code == 0, err
    assert f"Signed in as {settings.demo_username}" in out
    assert "refused a request to the loopback listener" in err

    # The listener is gone once the sign-in is over.
    assert listening_addresses(port) == []
    assert refused("127.0.0.1", port)

    record = stored(token_dir)
    assert record["client"] == "native" and record["client_id"] == settings.native_client_id
    assert record["tokens"]["id_claims"]["email"] == settings.demo_username
    # Never printed in full.
    for token in (
        record["tokens"]["access_token"],
        record["tokens"]["refresh_token"],
        record["tokens"]["id_token"],
    ):
        assert token not in out and token not in err


@pytest.mark.browser
def test_login_then_call_api_refresh_and_logout(browser, suite_env, token_dir, env, start_login):
    settings = load_settings(suite_env)
    run = start_login(env, "--explain")
    url = run.authorization_url()
    assert urlsplit(parse_qs(urlsplit(url).query)["redirect_uri"][0]).port == int(
        suite_env["NATIVE_REDIRECT_PORT"]
    )
    sign_in_with_browser(browser, url, settings)
    code, out, err = run.finish()
    assert code == 0, err
    # --explain: each protocol step, secrets redacted.
    assert "Authorization request" in out and "Token request (authorization code)" in out
    assert "ID token validation" in out and "code_verifier: [redacted]" in out

    # The token file: 0600 in a 0700 directory, holding only the record.
    path = token_dir / TOKEN_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(token_dir).st_mode) == 0o700
    first = stored(token_dir)
    assert set(first) == {"issuer", "client", "client_id", "tokens", "saved_at"}
    assert "code_verifier" not in path.read_text()

    # call-api: the resource server accepts the access token.
    api = run_cli(env, "call-api")
    assert api.returncode == 0, api.stderr
    assert "Your access token was accepted" in api.stdout
    assert f'"client_id": "{settings.native_client_id}"' in api.stdout

    # whoami: claims, tokens shortened.
    who = run_cli(env, "whoami")
    assert who.returncode == 0
    assert settings.demo_username in who.stdout
    assert (
        first["tokens"]["access_token"] not in who.stdout
        and first["tokens"]["refresh_token"] not in who.stdout
    )

    # refresh: the issuer rotates the refresh token; the old one is dead.
    again = run_cli(env, "refresh")
    assert again.returncode == 0, again.stderr
    assert "rotated" in again.stdout
    second = stored(token_dir)
    assert second["tokens"]["refresh_token"] != first["tokens"]["refresh_token"]
    assert second["tokens"]["access_token"] != first["tokens"]["access_token"]
    assert introspect(suite_env, first, first["tokens"]["refresh_token"], "refresh_token") == {
        "active": False
    }
    assert introspect(suite_env, second, second["tokens"]["refresh_token"], "refresh_token")["active"] is True

    # An expired access token is refreshed before the API is called.
    expired = {**second, "tokens": {**second["tokens"], "expires_at": int(time.time()) - 10}}
    path.write_text(json.dumps(expired))
    api = run_cli(env, "call-api")
    assert api.returncode == 0, api.stderr
    assert "refreshing it first" in api.stdout and "Your access token was accepted" in api.stdout
    third = stored(token_dir)
    assert third["tokens"]["expires_at"] > time.time()
    assert third["tokens"]["refresh_token"] != second["tokens"]["refresh_token"]

    # logout: the refresh token is revoked at the issuer and the file is gone.
    bye = run_cli(env, "logout")
    assert bye.returncode == 0, bye.stderr
    assert "revoked" in bye.stdout
    assert not path.exists()
    assert introspect(suite_env, third, third["tokens"]["refresh_token"], "refresh_token") == {
        "active": False
    }

    # A revoked (or expired) refresh token: one line, exit 5, and the dead tokens are forgotten.
    path.write_text(json.dumps({**third, "tokens": {**third["tokens"], "expires_at": int(time.time()) - 10}}))
    os.chmod(path, 0o600)
    dead = run_cli(env, "call-api")
    assert dead.returncode == 5
    assert dead.stderr.strip().startswith("native_sim: Your sign-in has expired")
    assert len(dead.stderr.strip().splitlines()) == 1
    assert not path.exists()


def test_access_denied_is_one_line_and_exit_1(suite_env, env, token_dir, start_login):
    # What the issuer sends when the user cancels (RFC 6749 §4.1.2.1), with this sign-in's state
    # and, as the issuer advertises, its iss (RFC 9207 §2: error responses carry it too).
    run = start_login(env)
    query = parse_qs(urlsplit(run.authorization_url()).query)
    page = requests.get(
        query["redirect_uri"][0],
        timeout=5,
        params={
            "error": "access_denied",
            "error_description": "The user cancelled.",
            "state": query["state"][0],
            "iss": suite_env["ISSUER"],
        },
    )
    assert page.status_code == 200 and "access_denied" in page.text
    code, out, err = run.finish()
    assert code == 1
    assert err.strip().splitlines() == [
        "native_sim: access_denied: The issuer answered: The user cancelled. "
        "Try signing in again. If you cancelled on purpose, nothing else is needed."
    ]
    assert not (token_dir / TOKEN_FILE_NAME).exists()


def test_a_user_who_never_finishes_gets_a_timeout(suite_env, env, token_dir, start_login):
    run = start_login(env, "--timeout", "1")
    port = urlsplit(parse_qs(urlsplit(run.authorization_url()).query)["redirect_uri"][0]).port
    code, out, err = run.finish()
    assert code == 4
    assert err.strip().splitlines() == [
        "native_sim: Timed out: nobody finished signing in within 1 seconds, so nothing was stored. "
        "Run `python -m native_sim login` again when you are ready."
    ]
    assert refused("127.0.0.1", port)
    assert not (token_dir / TOKEN_FILE_NAME).exists()
