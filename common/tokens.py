"""The token endpoint (RFC 6749 §3.2, §5): every grant that ends with a :class:`TokenSet`.

* :func:`exchange_code`: the authorization code of a browser sign-in (RFC 6749 §4.1.3, RFC 7636 §4.5);
* :func:`refresh_tokens`: a refresh token (RFC 6749 §6, OpenID Connect Core §12);
* :func:`client_credentials`: a service, for itself (RFC 6749 §4.4);
* :func:`password_grant`: a trusted app with the user's password (RFC 6749 §4.3, deprecated);
* :func:`device_code_grant`: one poll of the device authorization grant (RFC 8628 §3.4), which
  :func:`common.device.poll_for_tokens` repeats.

Each request is authenticated as the :class:`common.client.Client` is
registered.  A refusal is a :class:`TokenEndpointError`, whose
``issuer_error`` is the issuer's own RFC 6749 §5.2 code, so that a caller
can tell ``invalid_grant`` ("sign in again") from the rest.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .client import Client
from .dpop import TOKEN_TYPE
from .dpop_client import dpop_mode, key_of, pending_dpop_key
from .errors import FlowError
from .id_token import validate_id_token
from .untrusted import error_code, plain_text

#: The longest access-token lifetime (``expires_in``, RFC 6749 §5.1) taken at
#: face value: one year.  Anything longer, zero, negative or not a finite
#: number is treated as "lifetime unknown" rather than stored: a huge value
#: would overflow date formatting on every later page.
MAX_EXPIRES_IN = 365 * 24 * 3600

#: What to do about each error code the token endpoint may answer (RFC 6749 §5.2).
TOKEN_ERROR_HINTS = {
    "invalid_grant": "The code or refresh token was already used, has expired or was revoked; sign in again.",
    "invalid_client": (
        "The issuer did not accept this client's credentials: check the client id and secret (or, with "
        "private_key_jwt, that the public key registered for the client matches the private key). Retrying "
        "cannot help."
    ),
    "unauthorized_client": (
        "This client is not allowed this grant type at the issuer: enable the grant in the client's "
        "registration (a service needs Client Credentials, a trusted app the Resource Owner Password "
        "grant)."
    ),
    "invalid_scope": (
        "Ask only for scopes the authorization server defines and allows this client: a custom scope must "
        "exist and be allowed by an access-policy rule; `openid` is never granted with client credentials."
    ),
    "access_denied": (
        'No access policy of the authorization server allowed this request (Okta: "Policy evaluation failed '
        'for this request"): add a rule for this client that allows the grant and the scope.'
    ),
    "unsupported_grant_type": "The issuer does not offer this grant type to this client.",
}

#: ID-token claims worth keeping in a session (OpenID Connect Core 5.1);
#: the rest stays in the issuer, so the session stays small.
KEPT_CLAIMS = (
    "sub",
    "name",
    "preferred_username",
    "email",
    "email_verified",
    "given_name",
    "family_name",
    "auth_time",
    "sid",
    "exp",
    "iat",
)


class TokenEndpointError(FlowError):
    """The token endpoint refused a request (RFC 6749 §5.2).

    Raised as the error code ``token_error``; ``issuer_error`` is what the
    issuer said (``invalid_grant``, ``invalid_client`` ...), already checked
    to be a well-formed code (anything else becomes ``invalid_response``), and
    ``issuer_description`` its ``error_description`` as bounded plain text.

    :param issuer_error: the issuer's error code.
    :param issuer_description: the issuer's description ("" when none).
    :param status: the HTTP status of the error page.
    """

    issuer_error: str
    issuer_description: str

    def __init__(self, issuer_error: str, issuer_description: str = "", status: int = 502):
        super().__init__(
            "token_error",
            f"The token endpoint refused the request ({issuer_error}"
            f"{': ' + issuer_description if issuer_description else ''}).",
            TOKEN_ERROR_HINTS.get(
                issuer_error,
                "Start again; if it keeps failing, check the client's registration at the issuer.",
            ),
            status,
        )
        self.issuer_error = issuer_error
        self.issuer_description = issuer_description


@dataclass
class TokenSet:
    """The tokens one sign-in (or one client-credentials call) produced.

    :param access_token: for the API (RFC 6749 §1.4).
    :param token_type: ``Bearer`` (RFC 6750), or ``DPoP`` for a token bound to ``dpop_jwk`` (RFC 9449 §5).
    :param expires_at: epoch seconds when the access token expires, if known.
    :param refresh_token: for new access tokens without the user (RFC 6749 §1.5).
    :param id_token: the ID token (OpenID Connect Core 2), kept for ``id_token_hint`` at logout.
    :param scope: the granted scope.
    :param id_claims: the verified ID-token claims (only :data:`KEPT_CLAIMS` are stored).
    :param dpop_jwk: the private key (a JWK) the tokens are bound to, kept beside them wherever they
        are kept (a server-side session, the native app's 0600 file, the service's token cache) and
        nowhere else: without it a DPoP-bound token is useless, to us as to a thief.
    """

    access_token: str
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None
    id_claims: dict = field(default_factory=dict)
    dpop_jwk: dict | None = None

    @property
    def dpop_bound(self) -> bool:
        """True when the access token is DPoP-bound (RFC 9449 §5: ``token_type`` ``DPoP``)."""
        return self.token_type.lower() == TOKEN_TYPE.lower()

    def to_dict(self) -> dict:
        """A compact, JSON-able form for the session (no ``None`` values, few claims)."""
        data = asdict(self)
        data["id_claims"] = {k: v for k, v in self.id_claims.items() if k in KEPT_CLAIMS}
        if data["expires_at"] is not None:
            # Only a finite time can be stored (JSON) and formatted later.
            data["expires_at"] = int(data["expires_at"]) if math.isfinite(data["expires_at"]) else None
        return {k: v for k, v in data.items() if v not in (None, {}, "")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TokenSet":
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            access_token=data["access_token"],
            token_type=data.get("token_type", "Bearer"),
            expires_at=data.get("expires_at"),
            refresh_token=data.get("refresh_token"),
            id_token=data.get("id_token"),
            scope=data.get("scope"),
            id_claims=dict(data.get("id_claims") or {}),
            dpop_jwk=dict(data["dpop_jwk"]) if isinstance(data.get("dpop_jwk"), Mapping) else None,
        )

    def expired(self, leeway: float = 30) -> bool:
        """True when the access token has expired, or will within ``leeway`` seconds."""
        return self.expires_at is not None and time.time() >= self.expires_at - leeway

    @property
    def sub(self) -> str | None:
        """The signed-in user's subject identifier, if there was an ID token."""
        return self.id_claims.get("sub")


