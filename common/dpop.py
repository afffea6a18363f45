"""DPoP (RFC 9449): proofs of possession, made by every client and checked by every server.

A DPoP-bound token works only together with a fresh *proof*: a small JWT
signed by the client's private key, naming the one request it goes with
(RFC 9449 §4).  The issuer binds the access token to the public key's
thumbprint (``cnf.jkt``, RFC 9449 §6, RFC 7638); the resource server checks
that the proof was signed by that key, for this request, just now (§7).  A
token copied from a log, a proxy or a browser extension is useless without
the private key, which never leaves the client.

Both halves live here, once:

* **making proofs** (clients): :class:`DPoPKey` (a key pair that can be kept
  server-side as a private JWK), :meth:`DPoPKey.proof`, :func:`choose_algorithm`
  and :class:`NonceBook` (the latest ``DPoP-Nonce`` each server sent, §8, §9);
* **checking proofs** (the dev issuer's token endpoint and the resource
  server): :func:`verify_proof`, :class:`InvalidProof`, :class:`RedisReplayCache`
  (``jti`` single use across workers, §11.1) and :class:`ServerNonces`
  (stateless nonces every worker can check, §8).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

from .jwks import InvalidToken, extract_jws, json_object, registry_for

#: RFC 9449 §4.2: the ``typ`` header of every proof.
PROOF_TYPE = "dpop+jwt"

#: Algorithms we make and accept proofs with: asymmetric only (RFC 9449 §4.2:
#: "MUST NOT be none or an identifier for a symmetric algorithm").
PROOF_ALGORITHMS = ("ES256", "PS256", "RS256")

#: What a client signs with unless the issuer offers only something else:
#: ES256 keys are small, and fast to make and to check.
DEFAULT_ALGORITHM = "ES256"

#: The token type (RFC 9449 §5) and the ``Authorization`` scheme (§7.1).
TOKEN_TYPE = "DPoP"

#: Longest proof accepted, checked before anything is parsed; a real one with
#: an RSA-2048 key is about 1,100 characters.
MAX_PROOF_LENGTH = 4096

#: The narrowest ``iat`` window, whatever ``CLOCK_LEEWAY`` says: ``iat`` has one-second resolution,
#: so a zero leeway would refuse every honest proof (RFC 9449 §11.1: "a reasonable window").
MIN_PROOF_WINDOW = 5

#: JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_KEY_TYPES = {"ES256": ("EC", "P-256"), "PS256": ("RSA", None), "RS256": ("RSA", None)}


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim (RFC 9449 §4.2): base64url of the SHA-256 of the ASCII access token."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def htu_of(url: str) -> str:
    """The ``htu`` of a request to ``url`` (RFC 9449 §4.2): without query and fragment.

    Normalised as RFC 9449 §4.3 step 9 asks the checker to compare (RFC 3986
    §6.2.2, §6.2.3): scheme and host in lowercase, a default port dropped, an
    empty path as ``/``.  Both sides use this, so they agree by construction.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def choose_algorithm(supported: Iterable[str] | None) -> str | None:
    """The proof algorithm to use with an issuer that advertises ``supported``.

    ES256 when offered (or when the issuer lists nothing), else the first of
    ours that it offers (RS256 where it offers only that); ``None`` when we
    share none, which a caller with ``DPOP=on`` reports as an error.
    """
    offered = list(supported or ())
    if not offered or DEFAULT_ALGORITHM in offered:
        return DEFAULT_ALGORITHM
    return next((alg for alg in PROOF_ALGORITHMS if alg in offered), None)


# -- the client's side: keys and proofs ----------------------------------------------------------------


