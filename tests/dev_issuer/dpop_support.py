"""Helpers for the dev issuer's DPoP tests: proofs made with common.dpop, forged ones with joserfc."""

from __future__ import annotations

import base64
import json
import secrets
import time

import requests
from joserfc import jws

from common.dpop import DPoPKey
from tests.issuer_helpers import callback_params, pkce_pair, sign_in_and_get_redirect

TIMEOUT = 10


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decoded(jwt: str) -> tuple[dict, dict]:
    """Header and payload of a compact JWS, unverified (the tests verify tokens with PyJWT elsewhere)."""
    head, body = jwt.split(".")[:2]
    return tuple(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in (head, body))


def forged(header: dict, claims: dict, key, alg: str) -> str:
    """A proof signed exactly as given, whatever the header says (joserfc, any algorithm)."""
    registry = jws.JWSRegistry(algorithms=[alg])
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, registry=registry)


def unsigned(header: dict, claims: dict) -> str:
    """An ``alg: none`` JWS: no signature at all."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def proof_claims(method: str, url: str, nonce: str | None = None, **extra) -> dict:
    """The claims of an honest proof (RFC 9449 §4.2), to be altered by a test."""
    claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    if nonce:
        claims["nonce"] = nonce
    return {**claims, **extra}


def post_with_proof(
    url: str, data: dict, proof: str | None, auth=None, headers: dict | None = None
) -> requests.Response:
    """A form POST with ``proof`` in the ``DPoP`` header (none when ``proof`` is ``None``)."""
    headers = {**(headers or {}), **({"DPoP": proof} if proof is not None else {})}
    return requests.post(url, data=data, auth=auth, headers=headers, timeout=TIMEOUT)


def current_nonce(issuer) -> str:
    """Ask the token endpoint for its nonce, as a client's first DPoP request does (RFC 9449 §8)."""
    key = DPoPKey.generate()
    url = issuer.endpoint("token")
    answer = post_with_proof(
        url, {"grant_type": "client_credentials"}, key.proof("POST", url), service_auth(issuer)
    )
    assert answer.status_code == 400 and answer.json()["error"] == "use_dpop_nonce", answer.text
    return answer.headers["DPoP-Nonce"]


def service_auth(issuer) -> tuple[str, str]:
    return issuer.settings.service_client_id, issuer.settings.service_client_secret


def dpop_token_request(issuer, key: DPoPKey, data: dict, auth=None) -> requests.Response:
    """A token request with a proof, retried once with the nonce the issuer asks for (RFC 9449 §8)."""
    url = issuer.endpoint("token")
    answer = post_with_proof(url, data, key.proof("POST", url), auth)
    if answer.status_code == 400 and answer.json().get("error") == "use_dpop_nonce":
        answer = post_with_proof(url, data, key.proof("POST", url, nonce=answer.headers["DPoP-Nonce"]), auth)
    return answer


def sign_in_for_code(issuer, client: str = "spa") -> dict:
    """Sign in at the issuer for ``client`` (spa, native, web); the code is not redeemed yet."""
    s = issuer.settings
    client_id = {"web": s.web_client_id, "spa": s.spa_client_id, "native": s.native_client_id}[client]
    redirect_uri = {"web": s.web_redirect_uri, "spa": s.spa_redirect_uri, "native": s.native_redirect_uri()}[
        client
    ]
    verifier, challenge = pkce_pair()
    url = issuer.authorize_url(
        client_id, redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    params = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )
    assert "code" in params, params
    data = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if client == "web":
        return {"data": data, "auth": (s.web_client_id, s.web_client_secret)}
    return {"data": {**data, "client_id": client_id}, "auth": None}


def refresh_request(grant: dict, refresh_token: str) -> dict:
    """The refresh request's form for the client of ``grant`` (from :func:`sign_in_for_code`)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if "client_id" in grant["data"]:
        data["client_id"] = grant["data"]["client_id"]
    return data
