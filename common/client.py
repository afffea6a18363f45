"""One registered client at one issuer: what every protocol step needs to know about "us".

A :class:`Client` is the registration (RFC 7591 §2 names: ``client_id``,
``token_endpoint_auth_method``, ``redirect_uri``), the
:class:`common.issuer.Issuer` it is registered at, and the flow recorder the
steps report to.  It also makes the one kind of request every back-channel
step makes: a form POST to one of the issuer's endpoints, with client
authentication (RFC 6749 §2.3, OpenID Connect Core §9).

The protocol steps themselves are functions named after the step, in the
modules of each step: :mod:`common.authorization`, :mod:`common.tokens`,
:mod:`common.id_token`, :mod:`common.userinfo`, :mod:`common.logout`,
:mod:`common.introspection`.  Each takes the client as its first argument.
"""

from __future__ import annotations

import copy
from typing import Mapping
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.auth import ClientAuth

from .config import Settings
from .dpop import DPoPKey, asks_for_nonce
from .dpop_client import NONCES, PROOF_ENDPOINTS, proof_display
from .errors import FlowError
from .http import IssuerUnreachable, parse_json_response, send
from .issuer import Issuer
from .keys import client_assertion, load_private_key
from .recorder import NULL_RECORDER, FlowRecorder

#: How a client may authenticate at the token endpoint (RFC 7591 §2, OIDC Core §9).
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none", "private_key_jwt")

