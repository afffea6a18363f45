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
:func:`common.tokens.client_credentials` with a :class:`common.client.Client`;
this module adds what is specific to a service: the shared token cache, one
retry after a ``401`` from the API, and error messages that say what to fix
at the issuer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from common import api
from common.client import Client
from common.config import ConfigError, Settings
from common.dpop import DPoPKey
from common.dpop_client import key_of, new_dpop_key
from common.errors import FlowError
from common.http import http_session
from common.issuer import Issuer
from common.recorder import FlowRecorder
from common.tokens import TOKEN_ERROR_HINTS, TokenEndpointError, client_credentials

from .token_cache import Backoff, CachedToken, CachedTokenBackend, TokenCache

#: The API route that requires ``SERVICE_SCOPE``.
API_PATH = "/api/custom"


@dataclass
class ApiResult:
    """What one call to the API came back with."""

    url: str
    status: int
    body: Any
    token: CachedToken
    token_fetched: bool = False
    retried: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def summary(self) -> dict:
        """A small JSON-able record for the status page."""
        return {
            "ok": self.ok,
            "status": self.status,
            "url": self.url,
            "body": self.body,
            "token_fetched": self.token_fetched,
            "retried": self.retried,
        }


def build_client(settings: Settings, *, http: requests.Session | None = None) -> Client:
    """The service's OAuth client: ``private_key_jwt`` with a key, else ``client_secret_basic``.

    :param settings: the validated settings (``SERVICE_*``).
    :param http: the outbound session (with its timeout).
    """
    issuer = Issuer(settings, http=http)
    if settings.service_private_key:
        # RFC 7523 §2.2: no secret at all; each token request carries a
        # fresh assertion signed with this key.
        try:
            return Client(
                issuer,
                client_id=settings.service_client_id,
                token_endpoint_auth_method="private_key_jwt",
                private_key_path=settings.service_private_key,
            )
        except (OSError, ValueError) as error:
            raise ConfigError(
                "SERVICE_PRIVATE_KEY",
                f"{settings.service_private_key!r} is not a usable private key ({type(error).__name__})",
                "Point it at a PEM or JWK private key, e.g. one written by `python -m service_app keygen`",
            ) from None
    return Client(
        issuer,
        client_id=settings.service_client_id,
        client_secret=settings.service_client_secret,
        token_endpoint_auth_method="client_secret_basic",
    )


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

    def __init__(
        self,
        settings: Settings,
        *,
        store: CachedTokenBackend | None = None,
        scope: str | None = None,
        http: requests.Session | None = None,
        backoff: Backoff | None = None,
    ):
        self.settings = settings
        self.scope = scope or settings.service_scope
        self.http = http or http_session(settings)
        self.client = build_client(settings, http=self.http)
        self.cache = TokenCache(self.request_token, store=store, backoff=backoff)
        self._dpop_key: DPoPKey | None = None
        self._dpop_decided = False
        self._dpop_lock = threading.Lock()

    def dpop_key(self) -> DPoPKey | None:
        """This process's DPoP key (RFC 9449 §2), made at the first token request; ``None``: Bearer.

        One key per process, not per request: every token this process asks
        for is bound to it.  The token cache shares a token with every worker
        (Redis), so the key a token is bound to travels with it, in the same
        cache entry (:class:`common.tokens.TokenSet` ``dpop_jwk``): whichever
        worker uses the token signs its proofs with that token's own key.
        Made lazily, so that the app starts while the issuer is down; with
        ``DPOP=on`` and an issuer without DPoP the first token request fails
        with one clear line, and the next one asks the issuer again.
        """
        with self._dpop_lock:
            if not self._dpop_decided:
                self._dpop_key = new_dpop_key(self.client)
                self._dpop_decided = True
            return self._dpop_key

    def request_token(self, log=None):
        """Client Credentials token request (RFC 6749 §4.4.2) for ``self.scope``.

        Called by the token cache only: one request per token lifetime.
        The issuer's refusal becomes a :class:`FlowError` that names its
        answer and says what to change at the issuer.
        """
        recorder = FlowRecorder(log)
        try:
            # With DPoP, the request carries a proof of this process's key (RFC 9449 §5).
            client = self.client.with_recorder(recorder).with_dpop_key(self.dpop_key())
            token = client_credentials(client, self.scope)
        except TokenEndpointError as error:
            if error.issuer_error not in TOKEN_ERROR_HINTS:
                raise
            # The issuer's answer (invalid_client, invalid_scope ...) becomes
            # the error code, so the command line's one line names it.  Not
            # an IssuerUnreachable: the token cache never retries a refusal.
            # The code is the error's own (printed first: "error: invalid_scope: ..."), so the
            # description carries only the issuer's words, not the code a second time.
            described = f": {error.issuer_description}" if error.issuer_description else "."
            raise FlowError(
                error.issuer_error, f"The issuer refused the token request{described}", error.hint, 400
            ) from None
        recorder.token("service.access_token", token.access_token, [])
        return token

    def token(self, log=None) -> tuple[CachedToken, bool]:
        """A valid access token, from the cache or (once) from the issuer."""
        cached, fetched = self.cache.get(log=log)
        if not fetched:
            FlowRecorder(log).step(
                "service.cached_token", seconds=max(0, int(cached.expires_at - self.cache.clock()))
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
            ``api_error``), the issuer refused, or ``api_unreachable``.
        """
        url = self.settings.api_url + path
        recorder = FlowRecorder(log)
        cached, fetched = self.token(log)
        # Bearer (RFC 6750 §2.1), or DPoP with a proof of the key the token is bound to (RFC 9449 §7.1).
        answer = self._call(url, cached, recorder)
        retried = False
        if answer.status == 401:
            retried = True
            recorder.step(
                "service.api_refused_token",
                response={"status": 401, "body": {"WWW-Authenticate": answer.www_authenticate}},
            )
            self.cache.invalidate(cached.token.access_token)
            cached, fetched_again = self.token(log)
            fetched = fetched or fetched_again
            answer = self._call(url, cached, recorder)
        if answer.status == 401:
            raise FlowError(
                "invalid_token",
                f"The API refused a fresh access token too (401): {answer.www_authenticate}",
                "The API and the issuer disagree: check that API_AUDIENCE is the authorization server's "
                "audience and that the API trusts the same ISSUER.",
                502,
            )
        if answer.status == 403:
            raise FlowError(
                "insufficient_scope",
                f"The API refused the token: it does not carry the scope this route requires (403). "
                f"{answer.www_authenticate}",
                f"Ask for the scope the API requires (SERVICE_SCOPE, now {self.scope!r}).",
                403,
            )
        if not answer.ok:
            raise FlowError(
                "api_error",
                f"The API answered HTTP {answer.status}.",
                "Check the resource server's log.",
                502,
            )
        # Counted for the status page: how many calls one token served.
        self.cache.count_call(cached.token.access_token)
        return ApiResult(url, answer.status, answer.body, cached, fetched, retried)

    def _call(self, url: str, cached: CachedToken, recorder: FlowRecorder) -> api.ApiAnswer:
        """One API call with the cached token (and its DPoP key, when the token is bound)."""
        return api.call_api(
            url, cached.token.access_token, http=self.http, recorder=recorder, dpop_key=key_of(cached.token)
        )
