"""The relying party: one OpenID Connect / OAuth 2.0 client for every app.

Each app builds one :class:`OIDCClient` for its registered client and calls
the steps it needs:

* web app and native app — the Authorization Code flow with PKCE:
  :meth:`~OIDCClient.build_authorization_request` (the browser goes to the
  issuer), :meth:`~OIDCClient.handle_callback` (the browser comes back with a
  code; we check it and swap it for tokens), then :meth:`~OIDCClient.refresh_tokens`,
  :meth:`~OIDCClient.userinfo`, :meth:`~OIDCClient.revoke_token` and
  :meth:`~OIDCClient.end_session_url` for the rest of the session;
* service app — :meth:`~OIDCClient.client_credentials` (RFC 6749 §4.4);
* trusted app — :meth:`~OIDCClient.password_grant` (RFC 6749 §4.3, deprecated);
* resource server (introspection mode) — :meth:`~OIDCClient.introspect` (RFC 7662).

Authlib does the protocol encoding (the authorization URL, client
authentication at the token endpoint); this module closes the gaps its
defaults leave, once, for every app (DESIGN.md "The relying-party rules"):
``aud``/``azp``/``nonce``/``at_hash`` checks, pinned algorithms, exact
``iss`` in discovery and in the callback (RFC 9207), timeouts on every call,
cached discovery and JWKS, ``https`` except on loopback.

Every method takes ``log``, a :class:`common.inspector.FlowLog`, and records
its request, the response and the checks there (secrets redacted); a failure
is recorded before it is raised.

Failures are :class:`common.errors.FlowError` (a code, a sentence, a hint).
Two kinds a caller may want to tell apart: :class:`common.http.IssuerUnreachable`
(the network or the issuer failed: try again later) and
:class:`TokenEndpointError` (the issuer refused a token request; its
``issuer_error`` is the issuer's own RFC 6749 §5.2 code, so that
``invalid_grant`` can mean "sign in again").
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping
from urllib.parse import urlencode

import requests
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri

from .config import Settings
from .errors import FlowError
from .http import IssuerUnreachable, get_json, http_session, parse_json_response, require_secure_url, send
from .inspector import FlowLog
from .jwks import (InvalidToken, KeySet, KeysUnavailable, SAFE_ALGORITHMS, check_registered_claims, decode_jwt,
                   negotiate_algorithms, token_hash)
from .keys import client_assertion, load_private_key, public_jwk
from .pkce import code_challenge_s256, generate_code_verifier, generate_nonce, generate_state

__all__ = ["OIDCClient", "TokenSet", "TokenEndpointError", "TOKEN_ERROR_HINTS", "USER_SCOPE", "load_private_key",
           "public_jwk"]

logger = logging.getLogger(__name__)

#: What the apps that sign a user in ask for: an ID token (``openid``) with
#: the user's name and e-mail address (``profile``, ``email``; OIDC Core
#: §5.4), and a refresh token (``offline_access``; OIDC Core §11) so that the
#: app can keep calling the API after the short-lived access token expires,
#: without sending the user back to the issuer.
USER_SCOPE = "openid profile email offline_access"

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
        "cannot help."),
    "unauthorized_client": (
        "This client is not allowed this grant type at the issuer: enable the grant in the client's registration "
        "(a service needs Client Credentials, a trusted app the Resource Owner Password grant)."),
    "invalid_scope": (
        "Ask only for scopes the authorization server defines and allows this client: a custom scope must exist "
        "and be allowed by an access-policy rule; `openid` is never granted with client credentials."),
    "access_denied": (
        "No access policy of the authorization server allowed this request (Okta: \"Policy evaluation failed for "
        "this request\"): add a rule for this client that allows the grant and the scope."),
    "unsupported_grant_type": "The issuer does not offer this grant type to this client.",
}

#: ID-token claims worth keeping in a session (OpenID Connect Core 5.1);
#: the rest stays in the issuer, so the session stays small.
KEPT_CLAIMS = ("sub", "name", "preferred_username", "email", "email_verified", "given_name", "family_name",
               "auth_time", "sid", "exp", "iat")

#: RFC 6749 §5.2 / A.7: the characters an ``error`` code may have.
_ERROR_CODE = re.compile(r"^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

def _plain_text(value: Any, limit: int = 300) -> str:
    """Text from the outside world made safe to carry: no control characters, bounded.

    HTML escaping happens where it is rendered (Jinja autoescapes every page).
    """
    text = _CONTROL.sub(" ", str(value or ""))
    return text[:limit] + ("…" if len(text) > limit else "")


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
            TOKEN_ERROR_HINTS.get(issuer_error, "Start again; if it keeps failing, check the client's registration "
                                                "at the issuer."),
            status,
        )
        self.issuer_error = issuer_error
        self.issuer_description = issuer_description


def _record_failure(log: FlowLog | None, title: str, error: FlowError) -> FlowError:
    """Record ``error`` in the inspector (on the step it belongs to) and return it for raising."""
    if log is not None:
        last = log.steps[-1] if log.steps else None
        if last is not None and last.get("title") == title and "error" not in last:
            last["error"] = {"error": error.error, "description": error.description}
        else:
            log.fail(title, error)
    return error


# -- tokens -------------------------------------------------------------------


@dataclass
class TokenSet:
    """The tokens one sign-in (or one client-credentials call) produced.

    :param access_token: for the API (RFC 6749 §1.4).
    :param token_type: always ``Bearer`` here (RFC 6750).
    :param expires_at: epoch seconds when the access token expires, if known.
    :param refresh_token: for new access tokens without the user (RFC 6749 §1.5).
    :param id_token: the ID token (OpenID Connect Core 2), kept for ``id_token_hint`` at logout.
    :param scope: the granted scope.
    :param id_claims: the verified ID-token claims (only :data:`KEPT_CLAIMS` are stored).
    """

    access_token: str
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None
    id_claims: dict = field(default_factory=dict)

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
        )

    def expired(self, leeway: float = 30) -> bool:
        """True when the access token has expired, or will within ``leeway`` seconds."""
        return self.expires_at is not None and time.time() >= self.expires_at - leeway

    @property
    def sub(self) -> str | None:
        """The signed-in user's subject identifier, if there was an ID token."""
        return self.id_claims.get("sub")


