"""Client authentication beyond Authlib's built-ins: ``private_key_jwt``, unreadable and mixed credentials.

Authlib authenticates ``client_secret_basic``, ``client_secret_post`` and
``none`` itself (RFC 6749 §2.3.1, OpenID Connect Core 9); this module adds
the signed client assertion of RFC 7523 §2.2, refuses, with a proper
``invalid_client``, a Basic header Authlib could not even decode, and
refuses with ``invalid_request`` a request that carries more than one
client authentication (RFC 6749 §2.3), which Authlib would try one after
the other until one of them passed.
"""

from __future__ import annotations

import base64
import binascii
import time

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import request
from joserfc.jwk import import_key

from .errors import invalid_client_credentials, oauth_error
from .state import state


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt``: the client signs a short JWT with its own key.

    The assertion's ``aud`` must be this issuer's token endpoint (or the
    issuer), it must be short-lived, and each ``jti`` is accepted once
    (RFC 7523 §3 items 4-7).
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    #: The longest an assertion may live (``exp`` ahead of now, ``iat``
    #: behind it), in seconds.  The ``jti`` of every accepted assertion is
    #: remembered until its ``exp``; without this bound an assertion valid
    #: for a month would outlive that memory and could be replayed.
    MAX_LIFETIME = 300

    def get_audiences(self):
        # RFC 9126 §2: the PAR endpoint's URL is an accepted audience too.
        return [state().endpoint("token"), state().settings.issuer, state().endpoint("par")]

    def resolve_client_public_key(self, client):
        if not client.public_jwk:
            raise InvalidClientError(description="This client has no registered public key.")
        return import_key(client.public_jwk)

    def verify_claims(self, claims):
        """Refuse long-lived assertions before the usual checks (RFC 7523 §3).

        Item 4 requires ``exp``, and item 5 lets the server refuse one
        "unreasonably far in the future"; item 6 lets it refuse an ``iat``
        "unreasonably far in the past".  Both are bounded to
        :attr:`MAX_LIFETIME` (plus clock-skew leeway), and ``iat`` is
        required so that the assertion's age is known.  Then Authlib checks
        ``iss``/``sub``/``aud``/``exp`` and calls :meth:`validate_jti`.
        """
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (exp, iat)):
            raise InvalidClientError(description="The client assertion needs numeric 'iat' and 'exp' claims.")
        if exp > now + self.MAX_LIFETIME + self.leeway:
            raise InvalidClientError(
                description=f"The client assertion expires too far ahead: 'exp' may be at most "
                f"{self.MAX_LIFETIME} s away."
            )
        if iat > now + self.leeway:
            raise InvalidClientError(description="The client assertion was issued in the future ('iat').")
        if iat < now - self.MAX_LIFETIME - self.leeway:
            raise InvalidClientError(
                description=f"The client assertion is too old: 'iat' may be at most {self.MAX_LIFETIME} s "
                "ago."
            )
        super().verify_claims(claims)

    def validate_jti(self, claims, jti):
        """Accept each assertion ``jti`` once (RFC 7523 §3 item 7).

        It is remembered "for the length of time for which the JWT would be
        considered valid based on the applicable exp instant": until
        ``exp`` plus the leeway, which :meth:`verify_claims` has bounded.
        """
        ttl = int(claims["exp"] - time.time()) + self.leeway + 1
        return state().store.first_use("assertion_jti", f"{claims['sub']}:{jti}", ttl)


def refuse_unreadable_client_credentials():
    """Answer ``invalid_client`` for an Authorization header that is not even Basic-decodable.

    Authlib would stumble over bytes that are not UTF-8; a client should
    learn what is wrong from a proper RFC 6749 §5.2 error instead.  Runs
    before every request to the protocol endpoints; then
    :func:`refuse_mixed_client_authentication` runs on the endpoints that
    authenticate clients.
    """
    header = request.headers.get("Authorization", "")
    if " " in header and len(header.split(None, 1)) < 2:
        # A space but nothing after the scheme once Unicode whitespace
        # (NBSP, NEL: Latin-1 octets a client can send) is split off:
        # Authlib's extract_basic_authorization unpacks two parts and
        # raised, a 500 found by tests/security/test_fuzz.py.
        return invalid_client_credentials("The Authorization header is malformed.")
    if _is_basic(header):
        try:
            base64.b64decode(header.split(None, 1)[1].strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return invalid_client_credentials("The Basic credentials are not valid base64 of UTF-8 text.")
    return refuse_mixed_client_authentication()


#: The views that authenticate the client: the token endpoint (RFC 6749
#: §3.2.1), revocation (RFC 7009 §2.1), introspection (RFC 7662 §2.1),
#: pushed authorization requests (RFC 9126 §2.1) and the device
#: authorization endpoint (RFC 8628 §3.1, dev_issuer/device.py).
CLIENT_AUTHENTICATING_ENDPOINTS = frozenset(
    {"oauth.token", "oauth.revoke", "oauth.introspect", "par.push", "device_protocol.device_authorize"}
)


def _is_basic(header: str) -> bool:
    """Whether an ``Authorization`` header uses the Basic scheme (RFC 7617), however it is spaced.

    The scheme is split off at any whitespace, as Authlib does (a tab
    counts), so no spelling is tried by Authlib but missed here.
    """
    parts = header.split(None, 1)
    return bool(parts) and parts[0].lower() == "basic"


def client_authentications(req) -> list[str]:
    """The client authentication methods a request carries, by their RFC 7591 §2 names."""
    header = req.headers.get("Authorization", "")
    present = {
        "client_secret_basic": _is_basic(header),
        "client_secret_post": "client_secret" in req.values,
        # RFC 7521 §4.2 / RFC 7523 §2.2: the assertion and its type travel together.
        "private_key_jwt": "client_assertion" in req.values or "client_assertion_type" in req.values,
    }
    return [method for method, used in present.items() if used]


def refuse_mixed_client_authentication():
    """Answer ``400 invalid_request`` to a request with more than one client authentication.

    RFC 6749 §2.3: "The client MUST NOT use more than one authentication
    method in each request."  Authlib tries the methods in turn and takes
    the first that passes, so a wrong Basic secret plus a correct
    ``client_secret_post``, or Basic for one client with another client's
    ``client_id`` in the body (``none``), would get tokens.  Ambiguous
    credentials are a malformed request (§5.2 ``invalid_request``: "utilizes
    more than one mechanism for authenticating the client"), refused before
    any of them is tried.  A ``client_id`` in the body that repeats the Basic
    one is allowed: it names the same client and authenticates nothing.
    """
    if request.endpoint not in CLIENT_AUTHENTICATING_ENDPOINTS or request.method != "POST":
        return None
    methods = client_authentications(request)
    if len(methods) > 1:
        return oauth_error(
            "invalid_request",
            "The request uses more than one client authentication method (" + " and ".join(methods) + "); "
            "use exactly one (RFC 6749 §2.3).",
        )
    client_ids = set(request.values.getlist("client_id"))
    if len(client_ids) > 1:
        return oauth_error("invalid_request", "The request names more than one client_id.")
    if methods == ["client_secret_basic"] and client_ids:
        basic_id, _ = extract_basic_authorization(request.headers)
        if client_ids != {basic_id}:
            return oauth_error(
                "invalid_request",
                "The client_id in the request body is not the client of the Basic Authorization header; "
                "a request authenticates one client, once (RFC 6749 §2.3).",
            )
    return None
