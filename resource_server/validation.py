"""Access-token validation: is this bearer token good for this API?

Two modes (``API_VALIDATION``):

``jwt`` (default)
    The token is a JWT signed by the issuer; we check it locally with the
    issuer's published keys (RFC 9068 §4, and Okta's "validate access tokens"
    guide): signature with a pinned algorithm, ``iss``, ``aud`` =
    ``API_AUDIENCE``, ``exp``/``nbf``/``iat``, token type.  No call to the
    issuer per request, so this is fast and keeps working while the issuer
    is briefly down; the price is that a revoked token stays valid until it
    expires.

``introspection``
    The token may be opaque; we ask the issuer's introspection endpoint
    (RFC 7662) whether it is active.  Revocation takes effect at once (after
    our short cache), at the cost of one HTTP call per new token.

Both produce an :class:`AccessToken`; the views do not care which mode
said yes.  Every "no" is a :class:`~resource_server.errors.BearerError`
that becomes an RFC 6750 answer.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from flask import current_app, g, request

from common.client import Client
from common.config import Settings
from common.errors import FlowError
from common.http import IssuerUnreachable
from common.introspection import introspect
from common.issuer import Issuer
from common.jwks import InvalidToken, KeysUnavailable, check_registered_claims, decode_jwt
from common.web import settings_of

from .errors import BearerError, insufficient_scope, invalid_request, invalid_token

#: Longest token we look at.  Real access tokens are 1-2 KiB (Okta's with
#: many groups perhaps 4 KiB); anything longer is refused before it is
#: parsed, let alone verified, so a huge header costs us nothing.
MAX_TOKEN_LENGTH = 8192

#: Signature algorithms we accept, pinned here and never taken from the
#: token or from discovery (RFC 8725 §3.1).  RS256 is what Okta signs with
#: and what RFC 9068 §2.1 requires every issuer to support.
ACCESS_TOKEN_ALGORITHMS = ("RS256",)

#: Header ``typ`` values of an access token: Okta's ``JWT`` and RFC 9068
#: §2.1's ``at+jwt`` (``application/at+jwt`` in full, RFC 7515 §4.1.9).
ACCESS_TOKEN_TYPES = {"jwt", "at+jwt", "application/at+jwt"}

#: Claims that only an ID token carries (OpenID Connect Core 2, 3.1.3.6,
#: 3.3.2.11): an access token never contains the hash of itself.
ID_TOKEN_ONLY_CLAIMS = ("at_hash", "c_hash")

#: RFC 6750 §2.1 ``b64token``: the characters a bearer token may contain.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

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
    """

    sub: str
    client_id: str | None
    scopes: tuple[str, ...]
    claims: Mapping[str, Any] = field(repr=False)
    expires_at: float | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


# -- reading the token from the request ----------------------------------------


