"""DPoP at the dev issuer (RFC 9449), shaped like Okta's.

The proof itself is checked once, for every server of the suite, by
:func:`common.dpop.verify_proof`; this module says *where* the issuer checks
one and what it does with the result:

* the **token endpoint** (§5) checks a proof before any grant runs (so a
  refused proof never uses up a code), demands the issuer's current nonce
  like Okta (§8: ``400 use_dpop_nonce`` with a ``DPoP-Nonce`` header), and
  the grants bind what they issue to the proof's key: ``cnf.jkt`` in the
  access token (§6.1), the thumbprint stored with a public client's refresh
  token (§5);
* a client registered with ``dpop_bound_access_tokens`` (§5.2; Okta's
  "Require DPoP", ``DEV_ISSUER_REQUIRE_DPOP``) cannot get a token without one;
* **revocation** checks a proof when one comes, **userinfo** is a protected
  resource (§7) that takes ``Authorization: DPoP`` with a proof, and every
  other protocol endpoint refuses a proof instead of ignoring it.

Used ``jti`` values and the nonce secret are in Redis, so every gunicorn
worker refuses the same replays and accepts the same nonces.
"""

from __future__ import annotations

import re
import secrets

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError, UnauthorizedClientError
from flask import g, request

from common.dpop import (
    PROOF_ALGORITHMS,
    TOKEN_TYPE,
    InvalidProof,
    RedisReplayCache,
    ServerNonces,
    VerifiedProof,
    proof_from_headers,
    verify_proof,
)

from .state import authorization_server, state

#: How long one nonce slot lasts; a nonce is accepted for one to two slots (``ServerNonces``).
NONCE_LIFETIME = 60

#: The Redis key (under the store's prefix) of the secret every worker derives nonces from.
NONCE_SECRET_NAME = "dpop_nonce_secret"

#: Okta's words for the two refusals a client meets first.
USE_NONCE_DESCRIPTION = "Authorization server requires nonce in DPoP proof."
MISSING_PROOF_DESCRIPTION = "DPoP proof JWT header is missing."

#: Protocol endpoints that never take a proof: one sent there is refused, not
#: ignored, so that a client never believes something is bound that is not.
#: (The token endpoint, revocation and userinfo take one; a pushed
#: authorization request may, RFC 9449 §10.1.)
PROOF_REFUSED_ENDPOINTS = frozenset(
    {
        "oauth.authorize",
        "oauth.introspect",
        "oauth.logout",
        "oauth.keys",
        "oauth.openid_configuration",
        "oauth.oauth_authorization_server",
    }
)

#: RFC 6749 §5.2: what an ``error_description`` may contain (no quote, no backslash, ASCII only).
_NOT_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5B\x5D-\x7E]")


def safe_description(text: str) -> str:
    """``text`` fit for an ``error_description`` and a challenge: a proof's header is the sender's text."""
    return _NOT_DESCRIPTION.sub("?", str(text))[:300]


class DPoPProofError(OAuth2Error):
    """``400 invalid_dpop_proof`` or ``400 use_dpop_nonce`` (RFC 9449 §5, §8), as JSON.

    :param nonce: sent in ``DPoP-Nonce`` (§8.1) with ``use_dpop_nonce``.
    """

    status_code = 400

    def __init__(self, error: str, description: str, nonce: str | None = None):
        super().__init__(safe_description(description), error=error)
        self.nonce = nonce

    def get_headers(self):
        headers = super().get_headers()
        if self.nonce:
            headers.append(("DPoP-Nonce", self.nonce))
        return headers


class DPoPChallengeError(OAuth2Error):
    """A ``401`` from userinfo with a ``DPoP`` challenge (RFC 9449 §7.1): ``error``, ``algs``."""

    status_code = 401

    def __init__(self, error: str, description: str):
        super().__init__(safe_description(description), error=error)

    def get_headers(self):
        headers = super().get_headers()
        challenge = (
            f'DPoP algs="{" ".join(PROOF_ALGORITHMS)}", error="{self.error}", '
            f'error_description="{self.get_error_description()}"'
        )
        headers.append(("WWW-Authenticate", challenge))
        return headers