# -- the grants ------------------------------------------------------------------------------------


def holding_key(client: Client, tokens: TokenSet | None) -> Client:
    """``client`` proving possession of the key ``tokens`` are bound to (none for Bearer tokens).

    A refresh (RFC 9449 §5: a public client's refresh token is bound too) and
    the revocation of DPoP-bound tokens are sent with proofs of that key.
    """
    return client.with_dpop_key(key_of(tokens) if tokens is not None else None)


def exchange_code(client: Client, code: str, pending: Mapping[str, Any]) -> TokenSet:
    """Swap the authorization code of the sign-in ``pending`` for tokens (RFC 6749 §4.1.3, RFC 7636 §4.5).

    The request goes straight from this app to the issuer (no browser in
    between), authenticated as the client, with the PKCE ``code_verifier``
    whose hash the issuer saw in the authorization request, and the same
    ``redirect_uri``.  When the sign-in asked for ``openid``, the answer must
    carry an ID token (OpenID Connect Core 3.1.3.3); validating it is the next
    step, :func:`common.id_token.validate_id_token`.

    :param pending: what :func:`common.authorization.build_authorization_request` returned.
    :raises FlowError: ``token_error`` (a :class:`TokenEndpointError` when the issuer refused),
        ``invalid_id_token`` or ``issuer_unreachable``.
    """
    params = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": pending.get("redirect_uri") or client.redirect_uri,
        "code_verifier": pending["code_verifier"],
    }
    # RFC 9449 §5: the code is redeemed with a proof of the key made when this
    # sign-in started (common.dpop_client.remember_dpop_key), so the tokens are bound to it.
    client = client.with_dpop_key(pending_dpop_key(pending))
    tokens = _token_set(client, _token_request(client, params, "token_request.authorization_code"))
    if "openid" in str(pending.get("scope", "")).split() and not tokens.id_token:
        error = FlowError(
            "invalid_id_token",
            "The issuer sent no ID token although 'openid' was requested.",
            "Check that the client is allowed the 'openid' scope at the issuer.",
            502,
        )
        client.recorder.failure("token_response", error)
        raise error
    return tokens


