"""The service against a real dev issuer and resource server, both client-auth methods.

Token requests are counted by the counting proxy in front of the issuer
(see conftest.py), never by the client under test.
"""

from __future__ import annotations

import base64
import threading
import time

import pytest
import requests

from common.config import load_settings
from common.dpop import DPoPKey
from common.errors import FlowError
from common.http import IssuerUnreachable
from common.inspector import FlowLog, decode_unverified
from common.tokens import TokenSet
from service_app.client import ServiceClient
from service_app.token_cache import Backoff, CachedToken, MemoryStore

from .conftest import SHORT_TOKEN_LIFETIME
from .test_cli import run_cli

CLIENT_ID = "dev-service-app"
SECRET = "dev-service-app-secret-do-not-use-in-production"


def settings_for(stack, **extra):
    return load_settings({**stack.env, **extra})


def quick_backoff(attempts=3):
    return Backoff(attempts=attempts, base_delay=0.05, max_delay=0.2)


# -- both client authentication methods -------------------------------------------


def test_client_secret_basic_gets_a_token_and_calls_the_scoped_route(secret_stack, secret_proxy):
    client = ServiceClient(settings_for(secret_stack))
    result = client.call_api()
    assert result.ok and result.token_fetched and not result.retried
    assert result.body["client_id"] == CLIENT_ID and "customScope" in result.body["scopes"]
    assert secret_proxy.token_requests == 1
    # RFC 6749 §2.3.1: the credentials travel in the Basic header, not in the form.
    assert secret_proxy.token_auth_headers[0].startswith("Basic ")
    form = secret_proxy.token_bodies[0]
    assert form["grant_type"] == ["client_credentials"] and form["scope"] == ["customScope"]
    assert "client_secret" not in form
    _, claims = decode_unverified(result.token.token.access_token)
    assert claims["iss"] == secret_stack.issuer
    # DPoP (RFC 9449) by DPOP=auto: the dev issuer advertises it, so the token is bound to the
    # process's key (cnf.jkt), after the issuer's nonce round trip (or with the nonce remembered).
    key = DPoPKey.from_jwk(result.token.token.dpop_jwk)
    assert result.token.token.token_type == "DPoP" and claims["cnf"] == {"jkt": key.thumbprint}
    assert decode_unverified(secret_proxy.token_dpop_proofs[-1])[1]["nonce"]


def test_private_key_jwt_sends_a_short_lived_single_use_assertion(jwt_stack, jwt_proxy):
    client = ServiceClient(settings_for(jwt_stack))
    first = client.call_api()
    assert first.ok and first.body["client_id"] == CLIENT_ID
    client.cache.invalidate(first.token.token.access_token)
    assert client.call_api().token_fetched
    assert jwt_proxy.token_requests == 2
    assertions = []
    for form, auth_header in zip(jwt_proxy.token_bodies, jwt_proxy.token_auth_headers, strict=False):
        assert auth_header is None and "client_secret" not in form  # no secret at all
        assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
        header, claims = decode_unverified(form["client_assertion"][0])
        assert header["alg"] == "RS256" and header["kid"]
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        assert claims["aud"].startswith(jwt_stack.issuer) and claims["aud"].endswith("/token")
        assert 0 < claims["exp"] - claims["iat"] <= 300
        assertions.append(claims)
    assert assertions[0]["jti"] != assertions[1]["jti"]


def test_a_replayed_assertion_is_refused_and_not_retried(jwt_stack, jwt_proxy, monkeypatch):
    client = ServiceClient(settings_for(jwt_stack))
    client.call_api()
    captured = jwt_proxy.token_bodies[0]["client_assertion"][0]
    # The service itself replays the captured assertion on its next token request.
    import common.client

    monkeypatch.setattr(common.client, "client_assertion", lambda *args, **kwargs: captured)
    replaying = ServiceClient(settings_for(jwt_stack), backoff=quick_backoff())
    with pytest.raises(FlowError) as refused:
        replaying.call_api()
    assert refused.value.error == "invalid_client"
    # The code is the error's; the description carries the issuer's words, not the code again.
    assert "The issuer refused the token request" in refused.value.description
    assert "invalid_client" not in refused.value.description
    assert jwt_proxy.token_requests == 2  # one success, one refused replay: never retried


# -- defined failures ------------------------------------------------------------


def test_a_wrong_secret_exits_1_naming_invalid_client_once(secret_stack, secret_proxy):
    wrong = "wrong-secret-that-must-not-be-printed"
    result = run_cli("call", "--explain", env={**secret_stack.env, "SERVICE_CLIENT_SECRET": wrong})
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: invalid_client:") and result.stderr.count("\n") == 1
    assert secret_proxy.token_requests == 1  # invalid_client is never retried
    output = result.stdout + result.stderr
    assert wrong not in output
    assert base64.b64encode(f"{CLIENT_ID}:{wrong}".encode()).decode() not in output


