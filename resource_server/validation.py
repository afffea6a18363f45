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
    our short cache), at the cost of one HTTP call per new token.  That
    validator is in :mod:`resource_server.introspection`.

Both produce an :class:`~resource_server.access_token.AccessToken`, read
from the claims the same way (:mod:`resource_server.access_token`); the
views do not care which mode said yes.  Every "no" is a
:class:`~resource_server.errors.BearerError` that becomes an RFC 6750 answer.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections import OrderedDict
from typing import Callable

from flask import current_app, g, request

from common.config import Settings
from common.errors import FlowError
from common.http import IssuerUnreachable
from common.issuer import Issuer
from common.jwks import InvalidToken, KeysUnavailable, check_registered_claims, decode_jwt
from common.web import settings_of

from .access_token import (
    MAX_TOKEN_LENGTH,
    AccessToken,
    client_id_from,
    key_binding_from,
    refuse_id_token,
    scopes_from,
    subject_from,
)
from .dpop import check_key_binding, init_dpop, refuse_bearer_when_required
from .errors import BearerError, insufficient_scope, invalid_request, invalid_token
from .introspection import IntrospectionValidator

#: Signature algorithms we accept, pinned here and never taken from the
#: token or from discovery (RFC 8725 §3.1).  RS256 is what Okta signs with
#: and what RFC 9068 §2.1 requires every issuer to support.
ACCESS_TOKEN_ALGORITHMS = ("RS256",)

#: RFC 6750 §2.1 ``b64token``: the characters a bearer token may contain.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# -- reading the token from the request ----------------------------------------


def token_from_request() -> tuple[str, str]:
    """The access token of the current request and its scheme: ``bearer`` or ``dpop``.

    Only the ``Authorization`` header is accepted, with the ``Bearer``
    scheme (RFC 6750 §2.1) or the ``DPoP`` scheme (RFC 9449 §7.1; which of
    the two a token needs is decided by :mod:`resource_server.dpop`).  A
    token in the query string (RFC 6750 §2.3) ends up in server logs, browser
    history and ``Referer`` headers (§5.3 "Don't pass bearer tokens in page
    URLs"; RFC 9700 §4.3.2: clients MUST NOT); a form-body token (§2.2) has
    no place on a GET API.  Both are refused as ``invalid_request``, so that
    the mistake is visible instead of silently looking like "no token".

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
    scheme = scheme.lower()  # auth schemes are case-insensitive (RFC 9110 §11.1)
    if scheme not in ("bearer", "dpop"):
        # Another scheme (Basic, ...) is no access token; RFC 6750 §3.1
        # treats that like "no authentication information".
        raise BearerError(None, f"This API accepts only Bearer and DPoP tokens, not {scheme[:20]!r}.")
    g.auth_scheme = scheme  # the challenge of this scheme comes first in a refusal
    token = token.strip()
    # The size check comes before anything else touches the token.
    if len(token) > MAX_TOKEN_LENGTH:
        raise invalid_token(
            f"The token is {len(token)} characters long; at most {MAX_TOKEN_LENGTH} are accepted."
        )
    if not token or not _B64TOKEN.fullmatch(token):
        raise invalid_request(
            "The Authorization header is malformed: expected 'Bearer' or 'DPoP' followed by one token."
        )
    return scheme, token


# -- mode 1: local JWT validation ------------------------------------------------------


class JWTValidator:
    """Validates JWT access tokens locally (RFC 9068 §4).

    A client sends the same token with every call until it expires, so the
    result of the expensive part (parsing and the RSA signature check) is
    remembered for a short while, keyed by the token's 256-bit BLAKE2b hash
    (so the cache never holds a usable token).  That adds no new trust: the keys
    themselves are cached for minutes anyway, only tokens that passed every
    check are remembered, and an entry never outlives the token's ``exp``
    (plus the clock leeway the full check would allow).  A token is kept from
    its second request on: the first is remembered by its hash alone, so a
    stream of tokens each sent once (where the cache cannot help) costs the
    worker no memory beyond the hashes.
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
        #: token hash -> (remembered until, the token from its second sighting on, else None)
        self._verified: OrderedDict[bytes, tuple[float, AccessToken | None]] = OrderedDict()

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
                if cached[1] is not None:
                    return cached[1]
            else:
                self._verified.pop(key, None)
                cached = None
        access_token = self._validate(token, now)
        until = min(now + self.CACHE_SECONDS, access_token.expires_at + self.settings.clock_leeway)
        if cached is not None:
            # Seen before, within its window: now it is kept (in the place its
            # first sighting took, so eviction stays oldest first).
            self._verified[key] = (until, access_token)
            return access_token
        if len(self._verified) >= self.CACHE_SIZE:
            # Forget the oldest entry, not all of them: a full clear would
            # make every client's next request pay the RSA check at once.
            try:
                self._verified.popitem(last=False)
            except KeyError:  # emptied meanwhile by another thread
                pass
        # A first sighting is remembered by its hash alone (admitted on the
        # second): a token sent once never makes this worker keep its claims.
        # Measured (benchmarks/token_validation.py): keeping every new token's
        # objects made each later new token allocate into memory that had gone
        # cold in the CPU caches, about 10 us per token, a fifth of the check.
        self._verified[key] = (until, None)
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
            sub=subject_from(claims),
            client_id=client_id_from(claims),
            scopes=scopes_from(claims),
            claims=claims,
            expires_at=float(claims["exp"]),
            jkt=key_binding_from(claims),
        )


# -- wiring into Flask ----------------------------------------------------------------------------


def init_validation(app) -> None:
    """Create this process's validator (one per gunicorn worker) from the settings."""
    settings: Settings = app.config["SETTINGS"]
    validator_class = IntrospectionValidator if settings.api_validation == "introspection" else JWTValidator
    app.extensions["token_validator"] = validator_class(settings)
    init_dpop(app)


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
    """Decorator: the view runs only with a valid access token for ``API_AUDIENCE``.

    A Bearer token must be unbound; a DPoP-bound one (``cnf.jkt``) must come
    with the ``DPoP`` scheme and a valid proof for this request (RFC 9449 §7).
    """

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        scheme, token = token_from_request()
        # Under API_DPOP=required a Bearer token is refused before it costs a validation.
        refuse_bearer_when_required(scheme)
        access_token = validate_access_token(token)
        # The token alone is not enough when it is bound to a key (RFC 9449 §7.1).
        check_key_binding(scheme, token, access_token)
        g.access_token = access_token
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