# -- the shared pieces: replay cache and nonces --------------------------------------------------------


def replay_cache() -> RedisReplayCache:
    """Used ``jti`` values (RFC 9449 §11.1), in the issuer's Redis under its prefix: one key per proof."""
    store = state().store
    return RedisReplayCache(store.redis, store.PREFIX)


def server_nonces() -> ServerNonces:
    """The issuer's nonces (RFC 9449 §8), from the secret all workers share.

    The secret is random and kept in Redis (``Store.shared_secret``), not
    derived from ``SECRET_KEY``: a development ``SECRET_KEY`` may be the
    published default, and whoever knows the secret can compute every future
    nonce, which would let a proof be made ahead of time (§11.2).
    """
    return ServerNonces(state().store.shared_secret(NONCE_SECRET_NAME), lifetime=NONCE_LIFETIME)


def current_proof() -> VerifiedProof | None:
    """The proof the current token request passed with, if it had one."""
    return g.get("dpop_proof")


def _check(proof: str, method: str, endpoint: str, **checks) -> VerifiedProof:
    """:func:`verify_proof` for a request to one of our endpoints, at its public URL (``htu``)."""
    return verify_proof(
        proof,
        method=method,
        url=state().endpoint(endpoint),
        replay=replay_cache(),
        leeway=state().settings.clock_leeway,
        **checks,
    )


# -- the token endpoint (RFC 9449 §5, §8) --------------------------------------------------------------


def check_token_request_proof() -> None:
    """Check the token request's proof, if it has one, before any grant runs.

    RFC 9449 §4.3 (every check of ``verify_proof``: signature with the
    embedded public key, ``htm`` POST, ``htu`` the token endpoint's public
    URL, ``iat`` within ``CLOCK_LEEWAY``, ``jti`` once across workers) and
    §8: a proof without the current nonce is answered ``use_dpop_nonce``
    with the nonce to use, as Okta does.  The proof is kept for the grant
    (:func:`current_proof`).  Checked first, so that a refusal leaves the
    authorization code or refresh token unused and the client can retry.

    :raises DPoPProofError: for a bad proof, or to ask for the nonce.
    """
    g.dpop_proof = None
    try:
        proof = proof_from_headers(request.headers)
    except InvalidProof as refused:
        raise DPoPProofError("invalid_dpop_proof", refused.description) from None
    if proof is None:
        return
    nonces = server_nonces()
    try:
        g.dpop_proof = _check(proof, request.method, "token", nonces=nonces)
    except InvalidProof as refused:
        if refused.error == "use_dpop_nonce":
            raise DPoPProofError(refused.error, USE_NONCE_DESCRIPTION, nonce=nonces.current()) from None
        raise DPoPProofError("invalid_dpop_proof", refused.description) from None


def offer_fresh_nonce(response):
    """Send the current nonce with the answer when the proof carried an older one (RFC 9449 §8.2).

    The client then uses the new one next time, and never meets
    ``use_dpop_nonce`` as long as it keeps calling.
    """
    proof = current_proof()
    if proof is not None:
        current = server_nonces().current()
        if proof.claims.get("nonce") != current:
            response.headers["DPoP-Nonce"] = current
    return response


def require_proof(client) -> None:
    """Refuse a token request without a proof from a client that must use DPoP (RFC 9449 §5.2).

    ``dpop_bound_access_tokens`` is set from ``DEV_ISSUER_REQUIRE_DPOP``, like
    Okta's "Require DPoP" checkbox; Okta's answer is the same error.
    """
    if getattr(client, "dpop_bound_access_tokens", False) and current_proof() is None:
        raise DPoPProofError("invalid_dpop_proof", MISSING_PROOF_DESCRIPTION)


def refuse_implicit_access_token(oauth_request) -> None:
    """No access token from the authorization endpoint for a client that must use DPoP (RFC 9449 §5.2).

    An implicit access token travels without any proof, so it could never
    be bound: a "Require DPoP" app gets tokens only from the token endpoint.
    (``response_type=id_token`` alone issues no access token and stays open.)
    """
    wants_access_token = "token" in (oauth_request.payload.response_type or "").split()
    if wants_access_token and getattr(oauth_request.client, "dpop_bound_access_tokens", False):
        raise UnauthorizedClientError(
            "This app requires DPoP-bound access tokens, which the implicit flow cannot issue: use the "
            "authorization code flow."
        )


