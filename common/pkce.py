"""Random values for the browser flows: PKCE (RFC 7636), ``state`` and ``nonce``.

* ``code_verifier`` / ``code_challenge`` (RFC 7636 §4.1, §4.2): the client keeps
  the verifier, sends only its SHA-256 hash in the authorization request, and
  proves possession of the verifier at the token endpoint, so a stolen
  authorization code is useless to anybody else.  Only ``S256``: ``plain``
  would send the secret itself (RFC 9700 §2.1.1).
* ``state`` (RFC 6749 §10.12): binds the callback to the browser session that
  started the sign-in (CSRF protection).
* ``nonce`` (OpenID Connect Core 3.1.2.1, 15.5.2): binds the ID token to the
  same session, so a token replayed from elsewhere is refused.

All come from :mod:`secrets` with at least 128 bits of entropy, URL-safe.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

#: RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER_MIN, _VERIFIER_MAX = 43, 128


def _b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7636 Appendix A)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_code_verifier(length: int = 64) -> str:
    """A fresh PKCE ``code_verifier`` (RFC 7636 §4.1).

    :param length: number of characters, 43 to 128.
    :return: a random string of unreserved URL characters.
    """
    if not _VERIFIER_MIN <= length <= _VERIFIER_MAX:
        raise ValueError(f"RFC 7636 §4.1: a code_verifier has 43 to 128 characters, not {length}")
    # Each base64url character carries 6 bits: ``length`` characters need
    # ``length * 6 / 8`` random bytes; generate enough and cut.
    return _b64url(secrets.token_bytes(length))[:length]


def code_challenge_s256(verifier: str) -> str:
    """The ``S256`` code challenge: ``BASE64URL(SHA256(ASCII(code_verifier)))`` (RFC 7636 §4.2).

    :param verifier: the ``code_verifier``.
    :return: the ``code_challenge`` sent in the authorization request.
    """
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def generate_state() -> str:
    """A fresh ``state`` value (RFC 6749 §10.12): 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def generate_nonce() -> str:
    """A fresh ``nonce`` (OpenID Connect Core 3.1.2.1): 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)