def bearer_token_from_request() -> str:
    """The bearer token of the current request (RFC 6750 §2.1).

    Only the ``Authorization: Bearer`` header is accepted.  A token in the
    query string (§2.3) ends up in server logs, browser history and
    ``Referer`` headers (§5.3 "Don't pass bearer tokens in page URLs";
    RFC 9700 §4.3.2: clients MUST NOT); a form-body token (§2.2) has no
    place on a GET API.  Both are refused as ``invalid_request``, so that the
    mistake is visible instead of silently looking like "no token".

    :raises BearerError: no token (401, no error code), a token in the URL
        or body, or a malformed header (400), an oversized token (401).
    """
    # (The raw query string first: no query at all, the common case, costs nothing.)
    if request.query_string and "access_token" in request.args:
        raise invalid_request(
            "Access tokens are not accepted in the URL; send them in the Authorization header "
            "(RFC 6750 section 2.1)."
        )
    if (
        request.content_length
        and request.mimetype == "application/x-www-form-urlencoded"
        and "access_token" in request.form
    ):
        raise invalid_request(
            "Access tokens are not accepted in the request body; send them in the Authorization header."
        )

    header = request.headers.get("Authorization")
    if not header:
        raise BearerError(None, "This API needs an access token: send 'Authorization: Bearer <token>'.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme (Basic, DPoP, ...) is not a bearer credential; RFC
        # 6750 §3.1 treats that like "no authentication information".
        raise BearerError(None, f"This API accepts only Bearer tokens, not {scheme[:20]!r}.")
    token = token.strip()
    # The size check comes before anything else touches the token.
    if len(token) > MAX_TOKEN_LENGTH:
        raise invalid_token(
            f"The token is {len(token)} characters long; at most {MAX_TOKEN_LENGTH} are accepted."
        )
    if not token or not _B64TOKEN.fullmatch(token):
        raise invalid_request(
            "The Authorization header is malformed: expected 'Bearer' followed by one token."
        )
    return token


# -- claims shared by both modes --------------------------------------------------


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


def _subject(claims: Mapping[str, Any]) -> str:
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
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
        raise invalid_token(
            f"The token's type {str(typ)[:40]!r} is not an access token type (at+jwt or JWT)."
        )
    for name in ID_TOKEN_ONLY_CLAIMS:
        if name in claims:
            raise invalid_token(f"This is an ID token (it has {name!r}), not an access token.")
    if "nonce" in claims and "scp" not in claims and "scope" not in claims:
        raise invalid_token("This is an ID token (it has a nonce and no scopes), not an access token.")


# -- mode 1: local JWT validation ------------------------------------------------------


class JWTValidator:
    """Validates JWT access tokens locally (RFC 9068 §4).

    A client sends the same token with every call until it expires, so the
    result of the expensive part (parsing and the RSA signature check) is
    remembered for a short while, keyed by the token's 256-bit BLAKE2b hash
    (so the cache never holds a usable token).  That adds no new trust: the keys
    themselves are cached for minutes anyway, only tokens that passed every
    check are remembered, and an entry never outlives the token's ``exp``
    (plus the clock leeway the full check would allow).
    """

    #: Seconds a verified token is remembered (never past its ``exp``).
    CACHE_SECONDS = 60
    CACHE_SIZE = 4096

    def __init__(self, settings: Settings):
        self.settings = settings
        # The issuer's discovery document (with the exact ``issuer`` check,
        # OIDC Discovery §4.3) and its cached key set, shared with every
        # client code path.  Discovery happens on first use, not here: the
        # API must start even if the issuer comes up later.
        self.issuer = Issuer(settings)
        self._verified: OrderedDict[bytes, tuple[float, AccessToken]] = OrderedDict()

    def validate(self, token: str) -> AccessToken:
        """Validate a JWT access token, per RFC 9068 §4 step by step.

        :param token: the bearer token from the request.
        :return: the validated token.
        :raises BearerError: ``invalid_token`` naming the first failed check.
        """
        # BLAKE2b-256: as collision-resistant as SHA-256, and CPython's own
        # (no OpenSSL context per call), which is most of its cost here.
        key = hashlib.blake2b(token.encode(), digest_size=32).digest()
        now = time.time()
        cached = self._verified.get(key)
        if cached is not None:
            if now <= cached[0]:
                return cached[1]
            self._verified.pop(key, None)
        access_token = self._validate(token, now)
        if len(self._verified) >= self.CACHE_SIZE:
            # Forget the oldest entry, not all of them: a full clear would
            # make every client's next request pay the RSA check at once.
            try:
                self._verified.popitem(last=False)
            except KeyError:  # emptied meanwhile by another thread
                pass
        until = min(now + self.CACHE_SECONDS, access_token.expires_at + self.settings.clock_leeway)
        self._verified[key] = (until, access_token)
        return access_token

    def _validate(self, token: str, now: float) -> AccessToken:
        """The full check, without the cache."""
        settings = self.settings
        try:
            # 1. Signature with the issuer's key for this kid, algorithm pinned
            #    (none/HMAC refused, jku/x5u/jwk headers ignored, size capped).
            header, claims = decode_jwt(
                token, self.issuer.keyset, algorithms=ACCESS_TOKEN_ALGORITHMS, max_length=MAX_TOKEN_LENGTH
            )
            # 2. iss exact, aud contains API_AUDIENCE, exp/nbf/iat with leeway.
            check_registered_claims(
                claims,
                issuer=settings.issuer,
                audience=settings.api_audience,
                leeway=settings.clock_leeway,
                now=now,
                require=("iss", "aud", "exp"),
                explain=False,
            )  # nobody reads the passed checks here
        except KeysUnavailable:
            raise  # not the token's fault: answered 503 by the caller
        except InvalidToken as exc:
            raise invalid_token(exc.reason) from None
        # 3. An access token, not an ID token that happens to verify.
        refuse_id_token(header, claims)
        return AccessToken(
            sub=_subject(claims),
            client_id=client_id_from(claims),
            scopes=scopes_from(claims),
            claims=claims,
            expires_at=float(claims["exp"]),
        )


# -- mode 2: introspection (RFC 7662) ------------------------------------------------------------


#: Introspection ``token_type`` values that mean "an access token".
_ACCESS_TOKEN_TYPE_NAMES = {"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"}


class IntrospectionValidator:
    """Validates (possibly opaque) tokens by asking the issuer (RFC 7662).

    Positive answers are cached for at most :attr:`CACHE_SECONDS` and never
    past the token's expiry: RFC 7662 §4 lets a resource server cache, and
    trading up to a minute of revocation delay for one call per token per
    minute (instead of per request) is what most deployments choose.
    Negative answers are not cached, so a token that becomes active (clock
    skew at the issuer) is not refused for long.
    """

    CACHE_SECONDS = 60
    CACHE_SIZE = 10_000

    def __init__(self, settings: Settings):
        self.settings = settings
        # The resource server's own registration, for the authenticated
        # introspection call (RFC 7662 §2.1).
        self.client = Client(
            Issuer(settings),
            client_id=settings.api_introspection_client_id,
            client_secret=settings.api_introspection_client_secret,
            token_endpoint_auth_method="client_secret_basic",
        )
        self._cache: OrderedDict[bytes, tuple[float, AccessToken]] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self, token: str) -> AccessToken:
        """Validate a token by introspection, answering from the cache when we can.

        :raises BearerError: ``invalid_token`` if the issuer says inactive,
            or the answer shows the token is not for this API.
        """
        if len(token) > MAX_TOKEN_LENGTH:
            raise invalid_token(f"The token is longer than {MAX_TOKEN_LENGTH} characters.")
        # Cache by hash so that the cache never holds usable tokens.
        key = hashlib.sha256(token.encode()).digest()
        now = time.time()
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] > now:
                return cached[1]
            self._cache.pop(key, None)

        # RFC 7662 §2.1, authenticated with our client credentials (Basic).
        answer = introspect(self.client, token, "access_token")
        access_token = self._check_answer(answer, now)
        until = now + self.CACHE_SECONDS
        if access_token.expires_at is not None:
            until = min(until, access_token.expires_at)
        with self._lock:
            self._cache[key] = (until, access_token)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return access_token

    def _check_answer(self, answer: Mapping[str, Any], now: float) -> AccessToken:
        """Apply RFC 7662 §2.2 and RFC 9068's audience rule to an introspection answer."""
        settings = self.settings
        if answer.get("active") is not True:
            raise invalid_token("The issuer says this token is not active (expired, revoked, or unknown).")
        token_type = answer.get("token_type")
        if token_type is not None and str(token_type).lower() not in _ACCESS_TOKEN_TYPE_NAMES:
            raise invalid_token(f"The issuer says this is a {str(token_type)[:40]!r}, not an access token.")
        try:
            # "active" already covers expiry, but the fields it returns must
            # still say the token is for us: an active token for another API
            # is not valid here.  aud is required: without it we cannot know.
            check_registered_claims(
                answer,
                issuer=settings.issuer,
                audience=settings.api_audience,
                leeway=settings.clock_leeway,
                now=now,
                require=("aud",),
            )
        except InvalidToken as exc:
            raise invalid_token(exc.reason) from None
        exp = answer.get("exp")
        return AccessToken(
            sub=_subject(answer),
            client_id=client_id_from(answer),
            scopes=scopes_from(answer),
            claims=dict(answer),
            expires_at=float(exp) if isinstance(exp, (int, float)) else None,
        )


