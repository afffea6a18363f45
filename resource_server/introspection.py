"""Validation by introspection (RFC 7662): the issuer says whether a token is active.

The token may be opaque; we ask the issuer's introspection endpoint, authenticated
as the resource server's own client.  Revocation takes effect at once (after our
short cache), at the cost of one HTTP call per new token.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any, Mapping

from common.client import Client
from common.config import Settings
from common.introspection import introspect
from common.issuer import Issuer
from common.jwks import InvalidToken, check_registered_claims

from .access_token import (
    MAX_TOKEN_LENGTH,
    AccessToken,
    client_id_from,
    key_binding_from,
    scopes_from,
    subject_from,
)
from .errors import invalid_token

#: Introspection ``token_type`` values that mean "an access token"; ``DPoP``
#: is what an issuer says of a DPoP-bound one (RFC 9449 §6.2).
_ACCESS_TOKEN_TYPE_NAMES = {"bearer", "dpop", "access_token", "urn:ietf:params:oauth:token-type:access_token"}


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
        if str(token_type).lower() == "dpop" and "cnf" not in answer:
            # A DPoP token whose key the answer does not name cannot be checked (RFC 9449 §6.2).
            raise invalid_token("The issuer says this is a DPoP token but names no key (cnf.jkt).")
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
            sub=subject_from(answer),
            client_id=client_id_from(answer),
            scopes=scopes_from(answer),
            claims=dict(answer),
            expires_at=float(exp) if isinstance(exp, (int, float)) else None,
            # RFC 9449 §6.2: the answer carries the key binding as cnf.jkt.
            jkt=key_binding_from(answer),
        )