def refresh_tokens(
    client: Client, refresh_token: str, *, expected_sub: str | None = None, previous: TokenSet | None = None
) -> TokenSet:
    """Get fresh tokens with a refresh token (RFC 6749 §6, OIDC Core 12).

    With rotation (RFC 9700 §4.14.2) the issuer returns a new refresh token
    and the old one stops working; without, we keep the old one.  A new ID
    token, if any, is validated (it has no nonce, OIDC Core 12.2) and must be
    about the same user.  A refresh response need not contain an ID token at
    all (OIDC Core 12.2): then the one from ``previous`` is kept, since it
    still describes the user (and ``id_token_hint`` needs it at sign-out).

    :param refresh_token: the current refresh token.
    :param expected_sub: the session's subject; a new ID token must match it
        (default: ``previous.sub``).
    :param previous: the session's current tokens, whose ID token is kept
        when the response brings none.
    :raises FlowError: :class:`TokenEndpointError` (``issuer_error`` ``invalid_grant``
        when the token was revoked, expired or reused), ``invalid_id_token``,
        ``issuer_unreachable``.
    """
    if expected_sub is None and previous is not None:
        expected_sub = previous.sub
    data = _token_request(
        client, {"grant_type": "refresh_token", "refresh_token": refresh_token}, "token_request.refresh"
    )
    tokens = _token_set(client, data, refresh_token=refresh_token)
    if tokens.id_token:
        tokens.id_claims = validate_id_token(
            client, tokens.id_token, nonce=None, access_token=tokens.access_token, expected_sub=expected_sub
        )
    elif previous is not None:
        tokens.id_token, tokens.id_claims = previous.id_token, dict(previous.id_claims)
    return tokens


def client_credentials(client: Client, scope: str) -> TokenSet:
    """Get an access token for this client itself (RFC 6749 §4.4).

    No user is involved: a service authenticates as itself (secret or
    ``private_key_jwt``) and asks for its custom scope.

    :param scope: e.g. ``customScope``.
    :raises FlowError: ``token_error`` or ``issuer_unreachable``.
    """
    data = _token_request(
        client, {"grant_type": "client_credentials", "scope": scope}, "token_request.client_credentials"
    )
    return _token_set(client, data)


def password_grant(client: Client, username: str, password: str, scope: str) -> TokenSet:
    """Resource Owner Password Credentials (RFC 6749 §4.3): deprecated, trusted apps only.

    The app sees the user's password, which is exactly why RFC 9700 §2.4
    says not to use this grant; it is here because the guide covers it.
    The password is never logged or recorded (the inspector redacts it).
    The ID token that comes back is the next step's to validate
    (:func:`common.id_token.validate_id_token`, with no nonce).

    :raises FlowError: ``token_error`` (e.g. wrong password) or ``issuer_unreachable``.
    """
    data = _token_request(
        client,
        {"grant_type": "password", "username": username, "password": password, "scope": scope},
        "token_request.password",
    )
    return _token_set(client, data)


#: RFC 8628 §3.4: the ``grant_type`` of the device authorization grant's token request.
DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def device_code_grant(client: Client, device_code: str) -> TokenSet:
    """One device access token request (RFC 8628 §3.4): the ``device_code``, and the client's id.

    While the user has not finished at the verification URI, the issuer
    refuses with ``authorization_pending`` or ``slow_down`` (§3.5): a
    :class:`TokenEndpointError` whose ``issuer_error`` says which;
    :func:`common.device.poll_for_tokens` decides what to do about it.

    :raises FlowError: :class:`TokenEndpointError` or ``issuer_unreachable``.
    """
    data = _token_request(
        client,
        {"grant_type": DEVICE_CODE_GRANT_TYPE, "device_code": device_code},
        "token_request.device_code",
    )
    return _token_set(client, data)


# -- the token response (RFC 6749 §5) -----------------------------------------------------------------


