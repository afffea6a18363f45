"""The issuer's protocol endpoints, at Okta's paths under the issuer.

``{issuer}/.well-known/openid-configuration``, ``{issuer}/v1/authorize``,
``/v1/token``, ``/v1/keys``, ``/v1/userinfo``, ``/v1/introspect``,
``/v1/revoke`` and ``/v1/logout``.  The protocol work is Authlib's (grants
in ``grants.py``, other endpoints in ``endpoints.py``, wired in
``server.py``); the views here add what a browser-facing issuer needs: the
sign-in hand-off, and CORS for the single-page app.  Errors are answered
by ``errors.py``.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from authlib.oidc.core.errors import LoginRequiredError, RequestNotSupportedError, RequestURINotSupportedError
from flask import Blueprint, jsonify, redirect, render_template, request, session, url_for

from common.dpop import PROOF_ALGORITHMS
from common.web import require_csrf

from . import par as pushed
from .client_auth import refuse_unreadable_client_credentials
from .dpop import refuse_unexpected_proof
from .endpoints import suspect_hint_reason
from .errors import authorization_error, logout_error, post_only, register_protocol_error_handlers
from .freshness import CHALLENGE_PARAMETER, challenge_request, take_fresh_sign_in
from .state import authorization_server, state

bp = Blueprint("oauth", __name__)

#: Endpoints a browser app on the SPA's origin calls with fetch() (the
#: README's "Trusted Origins").  Nothing else is opened to other origins.
CORS_ENDPOINTS = {
    "oauth.token",
    "oauth.keys",
    "oauth.userinfo",
    "oauth.revoke",
    "oauth.openid_configuration",
    "oauth.oauth_authorization_server",
}

#: The CORS endpoints a browser sends DPoP proofs to (RFC 9449 §5, §7).
DPOP_CORS_ENDPOINTS = {"oauth.token", "oauth.userinfo", "oauth.revoke"}


#: The claims our tokens may carry (Discovery 1.0 §3 ``claims_supported``):
#: the registered JWT claims, OIDC Core §5.1's profile and email claims,
#: and Okta's ``ver`` and ``jti``.
CLAIMS_SUPPORTED = (
    "iss",
    "sub",
    "aud",
    "iat",
    "exp",
    "auth_time",
    "nonce",
    "at_hash",
    "amr",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "locale",
    "zoneinfo",
    "email",
    "email_verified",
    "ver",
    "jti",
)


def metadata() -> dict:
    """The provider metadata (OpenID Connect Discovery 1.0 §3, RFC 8414 §2)."""
    st = state()
    settings = st.settings
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": st.endpoint("authorize"),
        "token_endpoint": st.endpoint("token"),
        "userinfo_endpoint": st.endpoint("userinfo"),
        "jwks_uri": st.endpoint("keys"),
        "end_session_endpoint": st.endpoint("logout"),
        "revocation_endpoint": st.endpoint("revoke"),
        "introspection_endpoint": st.endpoint("introspect"),
        # RFC 8628 §4: the device authorization grant (dev_issuer/device.py).
        "device_authorization_endpoint": st.endpoint("device/authorize"),
        "response_types_supported": ["code", "token", "id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        # The password grant is offered only in trusted mode (it is off unless
        # enabled: RFC 9700 §2.4), so a client can see up front that it is missing.
        "grant_types_supported": [
            "authorization_code",
            "implicit",
            "refresh_token",
            *(["password"] if settings.trusted_mode else []),
            "client_credentials",
            DEVICE_CODE_GRANT_TYPE,
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access", *settings.service_scope.split()],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "code_challenge_methods_supported": ["S256"],
        # RFC 9449 §5.1: DPoP-bound tokens, proofs signed with these algorithms.
        "dpop_signing_alg_values_supported": list(PROOF_ALGORITHMS),
        "request_parameter_supported": False,
        # Discovery §3: omitted, this would default to true.
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        # RFC 9207: every authorization response carries ``iss``.
        "authorization_response_iss_parameter_supported": True,
        # RFC 9126 §5: pushed authorization requests (dev_issuer/par.py).
        **pushed.metadata(),
    }


# -- cross-cutting ------------------------------------------------------------------


bp.before_request(refuse_unreadable_client_credentials)
bp.before_request(refuse_unexpected_proof)  # RFC 9449: a proof where none is taken is refused
register_protocol_error_handlers(bp)


@bp.after_request
def cors(response):
    """CORS for the SPA's origin only: echo it, never ``*`` (Fetch standard §3.2)."""
    if request.endpoint in CORS_ENDPOINTS:
        response.vary.add("Origin")
        if request.headers.get("Origin") == state().settings.spa_origin:
            response.headers["Access-Control-Allow-Origin"] = state().settings.spa_origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
            if request.endpoint in DPOP_CORS_ENDPOINTS:
                # RFC 9449 from the browser: the proof goes in a DPoP header, and
                # the SPA must read the nonce (§8) and the challenge (§7.1).
                response.headers["Access-Control-Allow-Headers"] += ", DPoP"
                response.headers["Access-Control-Expose-Headers"] = "DPoP-Nonce, WWW-Authenticate"
    return response