@pytest.mark.parametrize("scope", ["openid", "notAllowedScope"])
def test_a_scope_the_client_lacks_ends_with_the_issuers_answer(secret_stack, secret_proxy, scope):
    result = run_cli("call", "--scope", scope, env=secret_stack.env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: invalid_scope:")
    assert "The issuer refused the token request" in result.stderr
    assert secret_proxy.token_requests == 1


def test_an_api_401_gets_one_fresh_token_and_one_retry(secret_stack, secret_proxy):
    store = MemoryStore()
    # A token the cache believes valid but the API does not accept (revoked,
    # signed with a rotated-away key ...).
    store.save(
        CachedToken(TokenSet("not-a-token-the-api-accepts", expires_at=time.time() + 600), time.time())
    )
    client = ServiceClient(settings_for(secret_stack), store=store)
    log = FlowLog()
    result = client.call_api(log=log)
    assert result.ok and result.retried and result.token_fetched
    assert secret_proxy.token_requests == 1
    assert any("401" in step["title"] for step in log.steps)


def test_an_api_that_keeps_refusing_gets_exactly_one_retry(secret_stack, jwt_stack, secret_proxy):
    # The jwt stack's API trusts another issuer: it refuses every token of this one.
    client = ServiceClient(settings_for(secret_stack, API_URL=jwt_stack.env["API_URL"]))
    with pytest.raises(FlowError) as refused:
        client.call_api()
    assert refused.value.error == "invalid_token"
    assert secret_proxy.token_requests == 2  # the first token, and one fresh one for the single retry


def test_issuer_5xx_is_retried_with_a_bound(secret_stack, secret_proxy):
    secret_proxy.fail_next(2, status=503)
    client = ServiceClient(settings_for(secret_stack), backoff=quick_backoff(attempts=3))
    assert client.call_api().ok
    assert secret_proxy.token_requests == 3

    secret_proxy.reset()
    secret_proxy.fail_next(10, status=502)
    client = ServiceClient(settings_for(secret_stack), backoff=quick_backoff(attempts=3))
    with pytest.raises(IssuerUnreachable):
        client.call_api()
    assert secret_proxy.token_requests == 3  # bounded: three tries, then a clear error


# -- concurrency ---------------------------------------------------------------------


def test_many_threads_cause_one_token_request_per_token_lifetime(secret_stack, secret_proxy):
    client = ServiceClient(settings_for(secret_stack))
    threads_count, calls_each = 12, 6

    def burst() -> list:
        outcomes: list = []
        barrier = threading.Barrier(threads_count)

        def worker():
            barrier.wait()
            for _ in range(calls_each):
                try:
                    outcomes.append(client.call_api().status)
                except Exception as error:  # noqa: BLE001 - asserted below
                    outcomes.append(error)

        threads = [threading.Thread(target=worker) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return outcomes

    started = time.time()
    assert burst() == [200] * threads_count * calls_each
    assert time.time() - started < SHORT_TOKEN_LIFETIME * 0.9, (
        "burst outlived the token: the test proves nothing"
    )
    assert secret_proxy.token_requests == 1
    cached = client.cache.peek()
    assert client.cache.store.calls(cached.token.access_token) == threads_count * calls_each

    # Wait for the token to expire, then burst again: exactly one more request.
    time.sleep(max(0.0, cached.expires_at - time.time()) + 0.2)
    assert burst() == [200] * threads_count * calls_each
    assert secret_proxy.token_requests == 2


# -- the command line ----------------------------------------------------------------


def test_call_explain_prints_each_step_without_the_secret(secret_stack, secret_proxy):
    result = run_cli("call", "--explain", env=secret_stack.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Token request (client credentials)" in out and "grant_type: client_credentials" in out
    assert "Call the API: GET" in out and "Access granted" in out
    assert "[redacted]" in out
    assert SECRET not in out + result.stderr
    assert base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode() not in out + result.stderr


def test_call_with_private_key_jwt_from_the_command_line(jwt_stack, jwt_proxy):
    result = run_cli("call", "--explain", env=jwt_stack.env)
    assert result.returncode == 0, result.stderr
    assert "client_assertion: [redacted]" in result.stdout
    assert jwt_proxy.token_requests == 1


def test_api_unreachable_exits_3(secret_stack):
    result = run_cli("call", env={**secret_stack.env, "API_URL": "http://api.test"})
    assert result.returncode == 3 and result.stderr.startswith("error: api_unreachable:")


def test_raw_replay_at_the_token_endpoint_is_refused(jwt_stack, jwt_proxy):
    """The same assertion posted twice by hand: the issuer accepts it once only."""
    ServiceClient(settings_for(jwt_stack)).call_api()
    form = {k: v[0] for k, v in jwt_proxy.token_bodies[0].items()}
    token_endpoint = requests.get(f"{jwt_stack.issuer}/.well-known/openid-configuration", timeout=5).json()[
        "token_endpoint"
    ]
    replay = requests.post(token_endpoint, data=form, timeout=5)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"


def test_call_explain_prints_the_apis_answer_once(secret_stack, secret_proxy):
    result = run_cli("call", "--explain", env=secret_stack.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(f'"client_id": "{CLIENT_ID}"') == 1, result.stdout
    plain = run_cli("call", env=secret_stack.env)
    assert plain.returncode == 0 and plain.stdout.count(f'"client_id": "{CLIENT_ID}"') == 1, plain.stdout


@pytest.mark.parametrize("scope", ["openid", "notAllowedScope"])
def test_a_refused_scope_names_invalid_scope_once(secret_stack, secret_proxy, scope):
    result = run_cli("call", "--scope", scope, env=secret_stack.env)
    assert result.returncode == 1 and result.stderr.count("invalid_scope") == 1, result.stderr
