"""The access token as this API sees it, and the claims both validation modes read.

Whether a token was checked locally (RFC 9068) or by asking the issuer
(RFC 7662, :mod:`resource_server.introspection`), the result is the same
:class:`AccessToken`, built from the same claims by the same readers:
``sub``, the client id (Okta's ``cid`` or RFC 9068's ``client_id``) and the
scopes (Okta's ``scp`` or RFC 9068's ``scope``).  :func:`refuse_id_token`
tells an access token from an ID token signed with the same keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import invalid_token

#: Longest token we look at.  Real access tokens are 1-2 KiB (Okta's with
#: many groups perhaps 4 KiB); anything longer is refused before it is
#: parsed, let alone verified, so a huge header costs us nothing.
MAX_TOKEN_LENGTH = 8192

#: Header ``typ`` values of an access token: Okta's ``JWT`` and RFC 9068
#: §2.1's ``at+jwt`` (``application/at+jwt`` in full, RFC 7515 §4.1.9).
ACCEPTED_TYP_VALUES = {"jwt", "at+jwt", "application/at+jwt"}

#: Claims that only an ID token carries (OpenID Connect Core 2, 3.1.3.6,
#: 3.3.2.11): an access token never contains the hash of itself.
ID_TOKEN_ONLY_CLAIMS = ("at_hash", "c_hash")

#: An RFC 7638 SHA-256 JWK thumbprint, base64url without padding (43 characters).
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")

#: RFC 6749 §3.3 scope token characters.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


@dataclass(frozen=True)
class AccessToken:
    """A validated access token, whichever way it was validated.

    :ivar sub: the subject: the user, or for client credentials the client.
    :ivar client_id: the client the token was issued to (``cid`` or ``client_id``).
    :ivar scopes: the granted scopes.
    :ivar claims: every claim (JWT mode) or the introspection answer.
    :ivar expires_at: epoch seconds, if known.
    :ivar jkt: the thumbprint of the DPoP key the token is bound to
        (``cnf.jkt``, RFC 9449 §6), or ``None`` for a bearer token.
    """

    sub: str
    client_id: str | None
    scopes: tuple[str, ...]
    claims: Mapping[str, Any] = field(repr=False)
    expires_at: float | None = None
    jkt: str | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


# -- the claims both modes read -------------------------------------------------


def scopes_from(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The granted scopes: Okta's ``scp`` array or RFC 9068 §2.2.3's ``scope`` string.

    Both spellings are accepted in both shapes (some issuers send ``scp`` as
    a space-separated string), but nothing else: a number or a list of
    objects is a malformed token, not "no scopes".
    """
    for name in ("scp", "scope"):
        if name not in claims:
            continue
        value = claims[name]
        items = value.split() if isinstance(value, str) else value
        well_formed = isinstance(items, list) and all(
            isinstance(s, str) and _SCOPE_TOKEN.fullmatch(s) for s in items
        )
        if not well_formed:
            raise invalid_token(f"The token's {name!r} claim is not a list of scopes.")
        return tuple(items)
    return ()


def client_id_from(claims: Mapping[str, Any]) -> str | None:
    """The client the token was issued to: Okta's ``cid`` or RFC 9068's ``client_id``."""
    for name in ("cid", "client_id"):
        value = claims.get(name)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise invalid_token(f"The token's {name!r} claim is not a string.")
            return value
    return None


def key_binding_from(claims: Mapping[str, Any]) -> str | None:
    """The DPoP key the token is bound to: ``cnf.jkt`` (RFC 9449 §6.1, §6.2), ``None`` if unbound.

    Read the same way from a JWT's claims and from an introspection answer.
    A ``cnf`` without ``jkt`` binds the token to something else (an mTLS
    certificate, RFC 8705 §3.1) that this API cannot check; taking such a
    token as a bearer token would silently drop its binding, so it is refused.
    """
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict):
        raise invalid_token("The token's cnf claim is not a JSON object.")
    jkt = cnf.get("jkt")
    if jkt is None:
        raise invalid_token("The token is bound (cnf) to a key this API cannot check: only cnf.jkt (DPoP).")
    if not isinstance(jkt, str) or not _THUMBPRINT.fullmatch(jkt):
        raise invalid_token("The token's cnf.jkt is not a SHA-256 JWK thumbprint (RFC 7638).")
    return jkt


def subject_from(claims: Mapping[str, Any]) -> str:
    """The token's subject (``sub``): the user, or for client credentials the client."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        # RFC 9068 §2.2 makes sub REQUIRED; Okta always sends it (for client
        # credentials it is the client id).
        raise invalid_token("The token has no subject (sub).")
    return sub


def refuse_id_token(header: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
    """Refuse an ID token presented as an access token (RFC 9068 §4, RFC 8725 §3.11).

    An ID token says *who signed in to a client*; it is not permission to
    call an API, yet it is signed by the same issuer with the same keys, so
    the signature check alone cannot tell them apart.  What works with any
    compliant issuer, in order of strength:

    1. **The audience** (checked by the caller): an ID token's ``aud`` is the
       client id (OIDC Core 2), an access token's is ``API_AUDIENCE``.  As
       long as ``API_AUDIENCE`` is not also a client id, this alone stops it,
       whatever the issuer puts in ``typ``.
    2. **The header type**: RFC 9068 tokens say ``at+jwt``; Okta's say
       ``JWT``; an ID token says ``JWT`` or nothing.  So ``typ`` can only be
       used to refuse *other* explicit types (``logout+jwt``, ``dpop+jwt``,
       ``secevent+jwt``...), and a missing ``typ`` is not proof of anything.
    3. **ID-token-only claims**, for a misconfigured ``API_AUDIENCE`` that
       equals a client id: ``at_hash``/``c_hash`` never occur in an access
       token; ``nonce`` in a token that grants no scope at all is an ID token
       too.  ``auth_time``, ``acr`` and ``amr`` are *not* used: RFC 9068 §2.2.1
       allows them in access tokens.
    """
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP_VALUES):
        raise invalid_token(
            f"The token's type {str(typ)[:40]!r} is not an access token type (at+jwt or JWT)."
        )
    for name in ID_TOKEN_ONLY_CLAIMS:
        if name in claims:
            raise invalid_token(f"This is an ID token (it has {name!r}), not an access token.")
    if "nonce" in claims and "scp" not in claims and "scope" not in claims:
        raise invalid_token("This is an ID token (it has a nonce and no scopes), not an access token.")
