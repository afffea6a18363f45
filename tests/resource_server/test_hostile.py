"""Hostile requests (issue 7) and CORS: the API under pressure from callers it must not trust."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from .conftest import SPA_ORIGIN
from .test_token_matrix import assert_refused, get


def test_random_kid_flood_fetches_jwks_at_most_once_per_cooldown(api, test_issuer):
    """Made-up ``kid`` values must not turn the API into a JWKS flood against the issuer.

    Each gunicorn worker keeps its own key set, so the bound is one fetch
    per worker per 30 s cool-down; without the cool-down it would be one
    fetch per request (200 here).
    """
    workers = 2
    # Let both workers load the keys once (a valid token makes them fetch).
    for _ in range(10):
        assert get(api, test_issuer.mint()).status_code == 200
    before = test_issuer.count(test_issuer.jwks_path)

    def attack(_):
        token = test_issuer.mint(key=test_issuer.rogue_key, kid=uuid.uuid4().hex)
        return get(api, token)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attack, range(200)))
    for response in responses:
        assert_refused(response, 401, "invalid_token")
    assert test_issuer.count(test_issuer.jwks_path) - before <= workers
    # Valid tokens still work during and after the flood.
    assert get(api, test_issuer.mint()).status_code == 200


def test_many_oversized_tokens_are_cheap(api, test_issuer):
    """Refusing 50 tokens of 30 KB takes about as long as 50 health checks: no parsing, no crypto."""
    token = "eyJ" + "A" * 30_000
    started = time.monotonic()
    for _ in range(50):
        assert_refused(get(api, token), 401, "invalid_token")
    assert time.monotonic() - started < 5


# -- CORS ------------------------------------------------------------------------------------------------


def preflight(api, origin: str) -> requests.Response:
    return requests.options(
        api.url + "/api/messages",
        timeout=5,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_preflight_from_the_spa_is_allowed(api):
    response = preflight(api, SPA_ORIGIN)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_preflight_from_another_origin_gets_no_cors_headers(api):
    for origin in (
        "http://evil.test",
        SPA_ORIGIN + ".evil.test",
        "null",
        SPA_ORIGIN.replace("http:", "https:"),
    ):
        response = preflight(api, origin)
        assert response.status_code == 403
        assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_spa_can_read_answers_and_refusals(api, test_issuer):
    ok = get(api, test_issuer.mint(), headers={"Origin": SPA_ORIGIN})
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "Origin" in ok.headers["Vary"]
    refused = get(api, "opaque", headers={"Origin": SPA_ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]


def test_other_origins_get_no_cors_headers(api, test_issuer):
    response = get(api, test_issuer.mint(), headers={"Origin": "http://evil.test"})
    assert response.status_code == 200  # the server answers; the browser withholds it
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_issuer_down_is_503_not_invalid_token(tmp_path):
    """If the keys cannot be fetched, the token is not at fault: 503, no challenge.

    The API also has to start while its issuer is down (discovery is lazy).
    """
    from tests.support import free_port, gunicorn

    from .conftest import TestIssuer, api_env

    issuer = TestIssuer()  # never started: nothing listens on its port
    service = gunicorn(
        "resource_server-no-issuer",
        "resource_server:create_app()",
        api_env(issuer),
        free_port(),
        workers=1,
        health_path="/healthz",
    ).start()
    try:
        response = get(service, issuer.mint())
        assert response.status_code == 503
        assert "WWW-Authenticate" not in response.headers
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"]
    finally:
        service.stop()