# -- the client ----------------------------------------------------------------


class OIDCClient:
    """An OpenID Connect relying party / OAuth 2.0 client for one registered client.

    :param settings: the validated settings (issuer, timeouts, leeway).
    :param client_id: this client's id at the issuer.
    :param client_secret: for ``client_secret_basic`` / ``client_secret_post``.
    :param redirect_uri: the registered redirect URI (browser flows).
    :param token_endpoint_auth_method: how the client authenticates at the token
        endpoint (RFC 6749 §2.3, OpenID Connect Core 9): ``client_secret_basic``,
        ``client_secret_post``, ``none`` (public clients) or ``private_key_jwt``.
    :param private_key_path: PEM or JWK file, for ``private_key_jwt``.
    :param http: a session with a timeout (default: :func:`common.http.http_session`).
    :param algorithms: the local allow-list for ID-token signatures; anything
        but RS256 is used only if the issuer also advertises it.
    :param metadata_ttl: seconds the discovery document is cached.
    :param jwks_ttl: seconds the JWKS is cached.
    :param jwks_refetch_cooldown: minimum seconds between refetches for an unknown ``kid``.
    """

    def __init__(self, settings: Settings, *, client_id: str, client_secret: str | None = None,
                 redirect_uri: str | None = None, token_endpoint_auth_method: str = "client_secret_basic",
                 private_key_path: str | None = None, http: requests.Session | None = None,
                 algorithms: tuple[str, ...] = SAFE_ALGORITHMS, metadata_ttl: float = 3600,
                 jwks_ttl: float = 300, jwks_refetch_cooldown: float = 30):
        if token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post", "none", "private_key_jwt"):
            raise ValueError(f"unsupported token_endpoint_auth_method {token_endpoint_auth_method!r}")
        if token_endpoint_auth_method.startswith("client_secret") and not client_secret:
            raise ValueError(f"{token_endpoint_auth_method} needs a client_secret")
        if token_endpoint_auth_method == "private_key_jwt" and not private_key_path:
            raise ValueError("private_key_jwt needs private_key_path")
        self.settings = settings
        self.issuer = settings.issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.auth_method = token_endpoint_auth_method
        self.private_key = load_private_key(private_key_path) if private_key_path else None
        self.http = http or http_session(settings)
        self.allowed_algorithms = tuple(algorithms)
        self.metadata_ttl = metadata_ttl
        self.jwks_ttl = jwks_ttl
        self.jwks_refetch_cooldown = jwks_refetch_cooldown
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._metadata_at = 0.0
        self._keyset: KeySet | None = None
        self._keyset_source: dict | None = None  # the discovery document _keyset was made from

    # -- discovery (OpenID Connect Discovery 1.0 §4) ----------------------------

    @property
    def discovery_url(self) -> str:
        """``{issuer}/.well-known/openid-configuration`` (Discovery §4.1)."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def metadata(self, *, log: FlowLog | None = None) -> dict:
        """The issuer's discovery document, cached for ``metadata_ttl`` seconds.

        Discovery §4.3: the ``issuer`` in the document must be *exactly* the
        issuer we were configured with, or a look-alike could hand us its own
        endpoints and keys.  If a refresh fails, the cached copy is used.

        :return: the metadata dict.
        :raises FlowError: ``issuer_unreachable`` or ``issuer_misconfigured``.
        """
        with self._lock:
            fresh = self._metadata is not None and time.monotonic() - self._metadata_at < self.metadata_ttl
            if fresh:
                return self._metadata
            try:
                require_secure_url(self.issuer, "issuer identifier (ISSUER)")
                document = get_json(self.http, self.discovery_url, "discovery document")
            except FlowError as exc:
                if self._metadata is not None:
                    logger.warning("discovery refresh failed (%s); using cached metadata", exc.description)
                    return self._metadata
                raise _record_failure(log, "Discovery", exc)
            if document.get("issuer") != self.issuer:
                raise _record_failure(log, "Discovery", FlowError(
                    "issuer_misconfigured",
                    f"The discovery document names the issuer {_plain_text(document.get('issuer'), 200)!r}, "
                    f"but this app is configured for {self.issuer!r}.",
                    "Set ISSUER to exactly the 'issuer' value of the discovery document (watch for a trailing slash).",
                    502,
                ))
            self._metadata = document
            self._metadata_at = time.monotonic()
            if log is not None:
                log.step("Discovery", "We read the issuer's public configuration to learn its endpoints and keys "
                         "(OpenID Connect Discovery). Its 'issuer' matches the configured one exactly.",
                         request={"method": "GET", "url": self.discovery_url},
                         response={"status": 200, "body": {k: document[k] for k in (
                             "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri") if k in document}})
            return document

    def endpoint(self, name: str, *, required: bool = True, log: FlowLog | None = None) -> str | None:
        """An endpoint URL from discovery, checked to be https (or loopback http).

        :param name: the metadata key, e.g. ``token_endpoint``.
        :param required: raise when the issuer does not advertise it.
        :raises FlowError: ``issuer_misconfigured``.
        """
        url = self.metadata(log=log).get(name)
        if not url:
            if not required:
                return None
            raise _record_failure(log, "Discovery", FlowError(
                "issuer_misconfigured", f"The issuer does not advertise a {name}.",
                "Check the issuer's discovery document; this flow needs that endpoint.", 502))
        if not isinstance(url, str):
            raise FlowError("issuer_misconfigured", f"The issuer's {name} is not a URL.", "", 502)
        try:
            return require_secure_url(url, name)
        except FlowError as exc:
            raise _record_failure(log, "Discovery", exc)

    @property
    def keyset(self) -> KeySet:
        """The issuer's JWKS (from ``jwks_uri``), cached.

        Called for every token the resource server checks: ``jwks_uri`` is
        looked up and vetted again only when a new discovery document has
        come in, not on every call.
        """
        metadata = self.metadata()
        if self._keyset is None or self._keyset_source is not metadata:
            jwks_uri = self.endpoint("jwks_uri")
            if self._keyset is None or self._keyset.jwks_uri != jwks_uri:
                self._keyset = KeySet(jwks_uri, http=self.http, ttl=self.jwks_ttl,
                                      refetch_cooldown=self.jwks_refetch_cooldown)
            self._keyset_source = metadata
        return self._keyset

    def id_token_algorithms(self) -> tuple[str, ...]:
        """Algorithms accepted for ID tokens: local allow-list ∩ advertised (RS256 always)."""
        return negotiate_algorithms(self.metadata().get("id_token_signing_alg_values_supported"), self.allowed_algorithms)

    # -- the authorization request (RFC 6749 §4.1.1, OIDC Core 3.1.2.1, RFC 7636) --

    def build_authorization_request(self, scope: str, *, response_type: str = "code",
                                    extra: Mapping[str, str] | None = None, log: FlowLog | None = None,
                                    redirect_uri: str | None = None) -> tuple[str, dict]:
        """Build the URL the browser is sent to, with fresh ``state``, ``nonce`` and PKCE.

        :param scope: e.g. ``"openid profile email offline_access"``.
        :param response_type: ``code`` (the default and the recommendation of RFC 9700).
        :param extra: more parameters (``prompt``, ``login_hint``, ``response_mode`` ...);
            they cannot override ``state``, ``nonce`` or the PKCE challenge.
        :param redirect_uri: overrides the client's (the native app's loopback port).
        :return: ``(authorization_url, pending)``; the caller stores ``pending``
            (server-side) and hands it back to :meth:`handle_callback`, once.
        """
        redirect_uri = redirect_uri or self.redirect_uri
        if not redirect_uri:
            raise ValueError("a browser flow needs a redirect_uri")
        authorization_endpoint = self.endpoint("authorization_endpoint", log=log)
        state, nonce, verifier = generate_state(), generate_nonce(), generate_code_verifier()
        params: dict[str, str] = {k: v for k, v in (extra or {}).items()
                                  if k not in ("state", "nonce", "code_challenge", "code_challenge_method",
                                               "client_id", "redirect_uri", "response_type", "scope")}
        params["nonce"] = nonce
        if "code" in response_type.split():
            # PKCE (RFC 7636 §4.3): only the hash travels through the browser;
            # the verifier stays with us until the token request.
            params["code_challenge"] = code_challenge_s256(verifier)
            params["code_challenge_method"] = "S256"
        url = prepare_grant_uri(authorization_endpoint, self.client_id, response_type,
                                redirect_uri=redirect_uri, scope=scope, state=state, **params)
        pending = {"state": state, "nonce": nonce, "code_verifier": verifier, "redirect_uri": redirect_uri,
                   "created_at": int(time.time()), "scope": scope}
        if log is not None:
            log.step(
                "Authorization request",
                "The browser now goes to the issuer's authorization endpoint. The user signs in there, never here. "
                "'state' ties the answer to this browser session (against CSRF), 'nonce' ties the ID token to it, "
                "and 'code_challenge' is the hash of a secret (the PKCE code_verifier) that only this app knows, "
                "so a stolen authorization code is useless to anyone else.",
                request={"method": "GET", "url": authorization_endpoint, "params": {
                    "response_type": response_type, "client_id": self.client_id, "redirect_uri": redirect_uri,
                    "scope": scope, "state": state, "nonce": nonce, **{k: v for k, v in params.items() if k != "nonce"}}},
            )
        return url, pending

    # -- the callback (RFC 6749 §4.1.2, RFC 9207, OIDC Core 3.1.2.5-7) -----------

    def handle_callback(self, params: Mapping[str, str], pending: dict | None, *,
                        log: FlowLog | None = None) -> TokenSet:
        """Check the redirect back from the issuer, exchange the code, validate the ID token.

        The caller must already have removed ``pending`` from its store, so that
        a replayed callback finds nothing (state and code are single use).

        :param params: the callback's query (or form_post) parameters.
        :param pending: what :meth:`build_authorization_request` returned, or ``None``.
        :return: the validated :class:`TokenSet`.
        :raises FlowError: ``state_missing``, ``state_mismatch``, ``iss_mismatch``,
            the issuer's own error code (``access_denied`` ...), ``login_expired``,
            ``invalid_request``, ``token_error``, ``invalid_id_token``, ``issuer_unreachable``.
        """
        code = self._check_authorization_response(params, pending, log=log)
        body = self.exchange_code(code, pending["code_verifier"], redirect_uri=pending.get("redirect_uri"), log=log)
        tokens = self._token_set(body, log=log, title="Token response")
        if "openid" in str(pending.get("scope", "")).split() or tokens.id_token:
            if not tokens.id_token:
                raise _record_failure(log, "Token response", FlowError(
                    "invalid_id_token", "The issuer sent no ID token although 'openid' was requested.",
                    "Check that the client is allowed the 'openid' scope at the issuer.", 502))
            tokens.id_claims = self.validate_id_token(tokens.id_token, nonce=pending.get("nonce"),
                                                      access_token=tokens.access_token, log=log)
        return tokens

    def _check_authorization_response(self, params: Mapping[str, str], pending: dict | None, *,
                                      log: FlowLog | None = None) -> str:
        """Check that the authorization response answers the request we made; return its code.

        In this order, because each check decides whether the next may trust
        anything in the response:

        1. ``state`` (RFC 6749 §10.12) must be the one of a sign-in this
           browser started.  It comes first, before even the ``error``: an
           answer that does not belong to us is refused without repeating
           any of its text.  Otherwise anyone could link a user to our
           callback with ``?error=...&error_description=Call this number`` and
           have that sentence shown on our origin: a forged response is
           cross-site request forgery (RFC 6749 §10.12, RFC 9700 §4.7), here
           used for content spoofing.
        2. ``iss`` (RFC 9207 §2.4) must be our issuer, in error responses too.
        3. Only then is the issuer's ``error`` / ``error_description``
           (RFC 6749 §4.1.2.1) shown, as bounded plain text.
        4. The sign-in must not be older than ``LOGIN_TIMEOUT``, and carry a ``code``.

        :raises FlowError: as :meth:`handle_callback`, before any token request.
        """
        title = "Callback"
        checks: list[dict] = []
        if log is not None:
            log.step(title, "One redirect later the browser is back at our redirect URI with the issuer's answer "
                     "in the query string. Before using it we check that it answers the request we made.",
                     request={"method": "GET", "url": "(our redirect URI)", "params": {k: params.get(k) for k in params}},
                     checks=checks)

        def refuse(error: str, description: str, hint: str) -> FlowError:
            return _record_failure(log, title, FlowError(error, description, hint, 400))

        # 1. state: the answer must belong to a sign-in this browser started, and to no other.
        sent_state = params.get("state")
        if not sent_state:
            raise refuse("state_missing", "The issuer's answer carries no 'state' parameter.",
                         "Start the sign-in again from this app.")
        if not isinstance(pending, Mapping) or not pending.get("state") or not pending.get("code_verifier"):
            raise refuse("state_missing",
                         "No sign-in was in progress in this browser session (or it was already completed).",
                         "Start the sign-in again from this app; do not reuse an old callback link.")
        if not hmac.compare_digest(str(sent_state).encode(), str(pending["state"]).encode()):
            raise refuse("state_mismatch", "The answer's 'state' does not match the sign-in this browser started.",
                         "Start the sign-in again; if you opened two sign-ins at once, finish only the latest.")

        # 2. RFC 9207 §2.4: if the issuer says it sends 'iss' on the callback, it
        # must be there and be exactly our issuer; this stops a mix-up attack
        # where a code from another issuer is injected into our callback.
        metadata = self.metadata(log=log)
        sent_iss = params.get("iss")
        if metadata.get("authorization_response_iss_parameter_supported") is True and sent_iss is None:
            raise refuse("iss_mismatch", "The issuer promises an 'iss' parameter on the callback, but it is missing.",
                          "Start the sign-in again; if it keeps happening the callback is being tampered with.")
        if sent_iss is not None and sent_iss != self.issuer:
            raise refuse("iss_mismatch",
                         f"The callback came from issuer {_plain_text(sent_iss, 200)!r}, not {self.issuer!r}.",
                         "Start the sign-in again; the answer came from a different issuer than the one we asked.")

        # 3. RFC 6749 §4.1.2.1: the issuer reports refusals (the user said no,
        # the login failed) as error/error_description.  Show them, but as
        # plain text: they come from the URL (Jinja escapes them on the page).
        if params.get("error"):
            error = str(params["error"])
            error = error if _ERROR_CODE.match(error) else "authorization_error"
            description = _plain_text(params.get("error_description") or "The issuer did not grant the request.")
            raise refuse(error, f"The issuer answered: {description}",
                         "Try signing in again. If you cancelled on purpose, nothing else is needed.")

        # 4. A bounded lifetime for the pending sign-in, and a code to redeem.
        try:
            age = time.time() - float(pending.get("created_at", 0))
        except (TypeError, ValueError):
            age = float("inf")
        if not age <= self.settings.login_timeout:
            raise refuse("login_expired", f"The sign-in took longer than {self.settings.login_timeout} seconds.",
                         "Start the sign-in again.")
        code = params.get("code")
        if not code:
            raise refuse("invalid_request", "The issuer's answer carries no authorization code.",
                         "Start the sign-in again.")
        checks.append({"check": "state", "ok": True, "detail": "matches the sign-in this browser started"})
        checks.append({"check": "age", "ok": True, "detail": f"{int(age)} s old (limit {self.settings.login_timeout} s)"})
        if sent_iss is not None:
            checks.append({"check": "iss (RFC 9207)", "ok": True, "detail": "exactly the configured issuer"})
        return code

    # -- the token endpoint (RFC 6749 §3.2, §5) --------------------------------

    def _client_auth(self, params: dict, headers: dict, token_endpoint: str) -> tuple[str, dict]:
        """Add client authentication (RFC 6749 §2.3, OIDC Core 9) to a token-endpoint request.

        :return: ``(form_body, headers)``.
        """
        if self.auth_method == "private_key_jwt":
            # RFC 7523 §2.2: a short JWT signed with our private key stands in
            # for the secret; the issuer checks it with our registered public key.
            params = {**params, "client_id": self.client_id,
                      "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                      "client_assertion": client_assertion(self.private_key, self.client_id, token_endpoint)}
            return urlencode(params), headers
        # Authlib encodes client_secret_basic (Authorization header),
        # client_secret_post (form fields) and none (client_id only).
        auth = ClientAuth(self.client_id, self.client_secret, self.auth_method)
        _, headers, body = auth.prepare("POST", token_endpoint, headers, urlencode(params))
        return body, headers

    def _post_form(self, endpoint_name: str, params: dict, *, what: str, title: str, explanation: str,
                   log: FlowLog | None, error: str = "token_error", authenticate: bool = True,
                   extra_headers: Mapping[str, str] | None = None, body_required: bool = True) -> tuple[int, dict]:
        """POST a form to one of the issuer's endpoints with client authentication; record it.

        :param body_required: ``False`` where a 200 answer's body does not matter
            (revocation, RFC 7009 §2.2): then an empty or non-JSON body is ``{}``.
        :return: ``(status, json_body)``; 4xx answers are returned for the caller to judge.
        :raises IssuerUnreachable: network error, timeout, 5xx, non-JSON body.
        """
        url = self.endpoint(endpoint_name, log=log)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                   **(extra_headers or {})}
        if authenticate:
            body, headers = self._client_auth(params, headers, url)
        else:
            body = urlencode(params)
        shown = dict(_form_pairs(body))
        try:
            response = send(self.http, "POST", url, what, error="issuer_unreachable", data=body, headers=headers,
                            allow_redirects=False)
            status = response.status_code
            if 300 <= status < 400:
                raise IssuerUnreachable(f"The issuer's {what} answered with a redirect (HTTP {status}).",
                                        "Check the issuer's endpoint URLs in its discovery document.", error=error)
            try:
                data = parse_json_response(response, what, error=error, allow_error_status=True)
            except IssuerUnreachable:
                if body_required or status != 200:
                    raise
                data = {}
        except FlowError as exc:
            if log is not None:
                log.step(title, explanation, request={"method": "POST", "url": url, "headers": headers, "params": shown},
                         error={"error": exc.error, "description": exc.description})
            raise
        if log is not None:
            log.step(title, explanation, request={"method": "POST", "url": url, "headers": headers, "params": shown},
                     response={"status": status, "body": data})
        return status, data

    def _token_request(self, params: dict, *, title: str, explanation: str, log: FlowLog | None) -> dict:
        """A token-endpoint request whose success must carry a Bearer access token (RFC 6749 §5.1)."""
        status, data = self._post_form("token_endpoint", params, what="token endpoint", title=title,
                                       explanation=explanation, log=log)
        if status >= 400 or "error" in data:
            # RFC 6749 §5.2: error, error_description; pass the code on, as text.
            issuer_error = str(data.get("error", f"HTTP {status}"))
            issuer_error = issuer_error if _ERROR_CODE.match(issuer_error) else "invalid_response"
            raise _record_failure(log, title, TokenEndpointError(
                issuer_error, _plain_text(data.get("error_description") or ""),
                400 if issuer_error == "invalid_grant" else 502))
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise _record_failure(log, title, FlowError(
                "token_error", "The token endpoint answered without an access token.",
                "The issuer's answer is not a valid OAuth 2.0 token response (RFC 6749 §5.1).", 502))
        token_type = data.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            # RFC 6749 §7.1: a client must not use a token type it does not
            # understand; we only speak RFC 6750 Bearer (case-insensitive).
            raise _record_failure(log, title, FlowError(
                "token_error", f"The token endpoint issued a token of type {_plain_text(token_type, 40)!r}, not Bearer.",
                "This app only supports Bearer tokens (RFC 6750).", 502))
        return data

    def _token_set(self, data: Mapping[str, Any], *, log: FlowLog | None, title: str,
                   refresh_token: str | None = None) -> TokenSet:
        """The :class:`TokenSet` of a successful token response (RFC 6749 §5.1).

        ``refresh_token`` is kept when the response brings no new one (an
        issuer that does not rotate, RFC 6749 §6).
        """
        lifetime = _lifetime(data.get("expires_in"))
        if lifetime is None and data.get("expires_in") is not None and log is not None:
            log.step(title, f"The token response's expires_in ({_plain_text(data.get('expires_in'), 40)}) is not a "
                     f"usable lifetime (RFC 6749 §5.1: seconds; accepted up to {MAX_EXPIRES_IN} s, one year), so "
                     "the access token's expiry is treated as unknown: it is used until the API refuses it.")
        expires_at = time.time() + lifetime if lifetime is not None else None
        new_refresh = data.get("refresh_token")
        id_token = data.get("id_token")
        return TokenSet(
            access_token=data["access_token"],
            token_type="Bearer",
            expires_at=expires_at,
            refresh_token=new_refresh if isinstance(new_refresh, str) and new_refresh else refresh_token,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
        )

    def exchange_code(self, code: str, code_verifier: str, *, redirect_uri: str | None = None,
                      log: FlowLog | None = None) -> dict:
        """Swap the authorization code for tokens (RFC 6749 §4.1.3, RFC 7636 §4.5).

        The request goes straight from this app to the issuer (no browser in
        between), authenticated as the client, with the PKCE ``code_verifier``
        whose hash the issuer saw in the authorization request.

        :return: the token response (checked to have a Bearer ``access_token``).
        :raises FlowError: ``token_error`` or ``issuer_unreachable``.
        """
        params = {"grant_type": "authorization_code", "code": code,
                  "redirect_uri": redirect_uri or self.redirect_uri, "code_verifier": code_verifier}
        return self._token_request(params, title="Token request (authorization code)", log=log, explanation=(
            "Our server now talks to the issuer directly, not through the browser: it sends the one-time code, "
            "proves who it is (client authentication) and sends the PKCE code_verifier. The issuer hashes the "
            "verifier and compares it with the code_challenge of the authorization request."))

    # -- ID token validation (OIDC Core 3.1.3.7) ---------------------------------

    def validate_id_token(self, id_token: str, *, nonce: str | None, access_token: str | None = None,
                          log: FlowLog | None = None, require_at_hash: bool = False,
                          expected_sub: str | None = None) -> dict:
        """Validate an ID token as OpenID Connect Core 3.1.3.7 asks.

        Signature with the issuer's JWKS (pinned algorithms), ``iss`` exact,
        ``aud`` contains our client id, ``azp`` when there are several
        audiences (and, when present, equal to our client id), ``exp``/``iat``
        within ``Settings.clock_leeway``, ``nonce`` equal to the one we sent,
        ``at_hash`` (3.2.2.9 / 3.3.2.11) when present.

        :param id_token: the compact JWT.
        :param nonce: the nonce we sent; ``None`` when there was none (refresh).
        :param access_token: the access token issued with it, for ``at_hash``.
        :param require_at_hash: ``at_hash`` must be present (implicit ``id_token token``).
        :param expected_sub: the subject the session already has (refresh, OIDC Core 12.2).
        :return: the verified claims.
        :raises FlowError: ``invalid_id_token`` (or ``issuer_unreachable`` when keys cannot be fetched).
        """
        title = "ID token validation"
        explanation = ("The ID token tells us who signed in. We trust it only after checking the issuer's "
                       "signature and every claim below (OpenID Connect Core 3.1.3.7).")
        checks: list[dict] = []

        def reject(error: FlowError, failed_checks: list[dict]) -> FlowError:
            # The inspector shows the token and every check up to the one that failed.
            if log is not None:
                log.add_jwt(id_token, failed_checks, title=title, explanation=explanation)
                log.steps[-1]["error"] = {"error": error.error, "description": error.description}
            return error

        algorithms = self.id_token_algorithms()
        try:
            header, claims = decode_jwt(id_token, self.keyset, algorithms=algorithms)
            checks.append({"check": "signature", "ok": True,
                           "detail": f"{header['alg']} signature verified with the issuer's key {header.get('kid')!r}"})
            self._check_id_token_claims(header, claims, checks, nonce=nonce, access_token=access_token,
                                        require_at_hash=require_at_hash, expected_sub=expected_sub)
        except KeysUnavailable as exc:
            # Not the token's fault: the keys could not be fetched, so this is
            # "try again later", not "this token is forged".
            checks.append({"check": "signature", "ok": False, "detail": exc.reason})
            raise reject(IssuerUnreachable(exc.reason, "The issuer's key set (jwks_uri) is not reachable; try again."),
                         checks) from None
        except InvalidToken as exc:
            # exc.checks holds the failed check (and, from check_registered_claims, those before it).
            raise reject(FlowError(
                "invalid_id_token", f"The ID token was rejected: {exc.reason}",
                "Sign in again. If it keeps happening, compare the issuer's settings with ISSUER and the client id.",
                400), checks + [c for c in exc.checks if c not in checks]) from None
        if log is not None:
            log.add_jwt(id_token, checks, title=title, explanation=explanation)
        return claims

    def _check_id_token_claims(self, header: dict, claims: dict, checks: list[dict], *, nonce: str | None,
                               access_token: str | None, require_at_hash: bool, expected_sub: str | None) -> None:
        """The claim checks of OIDC Core 3.1.3.7 on a token whose signature is verified.

        Appends each passed check to ``checks``.

        :raises InvalidToken: at the first check that fails (carrying that check).
        """
        # 3.1.3.7 steps 2-3 and 9-10: iss exact, aud contains us, exp and iat.
        checks.extend(check_registered_claims(
            claims, issuer=self.issuer, audience=self.client_id, leeway=self.settings.clock_leeway,
            require=("iss", "sub", "aud", "exp", "iat")))
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("The ID token's subject (sub) is not a non-empty string.", check="sub")
        # Steps 4-5: with several audiences, azp must name us.
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if len(audiences) > 1 and "azp" not in claims:
            raise InvalidToken("The ID token has several audiences but no authorized party (azp).", check="azp")
        if "azp" in claims:
            if claims["azp"] != self.client_id:
                raise InvalidToken(f"The ID token was issued to {claims['azp']!r} (azp), not to this client.", check="azp")
            checks.append({"check": "azp", "ok": True, "detail": "authorized party is this client"})
        # Step 11: the nonce of this sign-in (none on a refresh, 12.2).
        if nonce is not None:
            sent = claims.get("nonce")
            if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
                raise InvalidToken("The ID token's nonce is missing or differs from the one this sign-in sent.", check="nonce")
            checks.append({"check": "nonce", "ok": True, "detail": "matches the nonce of this sign-in"})
        # 3.2.2.9 / 3.3.2.11: at_hash binds the access token to this ID token.
        if access_token is not None and ("at_hash" in claims or require_at_hash):
            if "at_hash" not in claims:
                raise InvalidToken("The ID token has no at_hash although one is required.", check="at_hash")
            expected = token_hash(access_token, header["alg"])
            # Compared as UTF-8 bytes: compare_digest refuses non-ASCII str,
            # and a hostile at_hash must be rejected, not crash the callback.
            sent_hash = claims["at_hash"]
            if not isinstance(sent_hash, str) or not hmac.compare_digest(sent_hash.encode("utf-8"), expected.encode()):
                raise InvalidToken("The ID token's at_hash does not match the access token it came with.", check="at_hash")
            checks.append({"check": "at_hash", "ok": True, "detail": "the access token belongs to this ID token"})
        # 12.2: a refreshed ID token must be about the same user.
        if expected_sub is not None and claims["sub"] != expected_sub:
            raise InvalidToken("The new ID token is for a different user (sub) than this session.", check="sub")

    # -- after sign-in --------------------------------------------------------

    def refresh_tokens(self, refresh_token: str, *, log: FlowLog | None = None,
                       expected_sub: str | None = None, previous: TokenSet | None = None) -> TokenSet:
        """Get fresh tokens with a refresh token (RFC 6749 §6, OIDC Core 12).

        With rotation (RFC 9700 §4.14.2) the issuer returns a new refresh token
        and the old one stops working; without, we keep the old one.  A new ID
        token, if any, is validated (it has no nonce, OIDC Core 12.2) and must
        be about the same user.  A refresh response need not contain an ID
        token at all (OIDC Core 12.2): then the one from ``previous`` is kept,
        since it still describes the user (and ``id_token_hint`` needs it at
        sign-out).

        :param refresh_token: the current refresh token.
        :param expected_sub: the session's subject; a new ID token must match it
            (default: ``previous.sub``).
        :param previous: the session's current tokens, whose ID token is kept
            when the response brings none.
        :return: the new :class:`TokenSet`.
        :raises FlowError: :class:`TokenEndpointError` (``issuer_error`` ``invalid_grant``
            when the token was revoked, expired or reused), ``invalid_id_token``,
            ``issuer_unreachable``.
        """
        if expected_sub is None and previous is not None:
            expected_sub = previous.sub
        data = self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token},
                                   title="Token request (refresh)", log=log, explanation=(
            "The access token is (nearly) expired, so we ask the issuer for a new one with the refresh token, "
            "without sending the user anywhere. A rotating issuer also sends a new refresh token; the old one is "
            "then dead."))
        tokens = self._token_set(data, log=log, title="Token response", refresh_token=refresh_token)
        if tokens.id_token:
            tokens.id_claims = self.validate_id_token(tokens.id_token, nonce=None, access_token=tokens.access_token,
                                                      log=log, expected_sub=expected_sub)
        elif previous is not None:
            tokens.id_token, tokens.id_claims = previous.id_token, dict(previous.id_claims)
        return tokens

    def revoke_token(self, token: str, token_type_hint: str = "refresh_token", *,
                     log: FlowLog | None = None) -> bool | str:
        """Revoke a token at the issuer (RFC 7009), best effort.

        Sign-out must finish even when the issuer is down, so failures are
        logged, recorded and returned, never raised.

        :param token: the refresh (or access) token.
        :param token_type_hint: ``refresh_token`` or ``access_token`` (RFC 7009 §2.1).
        :return: ``True`` when the issuer confirmed (RFC 7009 §2.2: HTTP 200) or
            has no revocation endpoint (the token then simply expires);
            otherwise one sentence saying why the revocation failed.
        """
        title = "Revocation"
        try:
            if not self.endpoint("revocation_endpoint", required=False, log=log):
                if log is not None:
                    log.step(title, "The issuer has no revocation endpoint, so the token simply expires.")
                return True
            status, data = self._post_form(
                "revocation_endpoint", {"token": token, "token_type_hint": token_type_hint},
                what="revocation endpoint", title=title, log=log, error="issuer_unreachable", body_required=False,
                explanation="At sign-out we tell the issuer to revoke the refresh token (RFC 7009), so that nobody "
                            "can use it any more, even if it leaked.")
        except (FlowError, requests.RequestException) as exc:
            logger.warning("token revocation failed: %s", exc)
            return getattr(exc, "description", None) or f"the revocation failed ({type(exc).__name__})"
        except Exception:  # noqa: BLE001 - best effort by contract: sign-out must go on
            logger.exception("token revocation failed unexpectedly")
            return "the revocation failed unexpectedly (see the log)"
        if status >= 400:
            logger.warning("token revocation refused: HTTP %s %s", status, data.get("error"))
            return f"the revocation endpoint answered HTTP {status}"
        return True

    def end_session_url(self, id_token_hint: str | None, post_logout_redirect_uri: str | None,
                        state: str | None, *, log: FlowLog | None = None) -> str | None:
        """The issuer's logout URL (OpenID Connect RP-Initiated Logout 1.0 §2).

        The browser is sent there so that the user's session *at the issuer*
        ends too; the issuer then redirects to ``post_logout_redirect_uri``
        (which must be registered) with ``state``.

        :return: the URL, or ``None`` when the issuer has no ``end_session_endpoint``
            (or cannot be reached: local sign-out still completes).
        """
        try:
            endpoint = self.endpoint("end_session_endpoint", required=False)
        except FlowError as exc:
            logger.warning("no end-session URL: %s", exc.description)
            return None
        if not endpoint:
            return None
        params = [("client_id", self.client_id)]
        if id_token_hint:
            params.append(("id_token_hint", id_token_hint))
        if post_logout_redirect_uri:
            params.append(("post_logout_redirect_uri", post_logout_redirect_uri))
        if state:
            params.append(("state", state))
        url = add_params_to_uri(endpoint, params)
        if log is not None:
            log.step("Sign-out at the issuer", "The browser now goes to the issuer's end-session endpoint, so the "
                     "user's session there ends too (RP-Initiated Logout). 'id_token_hint' says who is signing out; "
                     "afterwards the issuer sends the browser back to post_logout_redirect_uri with our 'state'.",
                     request={"method": "GET", "url": url, "params": dict(params)})
        return url

    def userinfo(self, access_token: str, *, expected_sub: str, log: FlowLog | None = None) -> dict:
        """Claims about the user from the UserInfo endpoint (OIDC Core 5.3).

        5.3.2: the ``sub`` there must be exactly the ID token's ``sub``,
        otherwise the answer belongs to someone else and must not be used.

        :param access_token: the user's access token (sent as a Bearer token, RFC 6750 §2.1).
        :param expected_sub: the ID token's ``sub``.
        :return: the claims.
        :raises FlowError: ``token_error`` (401: token expired or revoked),
            ``invalid_userinfo`` (sub mismatch), ``issuer_unreachable``.
        """
        title = "UserInfo request"
        url = self.endpoint("userinfo_endpoint", log=log)
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        explanation = ("We ask the issuer's UserInfo endpoint for the user's profile, presenting the access token "
                       "as a Bearer token. The answer's 'sub' must be the ID token's 'sub'.")
        try:
            response = send(self.http, "GET", url, "UserInfo endpoint", headers=headers, allow_redirects=False)
            if response.status_code in (401, 403):
                raise FlowError("token_error", f"The UserInfo endpoint refused the access token (HTTP {response.status_code}).",
                                "The access token may have expired or been revoked; sign in again.", 401)
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type == "application/jwt" and response.status_code == 200:
                # OIDC Core 5.3.2: a signed UserInfo response; verify it like a token.
                try:
                    _, claims = decode_jwt(response.text.strip(), self.keyset, algorithms=self.id_token_algorithms())
                    check_registered_claims(claims, issuer=self.issuer, audience=self.client_id,
                                            leeway=self.settings.clock_leeway, require=())
                except InvalidToken as exc:
                    raise FlowError("invalid_userinfo", f"The signed UserInfo response was rejected: {exc.reason}",
                                    "Sign in again.", 502) from None
            else:
                claims = parse_json_response(response, "UserInfo endpoint")
            if log is not None:
                log.step(title, explanation, request={"method": "GET", "url": url, "headers": headers},
                         response={"status": response.status_code, "body": claims})
            if claims.get("sub") != expected_sub:
                raise FlowError("invalid_userinfo", "The UserInfo answer is about a different user (sub) than the ID token.",
                                "Sign in again; the answer was not used.", 502)
        except FlowError as exc:
            raise _record_failure(log, title, exc)
        return claims

    # -- grants without a browser ------------------------------------------------

    def client_credentials(self, scope: str, *, log: FlowLog | None = None) -> TokenSet:
        """Get an access token for this client itself (RFC 6749 §4.4).

        No user is involved: a service authenticates as itself (secret or
        ``private_key_jwt``) and asks for its custom scope.

        :param scope: e.g. ``customScope``.
        :raises FlowError: ``token_error`` or ``issuer_unreachable``.
        """
        data = self._token_request({"grant_type": "client_credentials", "scope": scope},
                                   title="Token request (client credentials)", log=log, explanation=(
            "A service has no user: it authenticates as itself at the token endpoint and asks for the scope it "
            "needs. The access token it gets back is about the client, not a person."))
        return self._token_set(data, log=log, title="Token response")

    def password_grant(self, username: str, password: str, scope: str, *, log: FlowLog | None = None) -> TokenSet:
        """Resource Owner Password Credentials (RFC 6749 §4.3): deprecated, trusted apps only.

        The app sees the user's password, which is exactly why RFC 9700 §2.4
        says not to use this grant; it is here because the guide covers it.
        The password is never logged or recorded.

        :raises FlowError: ``token_error`` (e.g. wrong password) or ``issuer_unreachable``.
        """
        data = self._token_request({"grant_type": "password", "username": username, "password": password,
                                    "scope": scope}, title="Token request (password)", log=log, explanation=(
            "The trusted app sends the user's username and password straight to the token endpoint (deprecated: "
            "the app sees the password). The password is not shown here."))
        tokens = self._token_set(data, log=log, title="Token response")
        if tokens.id_token:
            tokens.id_claims = self.validate_id_token(tokens.id_token, nonce=None, access_token=tokens.access_token, log=log)
        return tokens

    def introspect(self, token: str, token_type_hint: str | None = None, *, log: FlowLog | None = None) -> dict:
        """Ask the issuer whether a token is active (RFC 7662 §2).

        :param token: the token to check.
        :param token_type_hint: ``access_token`` or ``refresh_token``.
        :return: the introspection response; ``{"active": False}`` for any token
            the issuer does not vouch for.
        :raises FlowError: ``issuer_unreachable`` (or ``token_error`` when the
            issuer refuses our client authentication).
        """
        params = {"token": token}
        if token_type_hint:
            params["token_type_hint"] = token_type_hint
        status, data = self._post_form("introspection_endpoint", params, what="introspection endpoint",
                                       title="Token introspection", log=log, explanation=(
            "Instead of checking the token's signature ourselves, we ask the issuer whether it is active "
            "(RFC 7662)."))
        if status >= 400:
            raise _record_failure(log, "Token introspection", FlowError(
                "token_error", f"The introspection endpoint refused our request (HTTP {status}).",
                "Check the introspection client's id and secret.", 502))
        if not isinstance(data.get("active"), bool):
            raise _record_failure(log, "Token introspection", FlowError(
                "token_error", "The introspection answer has no boolean 'active' member.", "", 502))
        return data if data["active"] else {"active": False}


def _lifetime(expires_in: Any) -> float | None:
    """``expires_in`` in seconds if it is a usable lifetime, else ``None``.

    RFC 6749 §5.1 says "the lifetime in seconds"; anything but a finite
    number in (0, :data:`MAX_EXPIRES_IN`] — ``"nan"``, ``1e400``, ``-5``,
    ``true``, ``10**400`` — is not one we can compute an expiry time from.
    """
    if isinstance(expires_in, bool):
        return None
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) and 0 < seconds <= MAX_EXPIRES_IN else None


def _form_pairs(body: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(body or "", keep_blank_values=True)
