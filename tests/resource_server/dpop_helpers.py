"""DPoP proofs made for the tests, independently of ``common.dpop`` (the code under test).

Signing and the RFC 7638 thumbprint are done here with ``cryptography``
directly, so that a mistake shared by the maker and the checker in
``common/dpop.py`` cannot make the tests pass; and every field can be
spoiled on purpose (hostile proofs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(token: str) -> str:
    """RFC 9449 §4.2: base64url(SHA-256(token))."""
    return b64(hashlib.sha256(token.encode()).digest())


class ProofKey:
    """A P-256 key pair that signs DPoP proofs (ES256) with any header and claims."""

    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private.public_key().public_numbers()
        self.public_jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
        self.private_jwk = {
            **self.public_jwk,
            "d": b64(self.private.private_numbers().private_value.to_bytes(32, "big")),
        }

    @property
    def thumbprint(self) -> str:
        """RFC 7638 §3: SHA-256 of the required members in lexicographic order, no whitespace."""
        members = {name: self.public_jwk[name] for name in ("crv", "kty", "x", "y")}
        return b64(hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest())

    def sign(self, header: dict, claims: dict) -> str:
        """A compact JWS of ``header`` and ``claims``, ES256 (r || s, RFC 7518 §3.4)."""
        signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        der = self.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def header(self, **overrides) -> dict:
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk}
        header.update(overrides)
        return {k: v for k, v in header.items() if v is not None}

    def claims(self, method: str, url: str, token: str | None, **overrides) -> dict:
        claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            claims["ath"] = ath(token)
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def proof(self, method: str, url: str, token: str | None, *, header: dict | None = None, **claims) -> str:
        """A proof for ``method url`` with ``token``; ``header``/``claims`` override (``None`` removes)."""
        return self.sign(self.header(**(header or {})), self.claims(method, url, token, **claims))


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A compact JWS with arbitrary signature bytes (``alg: none`` and friends)."""
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode()) + "." + b64(signature)


def hs256(header: dict, claims: dict, secret: bytes) -> str:
    """A proof "signed" with HMAC, which a proof must never be (RFC 9449 §4.2)."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def challenges(response: requests.Response) -> list[tuple[str, dict[str, str]]]:
    """Each ``WWW-Authenticate`` header of ``response`` as (scheme, parameters), in order."""
    found = []
    for value in response.raw.headers.getlist("WWW-Authenticate"):
        scheme, _, rest = value.partition(" ")
        found.append((scheme, dict(re.findall(r'(\w+)="([^"]*)"', rest))))
    return found


def dpop_get(api_url: str, token: str, proof: str | None, path: str = "/api/messages", **kw):
    """``GET`` with ``Authorization: DPoP`` and the proof (none when ``proof`` is ``None``)."""
    headers = {"Authorization": f"DPoP {token}", **kw.pop("headers", {})}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.get(api_url + path, headers=headers, timeout=10, **kw)
