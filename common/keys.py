"""Client key pairs for ``private_key_jwt`` (RFC 7523 §2.2, OpenID Connect Core 9).

A confidential client may authenticate at the token endpoint with a short
JWT signed by its own private key instead of sending a shared secret: the
issuer holds only the public key, so nothing reusable travels or is stored
there.  This module loads that key (PEM or JWK file), publishes its public
half (with ``kid`` = RFC 7638 thumbprint) and signs client assertions.

Used by :class:`common.client.Client` and by the service app's key
generator (:func:`generate_private_key`, :func:`private_key_pem`).
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey, import_key

#: Lifetime of a client assertion: short, so a leaked one is soon useless
#: (RFC 7523 §3 item 4 asks for an ``exp``; five minutes is the usual ceiling).
ASSERTION_LIFETIME = 120


def load_private_key(path: str | Path) -> RSAKey | ECKey:
    """Load a private key from a PEM file or a JWK (JSON) file.

    :param path: the file (``SERVICE_PRIVATE_KEY``).
    :return: a joserfc RSA or EC key that holds the private part.
    :raises ValueError: the file is not a private RSA/EC key.
    """
    data = Path(path).read_bytes()
    text = data.strip()
    if text.startswith(b"{"):
        key = import_key(json.loads(text))
    else:
        try:
            key = RSAKey.import_key(data)
        except Exception:  # noqa: BLE001 - joserfc raises several types; try EC next
            key = ECKey.import_key(data)
    if key.key_type not in ("RSA", "EC") or not key.is_private:
        raise ValueError(f"{path} does not hold a private RSA or EC key")
    return key


def signing_alg(key: RSAKey | ECKey) -> str:
    """The JWS algorithm for a key: RS256 for RSA, ES256/384/512 for EC P-256/384/521."""
    if key.key_type == "RSA":
        return "RS256"
    return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[key.as_dict()["crv"]]


def public_jwk(path_or_key: str | Path | RSAKey | ECKey) -> dict[str, Any]:
    """The public JWK to register at the issuer, with ``kid`` = its RFC 7638 thumbprint.

    :param path_or_key: the private key file, or an already loaded key.
    :return: ``{"kty", "n", "e" | "crv", "x", "y", "kid", "use": "sig", "alg"}``.
    """
    key = path_or_key if isinstance(path_or_key, (RSAKey, ECKey)) else load_private_key(path_or_key)
    jwk = key.as_dict(private=False)
    jwk.pop("kid", None)
    jwk.update(kid=key.thumbprint(), use="sig", alg=signing_alg(key))
    return jwk


def generate_private_key(kind: str = "RSA") -> RSAKey | ECKey:
    """A fresh private key: RSA 2048 (default) or EC P-256 (``kind="EC"``)."""
    if kind == "EC":
        return ECKey.generate_key("P-256", private=True)
    return RSAKey.generate_key(2048, private=True)


def private_key_pem(key: RSAKey | ECKey) -> bytes:
    """The key as an unencrypted PKCS#8 PEM (for writing a key file)."""
    return key.as_pem(private=True)


def client_assertion(
    key: RSAKey | ECKey,
    client_id: str,
    audience: str,
    *,
    lifetime: int = ASSERTION_LIFETIME,
    now: float | None = None,
) -> str:
    """A ``private_key_jwt`` client assertion (RFC 7523 §2.2 and §3, OpenID Connect Core 9).

    ``iss`` and ``sub`` are the client id, ``aud`` the token endpoint, ``jti``
    a random single-use id, ``exp`` a few minutes ahead; the header's ``kid``
    is the key's thumbprint so the issuer can pick the right registered key.

    :param key: the client's private key.
    :param client_id: our client id.
    :param audience: the token endpoint URL.
    :param lifetime: seconds until ``exp`` (at most 300).
    :return: the signed JWT.
    """
    now = int(time.time() if now is None else now)
    lifetime = max(1, min(int(lifetime), 300))
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + lifetime,
    }
    alg = signing_alg(key)
    header = {"alg": alg, "typ": "JWT", "kid": key.thumbprint()}
    return jwt.encode(header, claims, key, algorithms=[alg])
