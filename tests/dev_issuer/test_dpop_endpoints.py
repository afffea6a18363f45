"""DPoP at the dev issuer's other endpoints: userinfo (RFC 9449 §7), revocation, and those taking no proof."""

from __future__ import annotations

import json

import pytest
import requests
from joserfc import jws

from common.dpop import DPoPKey
from tests.dev_issuer.dpop_support import (
    TIMEOUT,
    b64,
    dpop_token_request,
    forged,
    post_with_proof,
    proof_claims,
    sign_in_for_code,
    unsigned,
)


@pytest.fixture(scope="module")
def bound(issuer):
    """A signed-in SPA's DPoP-bound tokens and the key they are bound to."""
    key = DPoPKey.generate()
    answer = dpop_token_request(issuer, key, sign_in_for_code(issuer, "spa")["data"])
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP", answer.text
    return key, answer.json()


def userinfo(issuer, scheme: str, token: str, proof: str | None = None, method: str = "GET"):
    headers = {"Authorization": f"{scheme} {token}", **({"DPoP": proof} if proof else {})}
    return requests.request(method, issuer.endpoint("userinfo"), headers=headers, timeout=TIMEOUT)


def challenge(answer) -> str:
    assert answer.status_code == 401, answer.text
    return answer.headers["WWW-Authenticate"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_answers_a_bound_token_with_its_proof(issuer, bound, method):
    """§7.1: Authorization: DPoP plus a proof for this request (htm, htu, ath) by the token's key."""
    key, token = bound
    url = issuer.endpoint("userinfo")
    proof = key.proof(method, url, access_token=token["access_token"])
    answer = userinfo(issuer, "DPoP", token["access_token"], proof, method)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"]


def test_userinfo_refuses_a_bound_token_sent_as_bearer(issuer, bound):
    """§7.2: a bound token is no bearer token; the challenge names DPoP and its algorithms."""
    _, token = bound
    header = challenge(userinfo(issuer, "Bearer", token["access_token"]))
    assert header.startswith("DPoP ") and 'error="invalid_token"' in header and "algs=" in header


def _proof_for(case: str, issuer, key: DPoPKey, access_token: str) -> str | None:
    url = issuer.endpoint("userinfo")
    if case == "no proof":
        return None
    if case == "another key":
        return DPoPKey.generate().proof("GET", url, access_token=access_token)
    if case == "no ath":
        return key.proof("GET", url)
    if case == "wrong ath":
        return key.proof("GET", url, access_token=access_token + "x")
    if case == "wrong htu":
        return key.proof("GET", issuer.endpoint("token"), access_token=access_token)
    if case == "wrong htm":
        return key.proof("POST", url, access_token=access_token)
    if case == "missing typ":
        claims = proof_claims("GET", url)
        return forged({"alg": "ES256", "jwk": key.public_jwk}, claims, key.key, "ES256")
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["no proof", "another key", "no ath", "wrong ath", "wrong htu", "wrong htm", "missing typ"]
)
def test_userinfo_refuses_a_bad_proof(issuer, bound, case):
    """§7.1: a missing or wrong proof gets 401 with DPoP error="invalid_dpop_proof"."""
    key, token = bound
    proof = _proof_for(case, issuer, key, token["access_token"])
    header = challenge(userinfo(issuer, "DPoP", token["access_token"], proof))
    assert header.startswith("DPoP ") and 'error="invalid_dpop_proof"' in header, header


def test_userinfo_refuses_a_replayed_proof(issuer, bound):
    """§11.1: the same proof twice is a replay, at userinfo too."""
    key, token = bound
    proof = key.proof("GET", issuer.endpoint("userinfo"), access_token=token["access_token"])
    assert userinfo(issuer, "DPoP", token["access_token"], proof).status_code == 200
    assert 'error="invalid_dpop_proof"' in challenge(userinfo(issuer, "DPoP", token["access_token"], proof))


def test_userinfo_refuses_an_unbound_token_sent_with_the_dpop_scheme(issuer):
    """An unbound (Bearer) token with the DPoP scheme is refused: it is not what the client claims."""
    key = DPoPKey.generate()
    s = issuer.settings
    password = requests.post(
        issuer.endpoint("token"),
        data={
            "grant_type": "password",
            "username": s.demo_username,
            "password": s.demo_password,
            "scope": "openid",
        },
        auth=(s.trusted_client_id, s.trusted_client_secret),
        timeout=TIMEOUT,
    )
    assert password.status_code == 200 and password.json()["token_type"] == "Bearer", password.text
    access_token = password.json()["access_token"]
    proof = key.proof("GET", issuer.endpoint("userinfo"), access_token=access_token)
    header = challenge(userinfo(issuer, "DPoP", access_token, proof))
    assert header.startswith("DPoP ") and 'error="invalid_token"' in header