def _token_request(client: Client, params: dict, step: str) -> dict:
    """A token-endpoint request whose success must carry a Bearer access token (RFC 6749 §5.1)."""
    status, data = client.post_form("token_endpoint", params, what="token endpoint", step=step)
    with client.recorder.failures(step):
        if status >= 400 or "error" in data:
            # RFC 6749 §5.2: error, error_description; pass the code on, as text.
            issuer_error = error_code(data.get("error", f"HTTP {status}"), "invalid_response")
            raise TokenEndpointError(
                issuer_error,
                plain_text(data.get("error_description") or ""),
                400 if issuer_error == "invalid_grant" else 502,
            )
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise FlowError(
                "token_error",
                "The token endpoint answered without an access token.",
                "The issuer's answer is not a valid OAuth 2.0 token response (RFC 6749 §5.1).",
                502,
            )
        _check_token_type(client, data.get("token_type"))
    return data


def _check_token_type(client: Client, token_type: Any) -> None:
    """The token type must be one we can use (RFC 6749 §7.1): Bearer, or DPoP when we sent a proof.

    RFC 9449 §5: an issuer that honoured our proof answers ``token_type:
    DPoP``; one that ignored it answers ``Bearer``, and the token is simply
    not bound, which ``DPOP=on`` refuses (it asked for bound tokens only).
    """
    kind = token_type.lower() if isinstance(token_type, str) else None
    if kind == "bearer" and client.dpop_key is not None and dpop_mode(client.settings) == "on":
        raise FlowError(
            "dpop_unsupported",
            f"DPOP=on, but the issuer {client.issuer.identifier} answered the DPoP proof with a Bearer "
            "token.",
            'Enable DPoP for this client at the issuer (Okta: "Require Demonstrating Proof of Possession '
            '(DPoP) header in token requests"), or set DPOP=auto.',
            502,
        )
    if kind == "dpop" and client.dpop_key is None:
        raise FlowError(
            "token_error",
            "The token endpoint issued a DPoP-bound token, but this request carried no DPoP proof.",
            "The issuer's answer does not follow RFC 9449 §5; check its DPoP settings for this client.",
            502,
        )
    if kind not in ("bearer", "dpop"):
        # RFC 6749 §7.1: a client must not use a token type it does not
        # understand; we speak RFC 6750 Bearer and RFC 9449 DPoP (case-insensitive).
        raise FlowError(
            "token_error",
            f"The token endpoint issued a token of type {plain_text(token_type, 40)!r}, not Bearer or DPoP.",
            "This app only supports Bearer (RFC 6750) and DPoP (RFC 9449) tokens.",
            502,
        )


def _token_set(client: Client, data: Mapping[str, Any], refresh_token: str | None = None) -> TokenSet:
    """The :class:`TokenSet` of a successful token response (RFC 6749 §5.1).

    ``refresh_token`` is kept when the response brings no new one (an
    issuer that does not rotate, RFC 6749 §6).
    """
    lifetime = lifetime_of(data.get("expires_in"))
    if lifetime is None and data.get("expires_in") is not None:
        client.recorder.step(
            "token_response.unusable_lifetime",
            expires_in=plain_text(data.get("expires_in"), 40),
            max_expires_in=MAX_EXPIRES_IN,
        )
    new_refresh = data.get("refresh_token")
    id_token = data.get("id_token")
    bound = str(data.get("token_type")).lower() == "dpop"
    return TokenSet(
        access_token=data["access_token"],
        # RFC 9449 §5: bound to the key of the proof we sent; kept beside the tokens.
        token_type=TOKEN_TYPE if bound else "Bearer",
        dpop_jwk=client.dpop_key.to_jwk() if bound else None,
        expires_at=time.time() + lifetime if lifetime is not None else None,
        refresh_token=new_refresh if isinstance(new_refresh, str) and new_refresh else refresh_token,
        id_token=id_token if isinstance(id_token, str) and id_token else None,
        scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
    )


def lifetime_of(expires_in: Any) -> float | None:
    """``expires_in`` in seconds if it is a usable lifetime, else ``None``.

    RFC 6749 §5.1 says "the lifetime in seconds"; anything but a finite
    number in (0, :data:`MAX_EXPIRES_IN`] (``"nan"``, ``1e400``, ``-5``,
    ``true``, ``10**400``) is not one we can compute an expiry time from.
    """
    if isinstance(expires_in, bool):
        return None
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) and 0 < seconds <= MAX_EXPIRES_IN else None
