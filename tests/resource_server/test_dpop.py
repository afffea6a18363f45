"""DPoP at the API (RFC 9449 §7): bound tokens only with a valid proof for this very request.

The API runs under gunicorn with two workers against a real Redis; its
``API_URL`` is a public https URL that differs from the loopback address the
tests connect to, as behind a proxy, so every proof names the public URL
(RFC 9449 §4.3 step 9).  Tokens are minted with ``cnf.jkt`` by the test
issuer (PyJWT), proofs by :mod:`.dpop_helpers` (``cryptography``): neither
shares code with ``common/dpop.py``.  Each hostile proof is refused with
``401`` and ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``.
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.support import free_port, gunicorn

from .conftest import API_AUDIENCE, SPA_ORIGIN, api_env
from .dpop_helpers import ProofKey, challenges, dpop_get, hs256, unsigned
from .test_token_matrix import get

#: The API's public URL (``API_URL``): what proofs must name, not 127.0.0.1.
PUBLIC_URL = "https://api.example.test"
MESSAGES = PUBLIC_URL + "/api/messages"
LEEWAY = 30  # api_env's CLOCK_LEEWAY


@pytest.fixture(scope="module")
def dpop_api(test_issuer, redis_server):
    """The resource server, ``API_DPOP=optional`` (the default), two workers sharing one Redis."""
    env = api_env(test_issuer, API_URL=PUBLIC_URL, REDIS_URL=redis_server.url)
    service = gunicorn("resource_server-dpop", "resource_server:create_app()", env, free_port(), workers=2)
    service.health_path = "/healthz"
    yield service.start()
    service.stop()


@pytest.fixture(scope="module")
def strict_api(test_issuer, redis_server):
    """``API_DPOP=required`` and ``API_DPOP_NONCE=on``: DPoP only, with the API's own nonce."""
    env = api_env(
        test_issuer, API_URL=PUBLIC_URL, REDIS_URL=redis_server.url, API_DPOP="required", API_DPOP_NONCE="on"
    )
    service = gunicorn(
        "resource_server-dpop-strict", "resource_server:create_app()", env, free_port(), workers=2
    )
    service.health_path = "/healthz"
    yield service.start()
    service.stop()


@pytest.fixture
def key():
    return ProofKey()


def bound_token(test_issuer, key: ProofKey, **claims) -> str:
    """An access token bound to ``key`` (``cnf.jkt``, RFC 9449 §6.1)."""
    return test_issuer.mint(test_issuer.claims(cnf={"jkt": key.thumbprint}, **claims))


def assert_dpop_refusal(response: requests.Response, error: str, *, bearer_beside: bool = True) -> dict:
    """401, ``error`` in the body and in the DPoP challenge (with ``algs``), Bearer beside while optional."""
    assert response.status_code == 401, response.text
    assert response.json()["error"] == error
    found = dict(challenges(response))
    assert found["DPoP"]["error"] == error
    assert found["DPoP"]["algs"] == "ES256 PS256 RS256"
    assert found["DPoP"]["realm"] == API_AUDIENCE
    assert ("Bearer" in found) is bearer_beside
    return found["DPoP"]


# -- accepted ---------------------------------------------------------------------------------------


def test_bound_token_with_a_valid_proof_is_accepted(dpop_api, test_issuer, key):
    token = bound_token(test_issuer, key)
    response = dpop_get(dpop_api.url, token, key.proof("GET", MESSAGES, token))
    assert response.status_code == 200, response.text
    report = response.json()["dpop"]
    assert report["jkt"] == key.thumbprint
    assert {"typ", "alg", "signature", "htm", "htu", "iat", "jti", "ath"} <= set(report["checks"])


def test_bearer_token_still_works_while_optional(dpop_api, test_issuer):
    response = get(dpop_api, test_issuer.mint())
    assert response.status_code == 200, response.text
    assert response.json()["dpop"] is None


def test_a_refusal_offers_both_schemes_while_optional(dpop_api):
    """No token: a ``Bearer`` challenge and a ``DPoP`` one with ``algs``, neither with an error (§7.1)."""
    response = get(dpop_api)
    assert response.status_code == 401
    found = challenges(response)
    assert [scheme for scheme, _ in found] == ["Bearer", "DPoP"]
    assert "error" not in found[0][1] and "error" not in found[1][1]
    assert found[1][1]["algs"] == "ES256 PS256 RS256"


