"""DPoP (RFC 9449) end to end: every Python client app against the dev issuer and the resource server.

A private stack, so that every process starts with an empty nonce book
and the issuer's nonce round trip (RFC 9449 §8) is sure to happen at each
app's first token request: the dev issuer requires DPoP of every client
(``DEV_ISSUER_REQUIRE_DPOP=all``), the resource server refuses Bearer
tokens (``API_DPOP=required``), and the apps run with the default
``DPOP=auto``, which finds DPoP in the issuer's metadata.  For each app:

* the access token the API saw carries ``cnf.jkt``, the thumbprint of the
  key the app keeps (the API's answer reports the ``jkt`` it checked);
* the API checked the proof's ``ath``;
* the flow log (inspector, ``--explain``) records the nonce round trip.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import redis
import requests

from common.config import load_settings
from common.dpop import DPoPKey
from common.session import load_stored_session
from native_sim.storage import TOKEN_FILE_NAME
from tests.issuer_helpers import sign_in_and_get_redirect
from tests.native_sim.conftest import LoginRun, cli_env, run_cli
from tests.spa_app.bff_helpers import CSRF, bff_sign_in
from tests.support import ROOT, free_port, gunicorn
from tests.web_app.conftest import element_text, form_csrf, sign_in

NONCE_STEP = "The issuer asked for a DPoP nonce"


@pytest.fixture(scope="module")
def dpop_stack(redis_server):
    """Dev issuer (DPoP required of all), resource server (DPoP required), web app and SPA server."""
    ports = {name: free_port() for name in ("issuer", "api", "web", "spa", "native")}
    env = {
        "ISSUER": f"http://127.0.0.1:{ports['issuer']}/oauth2/default",
        "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/11",
        "WEB_BASE_URL": f"http://localhost:{ports['web']}",
        "SPA_BASE_URL": f"http://localhost:{ports['spa']}",
        "API_URL": f"http://127.0.0.1:{ports['api']}",
        "NATIVE_REDIRECT_PORT": str(ports["native"]),
        "TRUSTED_MODE": "true",
        "DEV_ISSUER_REQUIRE_DPOP": "all",
        "API_DPOP": "required",
    }
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    parts = [
        ("dev_issuer", "issuer", "/oauth2/default/.well-known/openid-configuration"),
        ("resource_server", "api", "/healthz"),
        ("web_app", "web", "/healthz"),
        ("spa_app", "spa", "/healthz"),
    ]
    started = []
    try:
        for package, port, health in parts:
            started.append(
                gunicorn(
                    f"dpop-{package}",
                    f"{package}:create_app()",
                    env,
                    ports[port],
                    workers=2,
                    health_path=health,
                ).start()
            )
        yield env
    finally:
        for service in reversed(started):
            service.stop()


def _demo_user(env):
    settings = load_settings(env)
    return settings.demo_username, settings.demo_password


def _thumbprint(jwk: dict) -> str:
    return DPoPKey.from_jwk(jwk).thumbprint


def test_web_app_signs_in_and_calls_the_api_with_dpop(dpop_stack):
    base = dpop_stack["WEB_BASE_URL"]
    http = requests.Session()
    profile = sign_in(http, base, *_demo_user(dpop_stack))
    assert profile.status_code == 200, profile.text[:2000]
    raw = redis.Redis.from_url(dpop_stack["REDIS_URL"]).get(
        f"web_app:session:{http.cookies.get('web_app_session')}"
    )
    tokens = load_stored_session(raw)["tokens"]
    assert tokens["token_type"] == "DPoP"
    key_thumbprint = _thumbprint(tokens["dpop_jwk"])

    answer = http.post(base + "/call-api", data={"csrf_token": form_csrf(profile.text)})
    result = json.loads(element_text(answer.text, "api-result"))
    assert result["dpop"]["jkt"] == key_thumbprint  # the token the API saw is bound to the session's key
    assert "ath" in result["dpop"]["checks"]
    inspector = http.get(base + "/inspector").text
    assert NONCE_STEP in inspector and '"ath"' in inspector.replace("&#34;", '"')


def test_bff_signs_in_and_proxies_the_api_with_dpop(dpop_stack):
    base = dpop_stack["SPA_BASE_URL"]
    http = requests.Session()
    bff_sign_in(http, base, *_demo_user(dpop_stack))
    raw = redis.Redis.from_url(dpop_stack["REDIS_URL"]).get(
        f"spa_app:session:{http.cookies.get('spa_bff_session')}"
    )
    tokens = load_stored_session(raw)["tokens"]
    answer = http.get(base + "/bff/api/messages", headers=CSRF, timeout=10)
    assert answer.status_code == 200, answer.text[:2000]
    assert answer.json()["dpop"]["jkt"] == _thumbprint(tokens["dpop_jwk"])
    assert "ath" in answer.json()["dpop"]["checks"]
    steps = http.get(base + "/bff/inspector", headers=CSRF, timeout=10).json()["steps"]
    assert NONCE_STEP in [step["title"] for step in steps]
    exchange = next(step for step in steps if step["title"] == "Token request (authorization code)")
    assert exchange["proofs"][0]["claims"]["nonce"] and exchange["response"]["body"]["token_type"] == "DPoP"


def test_native_sim_login_call_api_refresh_and_logout_with_dpop(dpop_stack, tmp_path):
    env = cli_env(dpop_stack, tmp_path / "tokens")
    run = LoginRun(env, "--explain", "--timeout", "60")
    try:
        location = sign_in_and_get_redirect(
            requests.Session(), run.authorization_url(), *_demo_user(dpop_stack)
        )
        requests.get(location, timeout=10)
        code, out, err = run.finish()
    finally:
        run.stop()
    assert code == 0, err
    assert NONCE_STEP in out  # a new process: the issuer's nonce round trip
    token_file = tmp_path / "tokens" / TOKEN_FILE_NAME
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    key_thumbprint = _thumbprint(json.loads(token_file.read_text())["tokens"]["dpop_jwk"])

    called = run_cli(env, "call-api", "--explain")
    assert called.returncode == 0, called.stderr
    assert f'"jkt": "{key_thumbprint}"' in called.stdout and '"ath"' in called.stdout
    refreshed = run_cli(env, "refresh", "--explain")
    assert refreshed.returncode == 0, refreshed.stderr
    assert _thumbprint(json.loads(token_file.read_text())["tokens"]["dpop_jwk"]) == key_thumbprint
    assert run_cli(env, "call-api").returncode == 0  # the refreshed token, still bound to the stored key
    logged_out = run_cli(env, "logout")
    assert logged_out.returncode == 0, logged_out.stderr
    assert not token_file.exists()  # the key went with the tokens


def test_native_sim_password_login_with_dpop(dpop_stack, tmp_path):
    env = cli_env(dpop_stack, tmp_path / "tokens")
    username, password = _demo_user(dpop_stack)
    result = run_cli(
        env, "password-login", "--username", username, "--password-stdin", "--explain", input=password + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert NONCE_STEP in result.stdout
    record = json.loads((tmp_path / "tokens" / TOKEN_FILE_NAME).read_text())
    called = run_cli(env, "call-api")
    assert called.returncode == 0, called.stderr
    assert _thumbprint(record["tokens"]["dpop_jwk"]) in called.stdout


def test_service_app_calls_the_api_with_dpop(dpop_stack):
    result = subprocess.run(
        [sys.executable, "-m", "service_app", "call", "--explain"],
        cwd=ROOT,
        env={**os.environ, **dpop_stack},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert NONCE_STEP in result.stdout and '"ath"' in result.stdout
    assert '"jkt"' in result.stdout.split("── Step")[-1]  # the API's answer names the key it checked