def test_revocation_checks_a_proof_when_one_comes(issuer):
    """A bad proof at revocation is refused (the token stays active); a good one is accepted."""
    key = DPoPKey.generate()
    token = dpop_token_request(issuer, key, sign_in_for_code(issuer, "spa")["data"]).json()
    url = issuer.endpoint("revoke")
    form = {"token": token["refresh_token"], "client_id": issuer.settings.spa_client_id}
    wrong = post_with_proof(url, form, key.proof("POST", issuer.endpoint("token")))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_dpop_proof", wrong.text
    client_id = issuer.settings.spa_client_id
    assert issuer.introspect(token["refresh_token"], client_id=client_id)["active"] is True
    revoked = post_with_proof(url, form, key.proof("POST", url))
    assert revoked.status_code == 200, revoked.text
    assert issuer.introspect(token["refresh_token"], client_id=client_id)["active"] is False


def test_a_proof_at_introspection_is_refused(issuer):
    """Introspection takes no proof: one sent there is a mistake, answered 400 invalid_dpop_proof."""
    s = issuer.settings
    url = issuer.endpoint("introspect")
    answer = post_with_proof(
        url, {"token": "x"}, DPoPKey.generate().proof("POST", url), (s.web_client_id, s.web_client_secret)
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_dpop_proof"


def test_a_proof_at_the_authorization_endpoint_is_refused(issuer):
    """The authorization endpoint binds nothing to a DPoP header: refused, not ignored."""
    s = issuer.settings
    url = issuer.authorize_url(s.web_client_id, s.web_redirect_uri)
    proof = DPoPKey.generate().proof("GET", issuer.endpoint("authorize"))
    answer = requests.get(url, headers={"DPoP": proof}, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize("endpoint", ["token", "revoke", "userinfo"])
def test_cors_lets_the_spa_send_proofs_and_read_the_nonce(issuer, endpoint):
    """The SPA calls these from the browser: DPoP may be sent, DPoP-Nonce and WWW-Authenticate read."""
    origin = issuer.settings.spa_origin
    preflight = requests.options(
        issuer.endpoint(endpoint),
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,dpop",
        },
        timeout=TIMEOUT,
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "dpop" in preflight.headers["Access-Control-Allow-Headers"].lower().split(", ")
    answer = requests.post(issuer.endpoint(endpoint), headers={"Origin": origin}, timeout=TIMEOUT)
    exposed = {h.strip().lower() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"dpop-nonce", "www-authenticate"} <= exposed


def _garbage_proofs() -> list[str]:
    """Malformed proofs: not JWTs, wrong shapes, hostile sizes and types (each must be a clean 4xx)."""
    key = DPoPKey.generate()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    claims = proof_claims("POST", "http://issuer.test/v1/token")
    weak_rsa = {"kty": "RSA", "n": b64(b"\x01" * 64), "e": "AQAB"}
    return [
        "",
        "garbage",
        "a.b.c",
        "x" * 5000,
        "é.é.é",
        f"{b64(b'[]')}.{b64(b'{}')}.",
        f"{b64(json.dumps({**header, 'jwk': 'a string'}).encode())}.{b64(b'{}')}.{b64(b'sig')}",
        forged({**header, "jwk": {**key.public_jwk, "crv": "P-384"}}, claims, key.key, "ES256"),
        unsigned({**header, "alg": "RS256", "jwk": weak_rsa}, claims),
        forged(header, {**claims, "iat": "now", "jti": 7}, key.key, "ES256"),
        jws.serialize_compact(header, b"[1, 2]", key.key, algorithms=["ES256"]),
    ]


@pytest.mark.parametrize("index", range(11))
@pytest.mark.parametrize("endpoint", ["token", "revoke", "userinfo", "introspect"])
def test_a_malformed_proof_is_a_clear_refusal_never_a_server_error(issuer, bound, endpoint, index):
    """Whatever a DPoP header holds, the answer is a 400/401 naming invalid_dpop_proof, never a 500."""
    _, token = bound
    proof = _garbage_proofs()[index]
    headers = {"DPoP": proof}
    if endpoint == "userinfo":
        headers["Authorization"] = f"DPoP {token['access_token']}"
    auth = (issuer.settings.web_client_id, issuer.settings.web_client_secret)
    form = {"grant_type": "client_credentials", "token": "t"}
    answer = requests.post(
        issuer.endpoint(endpoint),
        data=form,
        headers=headers,
        auth=None if endpoint == "userinfo" else auth,
        timeout=TIMEOUT,
    )
    assert answer.status_code in (400, 401), answer.text
    said = answer.json().get("error") if answer.status_code == 400 else answer.headers["WWW-Authenticate"]
    assert "invalid_dpop_proof" in said, (answer.status_code, answer.text, answer.headers)
