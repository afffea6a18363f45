"""DPoP (RFC 9449) in the BFF, the native app and the service, against the DPoP-speaking test issuer.

Where each app keeps its key, and that the key really is the one its
tokens are bound to (the fake API checks ``cnf.jkt`` against the proof):

* the SPA's BFF: one key per browser session, in the Redis session, never in a cookie or an answer;
* native_sim: the key beside the tokens, in the same 0600 file, used by ``call-api``, ``refresh``
  and ``logout``;
* service_app: one key per process, travelling with the token in the shared cache, so that another
  worker using the cached token signs its proofs with the token's own key.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import redis

from common.config import load_settings
from common.dpop import DPoPKey
from common.inspector import decode_unverified
from common.session import load_stored_session
from service_app.client import ServiceClient
from service_app.token_cache import RedisStore
from tests.dpop_fakes import DPoPFakeIssuer
from tests.native_sim.conftest import cli_env, run_cli
from tests.security.conftest import NATIVE_CLIENT_ID
from tests.spa_app.bff_helpers import CSRF


@pytest.fixture
def dpop(issuer):
    return DPoPFakeIssuer(issuer)


def test_bff_keeps_one_key_per_session_in_redis_and_proxies_with_it(bff_driver, issuer, dpop):
    outcome = bff_driver.sign_in()
    assert outcome.ok, outcome.text
    cookie = bff_driver.client.get_cookie(bff_driver.app.config["SESSION_COOKIE_NAME"])
    stored = load_stored_session(bff_driver.redis.get(bff_driver.key_prefix + cookie.value.encode()))
    key = DPoPKey.from_jwk(stored["tokens"]["dpop_jwk"])
    assert decode_unverified(stored["tokens"]["access_token"])[1]["cnf"]["jkt"] == key.thumbprint
    assert key.to_jwk()["d"] not in cookie.value and len(cookie.value) < 100  # an opaque id only

    user = bff_driver.client.get("/bff/user", headers=CSRF)
    assert user.status_code == 200 and "dpop" not in user.get_data(as_text=True).lower()
    answer = bff_driver.client.get("/bff/api/messages", headers=CSRF)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert issuer.last("api").headers["Authorization"].startswith("DPoP ")
    assert "ath" in dpop.proofs[-1][1] and "DPoP" not in answer.headers

    other = bff_driver.make_client()
    response, url = bff_driver.start(client=other)
    assert bff_driver.callback(bff_driver.at_issuer(url), client=other).ok
    other_cookie = other.get_cookie(bff_driver.app.config["SESSION_COOKIE_NAME"])
    other_stored = load_stored_session(
        bff_driver.redis.get(bff_driver.key_prefix + other_cookie.value.encode())
    )
    assert DPoPKey.from_jwk(other_stored["tokens"]["dpop_jwk"]).thumbprint != key.thumbprint


def test_native_login_keeps_the_key_beside_the_tokens_in_a_0600_file(native_driver, issuer, dpop):
    outcome = native_driver.sign_in(wait=10)
    assert outcome.ok, outcome.text
    [token_file] = [p for p in native_driver.token_dir.iterdir() if p.suffix == ".json"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    record = json.loads(token_file.read_text())
    tokens = record["tokens"]
    key = DPoPKey.from_jwk(tokens["dpop_jwk"])
    assert tokens["token_type"] == "DPoP"
    assert decode_unverified(tokens["access_token"])[1]["cnf"]["jkt"] == key.thumbprint

    env = cli_env({}, native_driver.token_dir, **native_driver.env)
    called = run_cli(env, "call-api", "--explain")
    assert called.returncode == 0, called.stderr
    assert issuer.last("api").headers["Authorization"].startswith("DPoP ")
    assert "DPoP proof claims" in called.stdout and '"ath"' in called.stdout
    assert key.to_jwk()["d"] not in called.stdout + called.stderr

    refreshed = run_cli(env, "refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    again = json.loads(token_file.read_text())["tokens"]
    assert DPoPKey.from_jwk(again["dpop_jwk"]).thumbprint == key.thumbprint  # the same key, kept
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    logged_out = run_cli(env, "logout")
    assert logged_out.returncode == 0, logged_out.stderr
    assert [endpoint for endpoint, _ in dpop.proofs[-2:]] == ["revoke", "revoke"]
    assert not token_file.exists()  # the key went with the tokens


def test_native_dpop_on_without_issuer_support_is_one_line(issuer, tmp_path):
    env = cli_env(
        {},
        tmp_path / "tokens",
        ISSUER=issuer.issuer,
        NATIVE_CLIENT_ID=NATIVE_CLIENT_ID,
        NATIVE_REDIRECT_PORT="0",
        HTTP_TIMEOUT="2",
        DPOP="on",
    )
    result = run_cli(env, "login", "--no-browser", "--timeout", "5")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "DPOP=on" in lines[0] and issuer.issuer in lines[0], result.stderr
    assert issuer.count("token") == 0


def test_service_workers_share_the_key_with_the_cached_token(issuer, dpop, redis_server):
    settings = load_settings(
        {
            "ISSUER": issuer.issuer,
            "SERVICE_CLIENT_ID": issuer.client_id,
            "SERVICE_CLIENT_SECRET": issuer.client_secret,
            "SERVICE_PRIVATE_KEY": "",
            "API_URL": issuer.base_url,
            "HTTP_TIMEOUT": "2",
        },
        component="service_app",
    )
    connection = redis.Redis.from_url(redis_server.url)
    prefix = f"test-dpop-service:{os.getpid()}"
    connection.delete(prefix)
    first = ServiceClient(settings, store=RedisStore(connection, prefix))
    second = ServiceClient(settings, store=RedisStore(connection, prefix))  # another worker
    try:
        assert first.call_api("/api/messages").ok
        assert second.call_api("/api/messages").ok  # the cached token, with its own key
        assert issuer.count("token") <= 2  # one token request (plus the nonce round trip)
        jkts = {
            decode_unverified(r.headers["DPoP"])[0]["jwk"]["x"]
            for r in issuer.requests
            if r.endpoint == "api"
        }
        assert len(jkts) == 1  # both workers proved possession of the key the token is bound to
        cached = json.loads(connection.get(prefix))
        assert cached["token"]["token_type"] == "DPoP" and "dpop_jwk" in cached["token"]
    finally:
        connection.delete(prefix)