# -- discovery and keys ------------------------------------------------------------


@bp.route("/.well-known/openid-configuration")
def openid_configuration():
    """Provider metadata (OpenID Connect Discovery 1.0 §4)."""
    response = jsonify(metadata())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.route("/.well-known/oauth-authorization-server")
def oauth_authorization_server():
    """Authorization server metadata (RFC 8414 §3), the same document."""
    return openid_configuration()


@bp.route("/v1/keys")
def keys():
    """The JWKS (RFC 7517 §5): current, next and retired public keys."""
    response = jsonify(state().keyring.public_jwks())
    # Short, so a relying party sees a rotation soon; the "next" key is
    # published a whole rotation ahead anyway.
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


# -- authorization endpoint -----------------------------------------------------------


def signed_in_user():
    """The user of the issuer's SSO session and when they signed in, if any."""
    username = session.get("username")
    user = state().users.get(username.lower()) if isinstance(username, str) else None
    return (user, session.get("auth_time")) if user else (None, None)


def unsupported_parameter_error(grant) -> OAuth2Error | None:
    """The error for authorization parameters this issuer does not implement, if any.

    A request object (``request``, ``request_uri``) may carry parameters
    that override the plain ones, so silently ignoring it would answer a
    different request than the client sent: OpenID Connect Core 6.1/6.2
    and 3.1.2.6 give ``request_not_supported`` and
    ``request_uri_not_supported`` for exactly this.  ``max_age`` must be a
    non-negative integer (3.1.2.1); anything else is refused rather than
    ignored, since ignoring it would skip the re-authentication asked for.
    """
    where = {
        "redirect_uri": grant.redirect_uri,
        "redirect_fragment": getattr(grant, "ERROR_RESPONSE_FRAGMENT", False),
    }
    if "request" in request.values:
        return RequestNotSupportedError(
            "Request objects ('request') are not supported here: send the parameters as plain query "
            "parameters.",
            **where,
        )
    if "request_uri" in request.values:
        return RequestURINotSupportedError(
            "Request objects by reference ('request_uri') are not supported here: push the request to the "
            "pushed authorization request endpoint (RFC 9126), or send plain query parameters.",
            **where,
        )
    max_age = request.values.get("max_age")
    if max_age is not None and not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
        return InvalidRequestError("max_age must be a non-negative whole number of seconds.", **where)
    return None


def asks_for_fresh_sign_in(prompts: list[str]) -> bool:
    """Whether the request may need a re-authentication: ``prompt=login`` or ``max_age`` (Core 3.1.2.1)."""
    return "login" in prompts or request.values.get("max_age") is not None


def needs_sign_in(prompts: list[str], auth_time) -> bool:
    """Whether the user must (re-)enter credentials now (OpenID Connect Core 3.1.2.1).

    ``prompt=login`` asks for a fresh sign-in; ``max_age`` bounds how old
    the last one may be.  A sign-in counts as fresh only for the request
    it was made for, and only just after it (``freshness.py``).
    """
    fresh = take_fresh_sign_in(request.values.get(CHALLENGE_PARAMETER))
    if "login" in prompts and not fresh:
        return True
    max_age = request.values.get("max_age")
    if max_age is not None:
        # Validated by unsupported_parameter_error: a non-negative integer.
        return int(auth_time or 0) + int(max_age) < time.time() and not fresh
    return False


