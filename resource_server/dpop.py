"""DPoP at the resource server (RFC 9449 §7): a bound token works only with a proof for this request.

A DPoP-bound access token carries the thumbprint of the client's key in
``cnf.jkt`` (RFC 9449 §6).  Such a token is accepted only as ``Authorization:
DPoP <token>`` together with a ``DPoP`` header holding a proof that
:func:`common.dpop.verify_proof` accepts, which checks every step of RFC
9449 §4.3, cheapest first:

1. exactly one ``DPoP`` header, a well-formed JWT of bounded size;
2. ``typ`` is ``dpop+jwt``; ``alg`` is in our allow-list (ES256, PS256,
   RS256: never ``none``, never a symmetric algorithm);
3. ``jwk`` is a public key (no private members) of the type ``alg`` needs,
   and the signature verifies with it;
4. ``htm`` is this request's method, ``htu`` this request's public URL
   (``API_URL`` + path: behind a proxy, the URL the client used), with no
   query or fragment;
5. ``iat`` within ``CLOCK_LEEWAY`` seconds of now;
6. ``ath`` is the hash of the token that came with it (§7.1);
7. the proof's key is the key the token is bound to (``cnf.jkt``, §7.1);
8. with ``API_DPOP_NONCE=on``, the API's current nonce (§9);
9. ``jti`` not seen before in the window, in Redis, so every gunicorn worker
   shares one record (§11.1); each record expires with the window.

The other way round matters as much: a bound token sent as ``Bearer`` is
refused (otherwise stealing it would be enough again), and so is an
unbound token sent with the ``DPoP`` scheme.  ``API_DPOP=required`` refuses
every Bearer token.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

import redis
from flask import Flask, current_app, g, request

from common.config import ConfigError, Settings
from common.dpop import (
    InvalidProof,
    RedisReplayCache,
    ServerNonces,
    VerifiedProof,
    proof_from_headers,
    verify_proof,
)
from common.errors import FlowError
from common.session import connect_redis
from common.web import settings_of

from .access_token import AccessToken
from .errors import invalid_dpop_proof, invalid_token, use_dpop_nonce

#: Key prefix of the API's records in Redis (used proof ``jti`` values, the nonce secret).
REDIS_PREFIX = "resource_server:"

#: Seconds one nonce slot lasts: a nonce is accepted for one to two of them (RFC 9449 §9).
NONCE_LIFETIME = 60


class ProofChecker:
    """What checking proofs needs, made once per process: the replay record and the nonces."""

    def __init__(self, settings: Settings):
        """Connect (lazily: redis-py connects on first use) to ``REDIS_URL`` when it is set."""
        self.settings = settings
        # Redis is needed only for DPoP requests: without REDIS_URL, Bearer
        # tokens still work and a DPoP request gets a clear 503.
        self.redis = connect_redis(settings.redis_url) if settings.redis_url else None
        self.replay = RedisReplayCache(self.redis, REDIS_PREFIX) if self.redis else None
        self._nonces: ServerNonces | None = None

    def nonces(self) -> ServerNonces | None:
        """The API's nonces under ``API_DPOP_NONCE=on`` (RFC 9449 §9), else ``None``.

        Every worker must make and accept the same nonces, so the secret
        they are derived from is created once in Redis (``SET NX``) and read
        by each worker on first use.
        """
        if self.settings.api_dpop_nonce != "on":
            return None
        if self._nonces is None:
            key = f"{REDIS_PREFIX}dpop_nonce_secret"
            self.redis.set(key, secrets.token_hex(32), nx=True)
            self._nonces = ServerNonces(self.redis.get(key), NONCE_LIFETIME)
        return self._nonces

    def verify(self, token: str, jkt: str) -> VerifiedProof:
        """Check the request's proof for ``token``, bound to ``jkt`` (RFC 9449 §4.3, §7.1).

        :raises BearerError: ``invalid_dpop_proof`` naming the failed check,
            or ``use_dpop_nonce`` with a fresh nonce.
        :raises FlowError: 503 when Redis, where used ``jti`` values live, is unreachable.
        """
        if self.replay is None:
            raise FlowError(
                "temporarily_unavailable",
                "This API cannot check DPoP proofs: it has no Redis for the used proof ids (jti).",
                "Set REDIS_URL for the resource server (make run does this for you).",
                503,
            )
        try:
            nonces = self.nonces()
            proof = proof_from_headers(request.headers)
            if proof is None:
                raise InvalidProof("A DPoP-bound token needs a proof in the DPoP header.", check="format")
            if "," in proof:
                # A WSGI server folds repeated headers into one, comma-separated
                # (RFC 9110 §5.3); a JWT never holds a comma (§4.3 step 1).
                raise InvalidProof("The request carries more than one DPoP header.", check="format")
            return verify_proof(
                proof,
                method=request.method,
                url=public_url(self.settings),
                replay=self.replay,
                leeway=self.settings.clock_leeway,
                access_token=token,
                expected_jkt=jkt,
                nonces=nonces,
            )
        except InvalidProof as exc:
            if exc.error == "use_dpop_nonce":
                raise use_dpop_nonce(exc.description, nonces.current()) from None
            raise invalid_dpop_proof(exc.description, exc.check) from None
        except redis.RedisError:
            raise FlowError(
                "temporarily_unavailable",
                "The record of used DPoP proofs (Redis) did not answer.",
                "Check that Redis is running (REDIS_URL); try again in a moment.",
                503,
            ) from None


def public_url(settings: Settings) -> str:
    """This request's URL as the client used it: ``API_URL`` + path (RFC 9449 §4.3 step 9).

    Not the URL the server received: behind a proxy or a port mapping the
    host, scheme and port differ, and the proof names what the client saw.
    """
    return settings.api_url.rstrip("/") + quote(request.path, safe="/:@!$&'()*+,;=-._~")


def init_dpop(app: Flask) -> None:
    """Make this process's :class:`ProofChecker`; refuse to start when ``API_DPOP=required`` has no Redis."""
    settings: Settings = app.config["SETTINGS"]
    if settings.api_dpop == "required" and not settings.redis_url:
        raise ConfigError(
            "REDIS_URL",
            "is not set, and API_DPOP=required needs Redis to refuse replayed DPoP proofs",
            "Set REDIS_URL=redis://localhost:6379/0, or start the suite with `make run`",
        )
    app.extensions["dpop_checker"] = ProofChecker(settings)