# -- the scheme and the binding must agree ----------------------------------------------------------


def test_bound_token_as_bearer_is_refused(dpop_api, test_issuer, key):
    """Otherwise a stolen bound token would be a bearer token again (RFC 9449 §7.2)."""
    token = bound_token(test_issuer, key)
    response = get(dpop_api, token, headers={"DPoP": key.proof("GET", MESSAGES, token)})
    params = assert_dpop_refusal(response, "invalid_token")
    assert "bound to a DPoP key" in params["error_description"]
    assert challenges(response)[0][0] == "Bearer"  # the scheme the request used comes first


def test_unbound_token_with_the_dpop_scheme_is_refused(dpop_api, test_issuer, key):
    token = test_issuer.mint()
    response = dpop_get(dpop_api.url, token, key.proof("GET", MESSAGES, token))
    params = assert_dpop_refusal(response, "invalid_token")
    assert "not DPoP-bound" in params["error_description"]
    assert challenges(response)[0][0] == "DPoP"


def test_bound_token_without_a_proof_is_refused(dpop_api, test_issuer, key):
    response = dpop_get(dpop_api.url, bound_token(test_issuer, key), None)
    assert_dpop_refusal(response, "invalid_dpop_proof")


def test_two_dpop_headers_are_refused(dpop_api, test_issuer, key):
    """RFC 9449 §4.3 step 1: exactly one ``DPoP`` header."""
    token = bound_token(test_issuer, key)
    proofs = [key.proof("GET", MESSAGES, token), key.proof("GET", MESSAGES, token)]
    # http.client, because requests folds headers of the same name into one.
    connection = http.client.HTTPConnection("127.0.0.1", dpop_api.port, timeout=10)
    try:
        connection.putrequest("GET", "/api/messages")
        connection.putheader("Authorization", f"DPoP {token}")
        for proof in proofs:
            connection.putheader("DPoP", proof)
        connection.endheaders()
        answer = connection.getresponse()
        body = json.loads(answer.read())
    finally:
        connection.close()
    assert answer.status == 401
    assert body["error"] == "invalid_dpop_proof" and "more than one" in body["error_description"]
    # The scheme the request used (DPoP) comes first.
    assert answer.headers.get_all("WWW-Authenticate")[0].startswith(
        'DPoP realm="api://default", error="invalid_dpop_proof"'
    )