#: RFC 7523 §2.2: the ``client_assertion_type`` of ``private_key_jwt``.
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Client:
    """An OAuth 2.0 client / OpenID Connect relying party registered at ``issuer``.

    :param issuer: the issuer, shared with every other client of this process.
    :param client_id: this client's id at the issuer.
    :param client_secret: for ``client_secret_basic`` / ``client_secret_post``.
    :param redirect_uri: the registered redirect URI (browser flows).
    :param token_endpoint_auth_method: ``client_secret_basic``, ``client_secret_post``,
        ``none`` (public clients) or ``private_key_jwt``.
    :param private_key_path: PEM or JWK file, for ``private_key_jwt``.
    :param recorder: where the steps are narrated (default: nowhere).
    """

    def __init__(
        self,
        issuer: Issuer,
        *,
        client_id: str,
        client_secret: str | None = None,
        redirect_uri: str | None = None,
        token_endpoint_auth_method: str = "client_secret_basic",
        private_key_path: str | None = None,
        recorder: FlowRecorder = NULL_RECORDER,
    ):
        if token_endpoint_auth_method not in AUTH_METHODS:
            raise ValueError(f"unsupported token_endpoint_auth_method {token_endpoint_auth_method!r}")
        if token_endpoint_auth_method.startswith("client_secret") and not client_secret:
            raise ValueError(f"{token_endpoint_auth_method} needs a client_secret")
        if token_endpoint_auth_method == "private_key_jwt" and not private_key_path:
            raise ValueError("private_key_jwt needs private_key_path")
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.auth_method = token_endpoint_auth_method
        self.private_key = load_private_key(private_key_path) if private_key_path else None
        self.recorder = recorder
        #: The DPoP key of the sign-in (or process) this client acts for (RFC 9449 §2); ``None``: Bearer.
        self.dpop_key: DPoPKey | None = None

    @property
    def settings(self) -> Settings:
        """The issuer's settings (clock leeway, sign-in timeout)."""
        return self.issuer.settings

    @property
    def http(self):
        """The outbound HTTP session (the issuer's, with its timeout)."""
        return self.issuer.http

    def with_recorder(self, recorder: FlowRecorder) -> "Client":
        """This client, narrating to ``recorder``: one per request or command, sharing the issuer's caches."""
        bound = copy.copy(self)
        bound.recorder = recorder
        return bound

    def with_dpop_key(self, key: DPoPKey | None) -> "Client":
        """This client, proving possession of ``key`` on its token and revocation requests (RFC 9449 §5).

        One key per user session (web app, BFF), per stored sign-in (native
        app) or per process (service); ``None`` sends no proof.
        """
        bound = copy.copy(self)
        bound.dpop_key = key
        return bound

    def endpoint(self, name: str, *, required: bool = True) -> str | None:
        """The issuer's endpoint ``name`` (see :meth:`common.issuer.Issuer.endpoint`)."""
        return self.issuer.endpoint(name, required=required, recorder=self.recorder)

    def metadata(self) -> dict:
        """The issuer's discovery document (see :meth:`common.issuer.Issuer.metadata`)."""
        return self.issuer.metadata(self.recorder)

    # -- the back channel (RFC 6749 §3.2) ------------------------------------------

    def authenticate(self, params: dict, headers: dict, endpoint_url: str) -> tuple[str, dict]:
        """Add client authentication (RFC 6749 §2.3, OIDC Core §9) to a request to ``endpoint_url``.

        :return: ``(form_body, headers)``.
        """
        if self.auth_method == "private_key_jwt":
            # RFC 7523 §2.2: a short JWT signed with our private key stands in
            # for the secret; the issuer checks it with our registered public key.
            params = {
                **params,
                "client_id": self.client_id,
                "client_assertion_type": JWT_BEARER_ASSERTION,
                "client_assertion": client_assertion(self.private_key, self.client_id, endpoint_url),
            }
            return urlencode(params), headers
        # Authlib encodes client_secret_basic (Authorization header),
        # client_secret_post (form fields) and none (client_id only).
        auth = ClientAuth(self.client_id, self.client_secret, self.auth_method)
        _, headers, body = auth.prepare("POST", endpoint_url, headers, urlencode(params))
        return body, headers

    def post_form(
        self,
        endpoint_name: str,
        params: dict,
        *,
        what: str,
        step: str,
        error: str = "token_error",
        extra_headers: Mapping[str, str] | None = None,
        body_required: bool = True,
    ) -> tuple[int, dict]:
        """POST an authenticated form to one of the issuer's endpoints, and narrate it as ``step``.

        When this client holds a DPoP key (:meth:`with_dpop_key`), a request to the
        token or revocation endpoint carries a proof of it (RFC 9449 §5), and an
        answer ``400 use_dpop_nonce`` is met by one retry with the issuer's nonce (§8).

        :param what: the endpoint's name in messages ("token endpoint").
        :param body_required: ``False`` where a 200 answer's body does not matter
            (revocation, RFC 7009 §2.2): then an empty or non-JSON body is ``{}``.
        :return: ``(status, json_body)``; 4xx answers are returned for the caller to judge.
        :raises IssuerUnreachable: network error, timeout, 5xx, redirect, non-JSON body.
        """
        url = self.endpoint(endpoint_name)
        key = self.dpop_key if endpoint_name in PROOF_ENDPOINTS else None
        for attempt in (1, 2):
            request, status, data, answer_headers = self._send_form(
                url,
                params,
                extra_headers,
                key,
                step=step,
                what=what,
                error=error,
                body_required=body_required,
            )
            if key is None:
                break
            # RFC 9449 §8.2: a server may send a new nonce with any answer; keep the latest.
            NONCES.remember(url, answer_headers)
            if attempt == 2 or not asks_for_nonce(status, answer_headers, data):
                break
            # RFC 9449 §8: "use_dpop_nonce" is not a refusal: the issuer wants its
            # nonce in the proof.  One retry with a fresh proof (and, for
            # private_key_jwt, a fresh client assertion: its jti is single use).
            # (Its proof is not shown: the retry's, below, is the same but for jti and nonce.)
            without_proof = {k: v for k, v in request.items() if k != "proof"}
            self.recorder.step(
                "dpop.nonce_requested", request=without_proof, response={"status": status, "body": data}
            )
        self.recorder.step(step, request=request, response={"status": status, "body": data})
        return status, data

    def _send_form(
        self,
        url: str,
        params: dict,
        extra_headers: Mapping[str, str] | None,
        key: DPoPKey | None,
        *,
        step: str,
        what: str,
        error: str,
        body_required: bool,
    ) -> tuple[dict, int, dict, Mapping[str, str]]:
        """One authenticated form POST (with a DPoP proof when ``key``); the record of what was sent too."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            **(extra_headers or {}),
        }
        if key is not None:
            # RFC 9449 §4.1: the proof names this request (POST to this URL)
            # and carries the issuer's nonce once it has sent one (§8).
            headers["DPoP"] = key.proof("POST", url, nonce=NONCES.get(url))
        body, headers = self.authenticate(params, headers, url)
        request = {
            "method": "POST",
            "url": url,
            "headers": headers,
            "params": dict(parse_qsl(body, keep_blank_values=True)),
        }
        if key is not None:
            request["proof"] = proof_display(headers["DPoP"], "POST", url)
        try:
            status, data, answer_headers = self._exchange(
                url, body, headers, what=what, error=error, body_required=body_required
            )
        except FlowError as exc:
            self.recorder.step(step, request=request, error=exc)
            raise
        return request, status, data, answer_headers

    def _exchange(
        self, url: str, body: str, headers: dict, *, what: str, error: str, body_required: bool
    ) -> tuple[int, dict, Mapping[str, str]]:
        """Send the form; decode the answer (never following a redirect: RFC 6749 §3.2 has none)."""
        response = send(
            self.http,
            "POST",
            url,
            what,
            error="issuer_unreachable",
            data=body,
            headers=headers,
            allow_redirects=False,
        )
        status = response.status_code
        if 300 <= status < 400:
            raise IssuerUnreachable(
                f"The issuer's {what} answered with a redirect (HTTP {status}).",
                "Check the issuer's endpoint URLs in its discovery document.",
                error=error,
            )
        try:
            return (
                status,
                parse_json_response(response, what, error=error, allow_error_status=True),
                response.headers,
            )
        except IssuerUnreachable:
            if body_required or status != 200:
                raise
            return status, {}, response.headers
