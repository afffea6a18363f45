"""The service's side of machine-to-machine OAuth: get a token, call the API.

There is no user here.  The service authenticates *itself* at the
issuer's token endpoint with the Client Credentials grant (RFC 6749 §4.4)
and asks for the custom scope the API requires (``SERVICE_SCOPE``, the
guide's ``customScope``); the issuer answers with an access token, and the
service sends it to the API as a Bearer token (RFC 6750 §2.1).

How the service proves who it is, is the one choice to make:

* ``client_secret_basic`` (RFC 6749 §2.3.1): the id and secret in an HTTP
  Basic header: the guide's example, simple, but the secret travels with
  every token request;
* ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9): a short-lived JWT
  signed with the service's private key; the issuer holds only the public
  key, so nothing that travels can be replayed for long or used to sign.
  Chosen when ``SERVICE_PRIVATE_KEY`` is set.

The protocol work (the token request, the client assertion) is done by
:class:`common.oidc.OIDCClient`; this module adds what is specific to a
service: the shared token cache, one retry after a ``401`` from the API,
and error messages that say what to fix at the issuer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import requests

from common.config import ConfigError, Settings
from common.errors import FlowError
from common.http import IssuerUnreachable, http_session
from common.inspector import shorten
from common.oidc import OIDCClient

from .token_cache import Backoff, CachedToken, TokenCache, TokenStore

#: The API route that requires ``SERVICE_SCOPE``.
API_PATH = "/api/custom"

#: What to do about each error the token endpoint may answer (RFC 6749 §5.2),
#: in the words of an issuer console.
TOKEN_ERROR_HINTS = {
    "invalid_client": (
        "The issuer did not accept the service's credentials. Check SERVICE_CLIENT_ID and "
        "SERVICE_CLIENT_SECRET, or, with SERVICE_PRIVATE_KEY, that the public key registered for the "
        "client matches (python -m service_app keygen prints it). Retrying cannot help."
    ),
    "invalid_scope": (
        "Ask only for scopes the authorization server defines and this client may have: add the custom "
        "scope (e.g. customScope) to the authorization server and allow it in an access-policy rule. "
        "`openid` is never granted with client credentials: a service has no user to identify."
    ),
    "unauthorized_client": (
        "The client is not allowed the client_credentials grant: it must be an API Services "
        "(machine-to-machine) app with Client Credentials enabled."
    ),
    "access_denied": (
        "No access policy of the authorization server matched this request (Okta: \"Policy evaluation "
        "failed for this request\"). Add a policy assigned to this client with a rule that allows the "
        "Client Credentials grant and the scope."
    ),
    "unsupported_grant_type": "The issuer does not offer the client_credentials grant to this client.",
}


#: How :meth:`common.oidc.OIDCClient._token_request` words a refusal; used to
#: recover the issuer's error code when the error carries no ``issuer_error``.
_ANSWER = re.compile(r"refused the request \((.*)\)\.?$", re.S)
_REFUSAL = re.compile(r"refused the request \(([\x21\x23-\x5B\x5D-\x7E]+?)(?::|\))")


def issuer_error_of(error: FlowError) -> str | None:
    """The issuer's own ``error`` code (RFC 6749 §5.2) behind a failed token request."""
    code = getattr(error, "issuer_error", None)
    if code:
        return code
    if error.error != "token_error":
        return error.error
    match = _REFUSAL.search(error.description)
    return match.group(1) if match else None


class ApiUnreachable(FlowError):
    """The resource server did not answer (connection error or timeout)."""

    def __init__(self, description: str):
        super().__init__("api_unreachable", description, "Check that the API (API_URL) is running and reachable.", 502)


@dataclass
class ApiResult:
    """What one call to the API came back with."""

    url: str
    status: int
    body: Any
    token: CachedToken
    token_fetched: bool = False
    retried: bool = False
    calls_with_token: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def summary(self) -> dict:
        """A small JSON-able record for the status page."""
        return {"ok": self.ok, "status": self.status, "url": self.url, "body": self.body,
                "token_fetched": self.token_fetched, "retried": self.retried}


def build_oidc_client(settings: Settings, *, http: requests.Session | None = None) -> OIDCClient:
    """The service's OAuth client: ``private_key_jwt`` with a key, else ``client_secret_basic``.

    :param settings: the validated settings (``SERVICE_*``).
    :param http: the outbound session (with its timeout).
    """
    if settings.service_private_key:
        # RFC 7523 §2.2: no secret at all; each token request carries a
        # fresh assertion signed with this key.
        try:
            return OIDCClient(settings, client_id=settings.service_client_id,
                              token_endpoint_auth_method="private_key_jwt",
                              private_key_path=settings.service_private_key, http=http)
        except (OSError, ValueError) as error:
            raise ConfigError("SERVICE_PRIVATE_KEY", f"{settings.service_private_key!r} is not a usable private key "
                              f"({type(error).__name__})", "Point it at a PEM or JWK private key, e.g. one written by "
                              "`python -m service_app keygen`") from None
    return OIDCClient(settings, client_id=settings.service_client_id,
                      client_secret=settings.service_client_secret,
                      token_endpoint_auth_method="client_secret_basic", http=http)


def auth_method(settings: Settings) -> str:
    """The client authentication method the settings select."""
    return "private_key_jwt" if settings.service_private_key else "client_secret_basic"