# -- wiring into Flask ----------------------------------------------------------------------------


def init_validation(app) -> None:
    """Create this process's validator (one per gunicorn worker) from the settings."""
    settings: Settings = app.config["SETTINGS"]
    validator_class = IntrospectionValidator if settings.api_validation == "introspection" else JWTValidator
    app.extensions["token_validator"] = validator_class(settings)


def validate_access_token(token: str) -> AccessToken:
    """Validate ``token`` with the app's configured mode.

    :raises BearerError: the token is not acceptable (RFC 6750 §3.1).
    :raises FlowError: the issuer could not be asked (503/502, not the caller's fault).
    """
    validator = current_app.extensions["token_validator"]
    try:
        return validator.validate(token)
    except KeysUnavailable as exc:
        raise FlowError(
            "temporarily_unavailable",
            exc.reason,
            "The issuer's keys could not be fetched; try again in a moment.",
            503,
        ) from None
    except IssuerUnreachable as exc:
        raise FlowError("temporarily_unavailable", exc.description, exc.hint, 503) from None


def current_token() -> AccessToken:
    """The validated token of the current request (set by :func:`require_token`)."""
    return g.access_token


def require_token(view: Callable) -> Callable:
    """Decorator: the view runs only with a valid access token for ``API_AUDIENCE``."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        g.access_token = validate_access_token(bearer_token_from_request())
        return view(*args, **kwargs)

    return wrapped


def require_scope(scope: str | Callable[[Settings], str]) -> Callable:
    """Decorator: like :func:`require_token`, and the token must grant ``scope``.

    :param scope: a space-separated list of scopes (RFC 6749 §3.3), or a
        function of the settings returning one (the custom scope is
        configuration: ``SERVICE_SCOPE``, which may name several).  Every
        scope in the list is required: the service app asks for exactly
        ``SERVICE_SCOPE``, so a token granted all of it has each one, and a
        token missing any of them was not granted what this route is for.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        @require_token
        def wrapped(*args, **kwargs):
            needed = scope(settings_of(current_app)) if callable(scope) else scope
            missing = [name for name in needed.split() if not current_token().has_scope(name)]
            if missing:
                # RFC 6750 §3.1: the token is fine, it just does not allow
                # this; 403 tells the client that a new token *with* these
                # scopes would work, unlike 401.  The challenge's ``scope``
                # attribute is the space-delimited list needed (§3).
                raise insufficient_scope(
                    " ".join(needed.split()),
                    f"This route needs the scopes {needed!r}; the token lacks {' '.join(missing)!r}.",
                )
            return view(*args, **kwargs)

        return wrapped

    return decorator