def test_token_bound_to_something_else_is_refused(dpop_api, test_issuer):
    """A ``cnf`` the API cannot check (an mTLS thumbprint) is never taken as a bearer token."""
    token = test_issuer.mint(test_issuer.claims(cnf={"x5t#S256": "A" * 43}))
    response = get(dpop_api, token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


# -- hostile proofs ---------------------------------------------------------------------------------


def hostile_proofs(key: ProofKey, token: str, api_url: str) -> dict[str, tuple[str, str]]:
    """Name -> (proof, word the refusal names): each spoils one check of RFC 9449 §4.3."""
    now = int(time.time())
    other = ProofKey()
    good_header = key.header()
    good_claims = key.claims("GET", MESSAGES, token)
    return {
        "wrong htm": (key.proof("POST", MESSAGES, token), "htm"),
        "wrong htu (another path)": (key.proof("GET", PUBLIC_URL + "/api/custom", token), "htu"),
        "htu of the received URL, not the public one": (
            key.proof("GET", api_url + "/api/messages", token),
            "htu",
        ),
        "htu with a query": (key.proof("GET", MESSAGES + "?page=2", token), "htu"),
        "htu with a fragment": (key.proof("GET", MESSAGES + "#top", token), "htu"),
        "stale iat": (key.proof("GET", MESSAGES, token, iat=now - 3 * LEEWAY), "iat"),
        "future iat": (key.proof("GET", MESSAGES, token, iat=now + 3 * LEEWAY), "iat"),
        "iat as a string": (key.proof("GET", MESSAGES, token, iat=str(now)), "iat"),
        "missing ath": (key.proof("GET", MESSAGES, None), "ath"),
        "ath of another token": (key.proof("GET", MESSAGES, token + "x"), "ath"),
        "signed by another key": (other.proof("GET", MESSAGES, token), "another key"),
        "another key's jwk, our signature": (
            key.proof("GET", MESSAGES, token, header={"jwk": other.public_jwk}),
            "signature",
        ),
        "private key in jwk": (key.proof("GET", MESSAGES, token, header={"jwk": key.private_jwk}), "private"),
        "alg none": (unsigned({**good_header, "alg": "none"}, good_claims), "algorithm"),
        "HS256": (hs256({**good_header, "alg": "HS256"}, good_claims, b"secret"), "algorithm"),
        "HS256 with an oct jwk": (
            hs256(
                {**good_header, "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}},
                good_claims,
                b"secret",
            ),
            "algorithm",
        ),
        "missing typ": (key.proof("GET", MESSAGES, token, header={"typ": None}), "typ"),
        "typ JWT": (key.proof("GET", MESSAGES, token, header={"typ": "JWT"}), "typ"),
        "no jwk": (key.proof("GET", MESSAGES, token, header={"jwk": None}), "jwk"),
        "no jti": (key.proof("GET", MESSAGES, token, jti=None), "jti"),
        "not a JWT": ("not-a-jwt", "well-formed"),
        "oversized": ("e" * 5000 + ".x.y", "well-formed"),
    }


HOSTILE = list(hostile_proofs(ProofKey(), "t", "http://127.0.0.1:1"))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_proof_is_refused(dpop_api, test_issuer, key, case):
    token = bound_token(test_issuer, key)
    proof, word = hostile_proofs(key, token, dpop_api.url)[case]
    response = dpop_get(dpop_api.url, token, proof)
    params = assert_dpop_refusal(response, "invalid_dpop_proof")
    assert word in params["error_description"], params
    checks = {"format", "typ", "alg", "jwk", "signature", "htm", "htu", "iat", "jti", "ath", "jkt"}
    assert response.json()["dpop_check"] in checks  # the body names the failed check
    # The same token with a good proof still works: a refusal burns nothing.
    assert dpop_get(dpop_api.url, token, key.proof("GET", MESSAGES, token)).status_code == 200


def test_replayed_proof_is_refused(dpop_api, test_issuer, key):
    token = bound_token(test_issuer, key)
    proof = key.proof("GET", MESSAGES, token)
    assert dpop_get(dpop_api.url, token, proof).status_code == 200
    params = assert_dpop_refusal(dpop_get(dpop_api.url, token, proof), "invalid_dpop_proof")
    assert "already used" in params["error_description"]


def test_replay_across_two_workers_succeeds_once(dpop_api, test_issuer, key):
    """Each proof sent 8 times at once, on 8 connections spread over both workers: one 200 per proof.

    A per-worker record of ``jti`` values would let each worker accept a
    copy (about two successes per proof); the record is in Redis (§11.1).
    """
    token = bound_token(test_issuer, key)
    proofs = [key.proof("GET", MESSAGES, token) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for proof in proofs:
            statuses = list(pool.map(lambda p: dpop_get(dpop_api.url, token, p).status_code, [proof] * 8))
            assert sorted(statuses) == [200] + [401] * 7, statuses


def test_used_jti_is_kept_only_for_the_window(dpop_api, test_issuer, key, redis_server):
    """Storage is bounded by the window: each record expires within 2 x CLOCK_LEEWAY (§11.1)."""
    store = redis.Redis.from_url(redis_server.url)
    token = bound_token(test_issuer, key)
    before = set(store.scan_iter("resource_server:dpop_jti:*"))
    assert dpop_get(dpop_api.url, token, key.proof("GET", MESSAGES, token)).status_code == 200
    new = set(store.scan_iter("resource_server:dpop_jti:*")) - before
    assert len(new) == 1
    ttl = store.ttl(new.pop())
    assert 0 < ttl <= 2 * LEEWAY


def test_cors_lets_the_spa_send_proofs_and_read_nonces(dpop_api):
    response = requests.options(
        dpop_api.url + "/api/messages",
        headers={
            "Origin": SPA_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, dpop",
        },
        timeout=5,
    )
    assert response.status_code == 204
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "dpop"} <= allowed
    refused = get(dpop_api, "opaque", headers={"Origin": SPA_ORIGIN})
    exposed = {h.strip().lower() for h in refused.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"www-authenticate", "dpop-nonce"} <= exposed


# -- API_DPOP=required, and the API's own nonce -----------------------------------------------------


def test_required_mode_refuses_bearer_tokens(strict_api, test_issuer):
    """``API_DPOP=required``: a valid Bearer token gets 401 with only the DPoP challenge."""
    response = get(strict_api, test_issuer.mint())
    assert_dpop_refusal(response, "invalid_token", bearer_beside=False)
    assert [scheme for scheme, _ in challenges(response)] == ["DPoP"]


def test_nonce_round_trip(strict_api, test_issuer, key):
    """No nonce in the proof: 401 ``use_dpop_nonce`` with ``DPoP-Nonce``; the retry with it passes (§9)."""
    token = bound_token(test_issuer, key)
    first = dpop_get(strict_api.url, token, key.proof("GET", MESSAGES, token))
    assert_dpop_refusal(first, "use_dpop_nonce", bearer_beside=False)
    nonce = first.headers["DPoP-Nonce"]
    wrong = dpop_get(strict_api.url, token, key.proof("GET", MESSAGES, token, nonce="x" + nonce))
    assert_dpop_refusal(wrong, "use_dpop_nonce", bearer_beside=False)
    # Both workers derive the same nonces: the retry may land on either.
    for _ in range(4):
        retry = dpop_get(strict_api.url, token, key.proof("GET", MESSAGES, token, nonce=nonce))
        assert retry.status_code == 200, retry.text


# -- introspection mode -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def introspecting_dpop_api(test_issuer, redis_server):
    from .conftest import INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET

    env = api_env(
        test_issuer,
        API_URL=PUBLIC_URL,
        REDIS_URL=redis_server.url,
        API_VALIDATION="introspection",
        API_INTROSPECTION_CLIENT_ID=INTROSPECTION_CLIENT_ID,
        API_INTROSPECTION_CLIENT_SECRET=INTROSPECTION_CLIENT_SECRET,
    )
    service = gunicorn(
        "resource_server-dpop-introspection", "resource_server:create_app()", env, free_port(), workers=1
    )
    service.health_path = "/healthz"
    yield service.start()
    service.stop()


def test_introspection_reads_the_binding(introspecting_dpop_api, test_issuer, key):
    """RFC 9449 §6.2: ``token_type: DPoP`` and ``cnf.jkt`` in the answer bind the opaque token."""
    from .test_introspection import opaque_token

    token = opaque_token(test_issuer, token_type="DPoP", cnf={"jkt": key.thumbprint})
    assert_dpop_refusal(get(introspecting_dpop_api, token, "/api/custom"), "invalid_token")
    proof = key.proof("GET", PUBLIC_URL + "/api/custom", token)
    response = dpop_get(introspecting_dpop_api.url, token, proof, "/api/custom")
    assert response.status_code == 200, response.text
    assert response.json()["dpop"]["jkt"] == key.thumbprint
    # Another key's proof for the same opaque token is refused.
    other = ProofKey()
    refused = dpop_get(
        introspecting_dpop_api.url,
        token,
        other.proof("GET", PUBLIC_URL + "/api/custom", token),
        "/api/custom",
    )
    assert_dpop_refusal(refused, "invalid_dpop_proof")


def test_introspection_dpop_type_without_a_key_is_refused(introspecting_dpop_api, test_issuer, key):
    from .test_introspection import opaque_token

    token = opaque_token(test_issuer, token_type="DPoP")
    response = dpop_get(
        introspecting_dpop_api.url, token, key.proof("GET", PUBLIC_URL + "/api/custom", token), "/api/custom"
    )
    assert_dpop_refusal(response, "invalid_token")


def test_api_without_redis_answers_503_to_dpop_but_serves_bearer(test_issuer, key, tmp_path):
    """No REDIS_URL: Bearer tokens work, a DPoP request gets a clear 503 (no replay check, no answer)."""
    # An empty instance directory: no running suite's Redis is found either.
    env = api_env(test_issuer, API_URL=PUBLIC_URL, REDIS_URL="", INSTANCE_DIR=str(tmp_path))
    service = gunicorn(
        "resource_server-dpop-no-redis", "resource_server:create_app()", env, free_port(), workers=1
    )
    service.health_path = "/healthz"
    service.start()
    try:
        assert get(service, test_issuer.mint()).status_code == 200
        token = bound_token(test_issuer, key)
        response = dpop_get(service.url, token, key.proof("GET", MESSAGES, token))
        assert response.status_code == 503
        assert "Redis" in response.json()["error_description"]
    finally:
        service.stop()
