"""DPoP (RFC 9449) for every client app: when to use it, and requests that carry a proof.

:mod:`common.dpop` makes and checks proofs; this module is the clients'
policy around it, once for every app:

* :func:`dpop_algorithm` and :func:`new_dpop_key`: ``DPOP=auto`` uses DPoP
  when the issuer advertises ``dpop_signing_alg_values_supported`` (RFC 9449
  §5.1), ``DPOP=on`` always (and says in one line when the issuer cannot),
  ``DPOP=off`` never;
* :func:`send_authorized`: one request to a resource (the API, the UserInfo
  endpoint) with ``Authorization: DPoP <token>`` and a proof with ``ath``
  (§7.1), or ``Bearer`` for an unbound token; a ``401`` with
  ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` is retried once with the
  server's nonce (§9);
* :data:`NONCES`: the latest ``DPoP-Nonce`` each server sent (§8.2, §9), one
  book per process, shared by every request it makes;
* :func:`proof_display`: a proof decoded for the flow inspector, with the
  checks a server will run on it (§4.3).

The token and revocation requests get their proofs in
:meth:`common.client.Client.post_form`, from the key the client holds
(:meth:`common.client.Client.with_dpop_key`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import requests
from joserfc.errors import JoseError

from .dpop import (
    PRIVATE_MEMBERS,
    PROOF_ALGORITHMS,
    PROOF_TYPE,
    TOKEN_TYPE,
    DPoPKey,
    NonceBook,
    access_token_hash,
    asks_for_nonce,
    choose_algorithm,
    htu_of,
)
from .errors import FlowError
from .inspector import decode_unverified
from .untrusted import plain_text

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

#: The latest nonce of each server this process talks to (RFC 9449 §8.2, §9).
NONCES = NonceBook()

#: The issuer's endpoints that get a proof: the token endpoint (RFC 9449 §5) and
#: revocation, which presents the bound token's key too.  No other endpoint
#: (PAR, introspection) is sent one: a server may refuse a proof it does not expect.
PROOF_ENDPOINTS = ("token_endpoint", "revocation_endpoint")


def dpop_mode(settings) -> str:
    """``DPOP`` (auto, on, off) for a client app; ``off`` in a component that is never a DPoP client.

    The resource server and the dev issuer use :class:`common.client.Client`
    too (introspection), but do not declare ``DPOP``.
    """
    return settings.dpop if settings.declares("DPOP") else "off"


def dpop_algorithm(client: "Client") -> str | None:
    """The proof algorithm to use with ``client``'s issuer under ``DPOP``, or ``None`` for no DPoP.

    :raises FlowError: ``dpop_unsupported`` with ``DPOP=on`` when the issuer
        advertises no DPoP, or no algorithm we can sign with.
    """
    mode = dpop_mode(client.settings)
    if mode == "off":
        return None
    offered = client.metadata().get("dpop_signing_alg_values_supported")
    offered = [alg for alg in offered if isinstance(alg, str)] if isinstance(offered, list) else None
    alg = choose_algorithm(offered) if offered else None
    if alg is None and mode == "on":
        what = (
            f"offers only {plain_text(', '.join(offered), 120)} for DPoP proofs, "
            f"none of ours ({', '.join(PROOF_ALGORITHMS)})"
            if offered
            else "does not advertise DPoP (no dpop_signing_alg_values_supported in its metadata)"
        )
        raise FlowError(
            "dpop_unsupported",
            f"DPOP=on, but the issuer {client.issuer.identifier} {what}.",
            "Enable DPoP at the issuer (Okta: the app's \"Require Demonstrating Proof of Possession (DPoP) "
            'header in token requests"), or set DPOP=auto to use Bearer tokens where it is not offered.',
            502,
        )
    return alg


def new_dpop_key(client: "Client") -> DPoPKey | None:
    """A fresh key pair for one sign-in (or one process), or ``None`` when ``DPOP`` says no DPoP here.

    :raises FlowError: ``dpop_unsupported`` (see :func:`dpop_algorithm`).
    """
    alg = dpop_algorithm(client)
    return DPoPKey.generate(alg) if alg else None


def remember_dpop_key(pending: dict, key: DPoPKey | None) -> dict:
    """Keep ``key`` with the pending sign-in ``pending`` (a server-side session entry, or memory); return it.

    The key is made when the sign-in starts, so that a ``DPOP=on`` error
    comes before the browser goes anywhere; the code exchange proves
    possession of it (:func:`common.tokens.exchange_code`).
    """
    if key is not None:
        pending["dpop_jwk"] = key.to_jwk()
    return pending


def pending_dpop_key(pending: Mapping[str, Any]) -> DPoPKey | None:
    """The key :func:`remember_dpop_key` kept with a pending sign-in, or ``None``."""
    jwk = pending.get("dpop_jwk")
    return DPoPKey.from_jwk(jwk) if isinstance(jwk, Mapping) else None


def key_of(tokens: Any) -> DPoPKey | None:
    """The private key ``tokens`` (a :class:`common.tokens.TokenSet`) are bound to, or ``None`` (Bearer)."""
    jwk = getattr(tokens, "dpop_jwk", None)
    if str(getattr(tokens, "token_type", "")).lower() != TOKEN_TYPE.lower():
        return None
    try:
        return DPoPKey.from_jwk(jwk)
    except (JoseError, ValueError, TypeError, KeyError, AttributeError):
        # Bound tokens without their key cannot be used by anyone: sign in again.
        raise FlowError(
            "dpop_key_missing",
            "The stored tokens are DPoP-bound, but the key they are bound to is missing or unreadable.",
            "Sign in again: a new sign-in makes a new key.",
            401,
        ) from None


def send_authorized(
    http: requests.Session | Callable[..., requests.Response],
    method: str,
    url: str,
    access_token: str,
    key: DPoPKey | None,
    *,
    headers: Mapping[str, str] | None = None,
    **kwargs,
) -> list[tuple[dict, requests.Response]]:
    """Send one request to a resource with the access token; answer every attempt made.

    With ``key`` (a DPoP-bound token) the request carries ``Authorization: DPoP
    <token>`` and a proof for this method and URL with ``ath``, the token's
    hash (RFC 9449 §7.1); a ``401`` asking for a nonce (§9) is answered by one
    more attempt with it.  Without, ``Authorization: Bearer`` (RFC 6750 §2.1).
    Redirects are never followed: the token goes only to ``url``.

    :param http: a session, or a function called like ``Session.request`` (one that turns
        network errors into the caller's :class:`~common.errors.FlowError`).
    :return: ``[(headers_sent, response), ...]``: one or two attempts, the last one the answer.
    :raises requests.RequestException: from a session; the caller turns it into its error.
    """
    send = getattr(http, "request", http)
    attempts: list[tuple[dict, requests.Response]] = []
    for _ in range(2):
        sent = dict(headers or {})
        if key is None:
            sent["Authorization"] = f"Bearer {access_token}"
        else:
            sent["Authorization"] = f"{TOKEN_TYPE} {access_token}"
            sent["DPoP"] = key.proof(method, url, access_token=access_token, nonce=NONCES.get(url))
        response = send(method, url, headers=sent, allow_redirects=False, **kwargs)
        attempts.append((sent, response))
        if key is None:
            break
        NONCES.remember(url, response.headers)
        if not asks_for_nonce(response.status_code, response.headers) or len(attempts) == 2:
            break
    return attempts


def proof_display(proof: str, method: str, url: str, access_token: str | None = None) -> dict:
    """A proof decoded for the flow inspector, with the checks a server runs on it (RFC 9449 §4.3).

    Checked here against the request it went with, so that the page shows
    what the proof claims and why each claim will pass.
    """
    header, claims = decode_unverified(proof)
    jwk = header.get("jwk") if isinstance(header.get("jwk"), dict) else {}
    checks = [
        _check(
            "typ", header.get("typ") == PROOF_TYPE, f"{PROOF_TYPE}: a DPoP proof, not any other JWT (§4.2)"
        ),
        _check(
            "alg",
            header.get("alg") in PROOF_ALGORITHMS,
            f"{header.get('alg')}: asymmetric, never none or a shared-secret algorithm (§4.2)",
        ),
        _check(
            "jwk",
            bool(jwk) and not PRIVATE_MEMBERS & jwk.keys(),
            "the public key only; its RFC 7638 thumbprint is what the token's cnf.jkt names (§6.1)",
        ),
        _check("htm", claims.get("htm") == method.upper(), f"{claims.get('htm')}: this request's method"),
        _check(
            "htu",
            claims.get("htu") == htu_of(url),
            f"{claims.get('htu')}: this request's URL, without query or fragment",
        ),
        _check(
            "iat",
            isinstance(claims.get("iat"), int) and abs(time.time() - claims["iat"]) < 300,
            "just now: a server accepts a proof only for a short window",
        ),
        _check("jti", bool(claims.get("jti")), "random and used once: a replayed proof is refused (§11.1)"),
    ]
    if access_token is not None or "ath" in claims:
        checks.append(
            _check(
                "ath",
                access_token is not None and claims.get("ath") == access_token_hash(access_token),
                "the SHA-256 hash of the access token sent with it (§7.1): the proof is for this token only",
            )
        )
    if "nonce" in claims:
        checks.append(_check("nonce", True, "the latest DPoP-Nonce this server sent (§8, §9)"))
    # The key's coordinates are public but long and random: shortened, they keep the session small.
    header = {**header, "jwk": {k: f"{v[:10]}..." if len(str(v)) > 16 else v for k, v in jwk.items()}}
    return {"header": header, "claims": claims, "checks": checks}


def _check(name: str, ok: bool, detail: str) -> dict:
    """One row of the inspector's check list (the shape :class:`common.inspector.FlowLog` stores)."""
    return {"check": name, "ok": bool(ok), "detail": detail}