def access_token_confirmation() -> dict | None:
    """The access token's ``cnf`` (RFC 9449 §6.1): the proof key's thumbprint, when a proof came."""
    proof = current_proof()
    return {"jkt": proof.jkt} if proof is not None else None


def token_type() -> str:
    """``DPoP`` for a token bound to the proof's key (RFC 9449 §5), else ``Bearer``."""
    return TOKEN_TYPE if current_proof() is not None else "Bearer"


def refresh_token_binding(client) -> str | None:
    """The key a new refresh token is bound to: the proof's, for a public client only (RFC 9449 §5).

    A confidential client's refresh token is already bound to its client
    authentication, so it is not bound to a key (§5).
    """
    proof = current_proof()
    return proof.jkt if proof is not None and client.is_public else None


def check_refresh_token_binding(refresh_token) -> None:
    """A refresh token bound to a key is used only with a proof by that key (RFC 9449 §5).

    Checked before the token is claimed: a thief without the private key
    gets ``invalid_grant`` and uses nothing up.
    """
    jkt = refresh_token.data.get("jkt")
    if not jkt:
        return
    proof = current_proof()
    if proof is None:
        raise InvalidGrantError("This refresh token is DPoP-bound: send a DPoP proof made with its key.")
    if not secrets.compare_digest(proof.jkt, jkt):
        raise InvalidGrantError("This refresh token is bound to another DPoP key than this proof's.")


# -- other endpoints ---------------------------------------------------------------------------------


def check_revocation_proof() -> None:
    """Revocation accepts a proof and checks it when one comes (RFC 9449 §4.3; POST, the revoke URL).

    No nonce is demanded here, and none is needed: revoking only ever takes
    a token away.
    """
    try:
        proof = proof_from_headers(request.headers)
        if proof is not None:
            _check(proof, request.method, "revoke")
    except InvalidProof as refused:
        raise DPoPProofError("invalid_dpop_proof", refused.description) from None


def refuse_unexpected_proof():
    """A ``DPoP`` header at an endpoint that takes no proof is a client's mistake: say so (400)."""
    if request.endpoint in PROOF_REFUSED_ENDPOINTS and "DPoP" in request.headers:
        error = DPoPProofError(
            "invalid_dpop_proof",
            "This endpoint does not take a DPoP proof; send proofs to the token, revocation and userinfo "
            "endpoints only.",
        )
        return authorization_server().handle_error_response(None, error)
    return None


def check_resource_proof(token, token_string: str) -> None:
    """Userinfo as a protected resource (RFC 9449 §7.1): a DPoP-bound token with a proof for this request.

    ``htm`` GET or POST as sent, ``htu`` the userinfo URL, ``ath`` the
    token's hash, and the proof's key the token's ``cnf.jkt``.

    :raises DPoPChallengeError: ``invalid_token`` for an unbound token sent
        with the DPoP scheme, ``invalid_dpop_proof`` for a bad proof.
    """
    jkt = token.data.get("jkt")
    if not jkt:
        raise DPoPChallengeError(
            "invalid_token", "This access token is not DPoP-bound: send it with the Bearer scheme."
        )
    try:
        _check(
            proof_from_headers(request.headers),
            request.method,
            "userinfo",
            access_token=token_string,
            expected_jkt=jkt,
        )
    except InvalidProof as refused:
        raise DPoPChallengeError("invalid_dpop_proof", refused.description) from None


def refuse_bound_token_as_bearer(token) -> None:
    """A DPoP-bound token sent as ``Bearer`` is refused (RFC 9449 §7.2): it works only with its proof."""
    if token.data.get("jkt"):
        raise DPoPChallengeError(
            "invalid_token",
            "This access token is DPoP-bound: send it as Authorization: DPoP, with a DPoP proof.",
        )