class DPoPKey:
    """A client's DPoP key pair (RFC 9449 §2): the private half signs proofs, the public half goes in them.

    :meth:`to_jwk` / :meth:`from_jwk` keep it as a private JWK, so that a
    web app can store it server-side with a user's tokens, and a native app
    in a file beside them; it is never sent anywhere.
    """

    def __init__(self, key: ECKey | RSAKey, alg: str):
        if alg not in PROOF_ALGORITHMS:
            raise ValueError(f"unsupported DPoP algorithm {alg!r}")
        self.key = key
        self.alg = alg
        self.public_jwk = dict(key.as_dict(private=False))
        self.public_jwk.pop("kid", None)
        #: RFC 7638 thumbprint, what the issuer puts in ``cnf.jkt`` (RFC 9449 §6.1).
        self.thumbprint = key.thumbprint()

    @classmethod
    def generate(cls, alg: str = DEFAULT_ALGORITHM) -> "DPoPKey":
        """A new key pair for ``alg`` (P-256 for ES256, RSA-2048 otherwise)."""
        if alg == "ES256":
            return cls(ECKey.generate_key("P-256", private=True), alg)
        return cls(RSAKey.generate_key(2048, private=True), alg)

    @classmethod
    def from_jwk(cls, data: Mapping[str, Any]) -> "DPoPKey":
        """The key :meth:`to_jwk` saved (a private JWK with its ``alg``)."""
        data = dict(data)
        alg = data.pop("alg", DEFAULT_ALGORITHM)
        key = JWKRegistry.import_key(data)
        if not key.is_private:
            raise ValueError("a DPoP key needs its private part")
        return cls(key, alg)

    def to_jwk(self) -> dict:
        """The private JWK with its ``alg``: for server-side storage only, never for a cookie or a log."""
        return {**self.key.as_dict(private=True), "alg": self.alg}

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        now: float | None = None,
    ) -> str:
        """A DPoP proof for one request (RFC 9449 §4.2), to send in the ``DPoP`` header.

        :param method: the request's HTTP method (``htm``).
        :param url: the request's URL; query and fragment are left out (``htu``).
        :param access_token: the token the request presents, hashed into ``ath``
            (§4.2; a request to the resource server, or revocation).
        :param nonce: the last ``DPoP-Nonce`` this server sent (§8, §9).
        """
        header = {"typ": PROOF_TYPE, "alg": self.alg, "jwk": self.public_jwk}
        claims: dict[str, Any] = {
            # A fresh random jti per proof lets the server refuse a replay (§11.1).
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": htu_of(url),
            "iat": int(time.time() if now is None else now),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce:
            claims["nonce"] = nonce
        payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
        return jws.serialize_compact(header, payload, self.key, algorithms=[self.alg])


class NonceBook:
    """The latest ``DPoP-Nonce`` each server sent (RFC 9449 §8.2, §9): one per origin, thread-safe.

    A server may send a new nonce with any answer; the next proof to that
    server carries the latest one.
    """

    def __init__(self):
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}"

    def get(self, url: str) -> str | None:
        """The nonce to put in the next proof for ``url``'s server, if it sent one."""
        with self._lock:
            return self._nonces.get(self._origin(url))

    def remember(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Keep the ``DPoP-Nonce`` header of an answer from ``url``'s server; return it."""
        nonce = headers.get("DPoP-Nonce")
        if nonce:
            with self._lock:
                self._nonces[self._origin(url)] = nonce
        return nonce


def asks_for_nonce(status: int, headers: Mapping[str, str], body: Any = None) -> bool:
    """Whether an answer is a server's request to retry with its nonce (RFC 9449 §8, §9).

    The issuer says so with ``400`` and ``{"error": "use_dpop_nonce"}`` (§8);
    a resource server with ``401`` and ``WWW-Authenticate: DPoP
    error="use_dpop_nonce"`` (§9).  Either sends the nonce in ``DPoP-Nonce``.
    """
    if not headers.get("DPoP-Nonce"):
        return False
    if status == 400 and isinstance(body, Mapping):
        return body.get("error") == "use_dpop_nonce"
    if status == 401:
        challenge = headers.get("WWW-Authenticate", "")
        return challenge.lstrip().startswith("DPoP") and 'error="use_dpop_nonce"' in challenge
    return False


# -- the server's side: checking a proof ---------------------------------------------------------------


class InvalidProof(Exception):
    """A proof refused (RFC 9449 §4.3); ``error`` is the error code to answer with.

    ``invalid_dpop_proof`` for a bad proof (§7.1), ``use_dpop_nonce`` when the
    proof lacks the server's current nonce (§8, §9); ``check`` names the
    failed check, for the inspector and the logs.
    """

    def __init__(self, description: str, *, check: str, error: str = "invalid_dpop_proof"):
        super().__init__(description)
        self.description = description
        self.check = check
        self.error = error


@dataclass(frozen=True)
class VerifiedProof:
    """A proof that passed every check of RFC 9449 §4.3."""

    #: RFC 7638 thumbprint of the proof's key: what ``cnf.jkt`` must equal (§6.1).
    jkt: str
    header: dict
    claims: dict

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks it passed, in order, for the inspector."""
        passed = ["typ", "alg", "jwk", "signature", "htm", "htu", "iat", "jti"]
        if "nonce" in self.claims:
            passed.append("nonce")
        if "ath" in self.claims:
            passed.append("ath")
        return tuple(passed)


class RedisReplayCache:
    """Which proof ``jti`` values were already used (RFC 9449 §11.1), shared by every worker in Redis.

    One key per (key thumbprint, ``jti``), written with ``SET NX`` and an
    expiry as long as the proof's acceptance window, so storage is bounded by
    the window: a proof older than that is refused on its ``iat`` anyway.
    Scoping by thumbprint means nobody can use up another client's ``jti``.
    """

    def __init__(self, redis_client, prefix: str):
        self.redis = redis_client
        self.prefix = prefix

    def first_use(self, jkt: str, jti: str, window: int) -> bool:
        """Record the pair; ``True`` the first time it is seen within ``window`` seconds."""
        digest = hashlib.sha256(f"{jkt}\x00{jti}".encode()).hexdigest()
        return bool(self.redis.set(f"{self.prefix}dpop_jti:{digest}", 1, nx=True, ex=max(1, int(window))))


class ServerNonces:
    """Nonces a server hands out and checks without storing them (RFC 9449 §8, §9).

    A nonce is an HMAC of the current time slot with a secret every worker
    shares; the current and the previous slot's nonces are accepted, so a
    nonce lives between one and two ``lifetime`` periods.
    """

    def __init__(self, secret: bytes, lifetime: int = 60):
        self.secret = secret
        self.lifetime = lifetime

    def _for_slot(self, slot: int) -> str:
        return b64url(hmac.new(self.secret, str(slot).encode(), hashlib.sha256).digest()[:18])

    def current(self, now: float | None = None) -> str:
        """The nonce to send in ``DPoP-Nonce`` now."""
        return self._for_slot(int((time.time() if now is None else now) // self.lifetime))

    def is_valid(self, nonce: Any, now: float | None = None) -> bool:
        """Whether ``nonce`` is the current or the previous slot's nonce."""
        if not isinstance(nonce, str):
            return False
        slot = int((time.time() if now is None else now) // self.lifetime)
        return any(hmac.compare_digest(nonce, self._for_slot(s)) for s in (slot, slot - 1))


#: The members that make up a public EC or RSA key (RFC 7518 §6.2.1, §6.3.1).
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e")


@functools.lru_cache(maxsize=1024)
def _imported(members: tuple) -> tuple:
    """A proof's public key and its thumbprint, made once per key: a client signs every proof with one key."""
    key = JWKRegistry.import_key({n: v for n, v in zip(_PUBLIC_MEMBERS, members, strict=True) if v})
    return key, key.thumbprint()


def _public_key(header: Mapping[str, Any], alg: str):
    """The proof's key (RFC 9449 §4.3 steps 6-7): public, of the type ``alg`` needs; and its thumbprint."""
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidProof("The proof's header carries no public key (jwk).", check="jwk")
    if PRIVATE_MEMBERS & jwk.keys():
        # §4.3 step 7: a jwk with a private part is refused, never used.
        raise InvalidProof("The proof's jwk contains a private or symmetric key.", check="jwk")
    kty, crv = _KEY_TYPES[alg]
    if jwk.get("kty") != kty or (crv and jwk.get("crv") != crv):
        raise InvalidProof(f"The proof's jwk is not a key for {alg}.", check="jwk")
    try:
        # Only the public members: kid, alg, use or key_ops mean nothing here.  (A member that is
        # not a string cannot be a cache key: TypeError, refused like any other bad key.)
        key, thumbprint = _imported(tuple(jwk.get(name) for name in _PUBLIC_MEMBERS))
    except (JoseError, ValueError, TypeError):
        raise InvalidProof("The proof's jwk is not a valid public key.", check="jwk") from None
    if kty == "RSA" and key.raw_value.key_size < 2048:
        raise InvalidProof("The proof's RSA key is shorter than 2048 bits.", check="jwk")
    return key, thumbprint


def _signed_proof(proof: Any, algorithms: tuple[str, ...]):
    """Parse the proof and check its header (RFC 9449 §4.3 steps 2-5); verify its signature (step 6)."""
    if not isinstance(proof, str) or not proof:
        raise InvalidProof("The request has no DPoP proof.", check="format")
    try:
        signed = extract_jws(proof, MAX_PROOF_LENGTH)
    except InvalidToken as exc:
        raise InvalidProof(f"The DPoP proof is not a well-formed JWT: {exc}", check="format") from None
    header = signed.headers()
    if header.get("typ") != PROOF_TYPE:
        raise InvalidProof(f"The proof's typ is not {PROOF_TYPE}.", check="typ")
    alg = header.get("alg")
    if alg not in algorithms:
        # none and HS* are never in the allow-list (§4.3 step 5).
        raise InvalidProof(
            f"The proof's algorithm {alg!r} is not accepted (accepted: {', '.join(algorithms)}).", check="alg"
        )
    key, thumbprint = _public_key(header, alg)
    try:
        verified = jws.validate_compact(signed, key, registry=registry_for(alg))
    except JoseError:
        verified = False
    if not verified:
        raise InvalidProof("The proof's signature does not verify with its own key.", check="signature")
    try:
        claims = json_object(signed.payload)
    except ValueError:
        claims = None
    if not isinstance(claims, dict):
        raise InvalidProof("The proof's payload is not a JSON object.", check="format")
    return header, claims, thumbprint


def verify_proof(
    proof: Any,
    *,
    method: str,
    url: str,
    replay: RedisReplayCache,
    leeway: int,
    algorithms: Iterable[str] = PROOF_ALGORITHMS,
    access_token: str | None = None,
    expected_jkt: str | None = None,
    nonces: ServerNonces | None = None,
    now: float | None = None,
) -> VerifiedProof:
    """Check one DPoP proof for one request, every step of RFC 9449 §4.3, cheapest first.

    :param method: the request's method as received (``htm``).
    :param url: the request's public URL (behind a proxy, the URL the client
        used); its query and fragment are ignored (``htu``).
    :param replay: where used ``jti`` values are kept for the window.
    :param leeway: seconds ``iat`` may be from now, each way; the window (at least
        :data:`MIN_PROOF_WINDOW`).
    :param access_token: the token presented with the proof: ``ath`` must be its hash (§7.1).
    :param expected_jkt: the token's ``cnf.jkt``: the proof's key must be that key (§7.1).
    :param nonces: the server's nonces, when it demands one (§8, §9).
    :raises InvalidProof: with the error code to answer.
    """
    leeway = max(leeway, MIN_PROOF_WINDOW)
    allowed = tuple(alg for alg in algorithms if alg in PROOF_ALGORITHMS)
    header, claims, jkt = _signed_proof(proof, allowed)
    if claims.get("htm") != method.upper():
        raise InvalidProof("The proof's htm is not this request's method.", check="htm")
    htu = claims.get("htu")
    if not isinstance(htu, str) or "?" in htu or "#" in htu or htu_of(htu) != htu_of(url):
        raise InvalidProof("The proof's htu is not this request's URL.", check="htu")
    now = time.time() if now is None else now
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or abs(now - iat) > leeway:
        raise InvalidProof("The proof's iat is not within the accepted window of now.", check="iat")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
        raise InvalidProof("The proof has no usable jti.", check="jti")
    if access_token is not None and not hmac.compare_digest(
        str(claims.get("ath", "")), access_token_hash(access_token)
    ):
        raise InvalidProof("The proof's ath is not the hash of the access token it came with.", check="ath")
    if expected_jkt is not None and not hmac.compare_digest(jkt, str(expected_jkt)):
        raise InvalidProof(
            "The proof is signed by another key than the one the token is bound to.", check="jkt"
        )
    if nonces is not None and not nonces.is_valid(claims.get("nonce"), now):
        raise InvalidProof(
            "The proof lacks the server's current nonce.", check="nonce", error="use_dpop_nonce"
        )
    # Last, so that a proof refused above does not use up its jti.
    if not replay.first_use(jkt, jti, 2 * leeway):
        raise InvalidProof("The proof's jti was already used: a replayed proof.", check="jti")
    return VerifiedProof(jkt=jkt, header=header, claims=claims)


def proof_from_headers(headers: Mapping[str, str]) -> str | None:
    """The request's single ``DPoP`` header (RFC 9449 §4.3 step 1: more than one is refused)."""
    values = headers.getlist("DPoP") if hasattr(headers, "getlist") else [headers.get("DPoP")]
    values = [value for value in values if value is not None]
    if len(values) > 1:
        raise InvalidProof("The request carries more than one DPoP header.", check="format")
    return values[0] if values else None