class ServiceClient:
    """Calls the API with a cached client-credentials token.

    Safe to share between threads: the token cache is single-flight.

    :param settings: the validated settings.
    :param store: where the token is cached (default: this process's memory).
    :param scope: the scope to ask for (default ``SERVICE_SCOPE``).
    :param http: the outbound session for the issuer and the API.
    :param backoff: the retry policy for an unreachable issuer.
    """

    def __init__(self, settings: Settings, *, store: TokenStore | None = None, scope: str | None = None,
                 http: requests.Session | None = None, backoff: Backoff | None = None):
        self.settings = settings
        self.scope = scope or settings.service_scope
        self.http = http or http_session(settings)
        self.oidc = build_oidc_client(settings, http=self.http)
        self.cache = TokenCache(self.request_token, store=store, backoff=backoff)

    def request_token(self, log=None):
        """Client Credentials token request (RFC 6749 §4.4.2) for ``self.scope``.

        Called by the token cache only: one request per token lifetime.
        The issuer's refusal becomes a :class:`FlowError` that names its
        answer and says what to change at the issuer.
        """
        try:
            token = self.oidc.client_credentials(self.scope, log=log)
        except IssuerUnreachable:
            raise  # the cache's back-off decides whether to retry
        except FlowError as error:
            code = issuer_error_of(error)
            if code not in TOKEN_ERROR_HINTS:
                raise
            # Name the issuer's answer (invalid_client, invalid_scope ...) as
            # the error, and say what to change at the issuer.
            answer = _ANSWER.search(error.description)
            raise FlowError(code, f"The issuer refused the token request: {answer.group(1) if answer else error.description}",
                            TOKEN_ERROR_HINTS[code], 400) from None
        if log is not None:
            log.add_jwt(token.access_token, [], title="The access token (decoded for display)", explanation=(
                "To the service the access token is opaque: it only sends it on. Decoded here to show what the "
                "API will check: iss, aud, exp, and the scopes in scp / scope; cid is this client. There is "
                "no user, so sub is the client too."))
        return token

    def token(self, log=None) -> tuple[CachedToken, bool]:
        """A valid access token, from the cache or (once) from the issuer."""
        cached, fetched = self.cache.get(log=log)
        if log is not None and not fetched:
            log.step(
                "Access token from the cache",
                f"The cached token is still valid for {max(0, int(cached.expires_at - self.cache.clock()))} s, "
                "so no token request is needed: a service asks the issuer once per token lifetime, not once per call.",
            )
        return cached, fetched

    def call_api(self, path: str = API_PATH, *, log=None) -> ApiResult:
        """GET ``API_URL + path`` with the access token as a Bearer token (RFC 6750 §2.1).

        A ``401`` means the API no longer accepts the token (revoked, keys
        rotated, expired early): the token is dropped, a fresh one fetched
        and the call repeated **once**; a second ``401`` is an error, not
        a loop.

        :param path: the API route (``/api/custom`` requires ``SERVICE_SCOPE``).
        :param log: a FlowLog for the steps, or None.
        :return: the API's answer (2xx).
        :raises FlowError: the API refused (``invalid_token``, ``insufficient_scope``,
            ``api_error``), the issuer refused, or :class:`ApiUnreachable`.
        """
        url = self.settings.api_url + path
        cached, fetched = self.token(log)
        response = self._get(url, cached, log)
        retried = False
        if response.status_code == 401:
            retried = True
            if log is not None:
                log.step(
                    "The API refused the token (401): one fresh token, one retry",
                    "RFC 6750 §3.1: invalid_token. The cached token is discarded (only if no other request "
                    "replaced it already) and the call is repeated once with a new token.",
                    response={"status": 401, "body": {"WWW-Authenticate": response.headers.get("WWW-Authenticate", "")}},
                )
            self.cache.invalidate(cached.token.access_token)
            cached, fetched_again = self.token(log)
            fetched = fetched or fetched_again
            response = self._get(url, cached, log)
        body = _body_of(response)
        if response.status_code == 401:
            raise FlowError(
                "invalid_token",
                f"The API refused a fresh access token too (401): {response.headers.get('WWW-Authenticate', '')}",
                "The API and the issuer disagree: check that API_AUDIENCE is the authorization server's audience "
                "and that the API trusts the same ISSUER.",
                502,
            )
        if response.status_code == 403:
            raise FlowError(
                "insufficient_scope",
                f"The API refused the token: it does not carry the scope this route requires (403). "
                f"{response.headers.get('WWW-Authenticate', '')}",
                f"Ask for the scope the API requires (SERVICE_SCOPE, now {self.scope!r}).",
                403,
            )
        if not 200 <= response.status_code < 300:
            raise FlowError("api_error", f"The API answered HTTP {response.status_code}.",
                            "Check the resource server's log.", 502)
        calls = self.cache.count_call(cached.token.access_token)
        return ApiResult(url, response.status_code, body, cached, fetched, retried, calls)

    def _get(self, url: str, cached: CachedToken, log) -> requests.Response:
        headers = {"Authorization": f"Bearer {cached.token.access_token}", "Accept": "application/json"}
        try:
            response = self.http.get(url, headers=headers)
        except requests.RequestException as error:
            raise ApiUnreachable(f"The API at {url} could not be reached ({type(error).__name__}).") from None
        if log is not None:
            log.step(
                f"Call the API: GET {url}",
                "The access token goes in the Authorization header as a Bearer token (RFC 6750 §2.1); "
                "the API validates it (signature, issuer, audience, expiry, scope) on its own.",
                request={"method": "GET", "url": url,
                         "headers": {"Authorization": f"Bearer {shorten(cached.token.access_token)}"}},
                response={"status": response.status_code, "body": _body_of(response)},
            )
        return response


def _body_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