def refuse_bearer_when_required(scheme: str) -> None:
    """With ``API_DPOP=required``, a Bearer token is refused before it is even validated."""
    if scheme == "bearer" and settings_of(current_app).api_dpop == "required":
        raise invalid_token(
            "This API accepts only DPoP-bound tokens (API_DPOP=required): "
            "send 'Authorization: DPoP <token>' with a DPoP proof."
        )


def check_key_binding(scheme: str, token: str, access_token: AccessToken) -> None:
    """The token's binding and the request's scheme must agree (RFC 9449 §7.1, §7.2).

    Sets ``g.dpop_proof`` to the verified proof of a DPoP request.

    :raises BearerError: a bound token as Bearer, an unbound token as DPoP
        (``invalid_token``), or a proof that fails a check.
    """
    if scheme == "bearer":
        if access_token.jkt is not None:
            # §7.2: accepting it as a bearer token would make a stolen copy usable again.
            raise invalid_token(
                "This token is bound to a DPoP key (cnf.jkt): send it as 'Authorization: DPoP <token>' "
                "with a DPoP proof, not as Bearer."
            )
        g.dpop_proof = None
        return
    if access_token.jkt is None:
        raise invalid_token("This token is not DPoP-bound (no cnf.jkt): send it as 'Authorization: Bearer'.")
    g.dpop_proof = current_app.extensions["dpop_checker"].verify(token, access_token.jkt)