@bp.route("/v1/authorize", methods=["GET", "POST"])
def authorize():
    """The authorization endpoint (RFC 6749 §3.1, OpenID Connect Core 3.1.2).

    Validate the request first, so a bad client or redirect URI is caught
    before anyone types a password; then sign the user in (or reuse the
    SSO session) and let the grant build the response.
    """
    # RFC 9126 §4: a request_uri stands for the pushed request; refused here, on a page, if unusable.
    refused = pushed.apply_pushed_request()
    if refused is not None:
        return refused
    user, auth_time = signed_in_user()
    try:
        grant = authorization_server().get_consent_grant(end_user=user)
    except OAuth2Error as error:
        return authorization_error(error)
    except ValueError:
        return authorization_error(InvalidRequestError("The authorization request is malformed."))

    unsupported = unsupported_parameter_error(grant)
    if unsupported is not None:
        return authorization_error(unsupported, grant)
    # RFC 9126 §5: a client that DEV_ISSUER_REQUIRE_PAR names must have pushed.
    unpushed = pushed.refuse_unpushed(grant)
    if unpushed is not None:
        return unpushed

    prompts = (request.values.get("prompt") or "").split()
    if user is not None and needs_sign_in(prompts, auth_time):
        user = None
    if user is None:
        if "none" in prompts:
            return authorization_error(
                LoginRequiredError(
                    redirect_uri=grant.redirect_uri,
                    redirect_fragment=getattr(grant, "ERROR_RESPONSE_FRAGMENT", False),
                ),
                grant,
            )
        # The user now signs in at the issuer; the sign-in page sends them
        # back here with the same parameters, one redirect later.
        # (A pushed request comes back as client_id and request_uri only.)
        items = pushed.sign_in_return_parameters(list(request.values.items(multi=True)))
        if asks_for_fresh_sign_in(prompts):
            items = challenge_request(items)
        query = urlencode(items)
        return redirect(url_for("auth.sign_in", next=f"{url_for('.authorize')}?{query}"))

    grant.request.auth_time = auth_time
    try:
        response = grant.create_authorization_response(grant.redirect_uri, user)
        return authorization_server().handle_response(*response)
    except OAuth2Error as error:
        return authorization_error(error, grant)


# -- token endpoint and friends ----------------------------------------------------------


@bp.route("/v1/token", methods=["GET", "POST"])
def token():
    """The token endpoint (RFC 6749 §3.2): every grant type, every client auth method."""
    if request.method != "POST":
        return post_only("token")
    return authorization_server().create_token_response()


@bp.route("/v1/introspect", methods=["GET", "POST"])
def introspect():
    """Token introspection (RFC 7662 §2)."""
    if request.method != "POST":
        return post_only("introspection")
    return authorization_server().create_endpoint_response("introspection")


@bp.route("/v1/revoke", methods=["GET", "POST"])
def revoke():
    """Token revocation (RFC 7009 §2)."""
    if request.method != "POST":
        return post_only("revocation")
    return authorization_server().create_endpoint_response("revocation")


@bp.route("/v1/userinfo", methods=["GET", "POST"])
def userinfo():
    """The userinfo endpoint (OpenID Connect Core 5.3), bearer token required."""
    return authorization_server().create_endpoint_response("userinfo")


# -- RP-initiated logout --------------------------------------------------------------------


@bp.route("/v1/logout", methods=["GET", "POST"])
def logout():
    """RP-Initiated Logout 1.0 §2: end the SSO session, maybe redirect back.

    Only a ``post_logout_redirect_uri`` registered for the client named by
    the ``id_token_hint`` is followed (§3); anything else ends on a page
    here.  Without a hint, or with one that is not an ID token of a
    registered client about the signed-in user, the user confirms first
    (§2, §4, §6: such requests could otherwise sign people out from other
    sites), with a form POST that carries the page's CSRF token.
    """
    if request.method == "POST" and request.form.get("confirm") == "yes":
        require_csrf()
        session.clear()
        return render_template("dev_issuer/logged_out.html", redirected=False, requested_uri=None), 200
    try:
        validated = authorization_server().validate_endpoint_request("end_session")
    except (OAuth2Error, ValueError) as error:
        return logout_error(error)
    user = signed_in_user()[0]
    suspect = None
    if validated.id_token_claims is not None:
        hint = request.values.get("id_token_hint", "")
        suspect = suspect_hint_reason(hint, validated.id_token_claims, user)
    if validated.needs_confirmation or suspect:
        return render_template("dev_issuer/logout_confirm.html", user=user, reason=suspect)
    response = authorization_server().create_endpoint_response("end_session", validated)
    if response is not None:
        return response
    return render_template(
        "dev_issuer/logged_out.html",
        redirected=False,
        requested_uri=request.values.get("post_logout_redirect_uri"),
    )
