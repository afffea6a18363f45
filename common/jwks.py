"""The issuer's signing keys (JWKS, RFC 7517) and JWT signature checks (RFC 7515, RFC 7519).

Used by every client (ID tokens, OpenID Connect Core 3.1.3.7) and by the
resource server (access tokens, RFC 9068 §4).  Three rules, from DESIGN.md
and RFC 8725 (JWT Best Current Practices):

* **algorithms are pinned locally** (RFC 8725 §3.1): the caller says which
  algorithms it accepts; the token's ``alg`` header only selects among them.
  ``none`` and every HMAC algorithm are refused outright, so an attacker
  cannot "sign" a token with the issuer's *public* key as an HMAC secret;
* **keys come only from the issuer's JWKS**: ``jku``, ``x5u``, ``jwk`` and
  ``x5c`` headers, which would let the token name its own key, are ignored
  (RFC 8725 §3.10);
* **the JWKS is cached with an expiry**, an unknown ``kid`` (a key rotation)
  triggers at most one refetch per cool-down, and an unreachable JWKS
  endpoint leaves the cached keys working.

Public API (contract): :class:`KeySet`, :func:`decode_jwt`, :class:`InvalidToken`.
Additions: :func:`check_registered_claims` (``iss``/``aud``/``exp``/``iat``/``nbf``
checks shared by ID tokens and access tokens), :class:`KeysUnavailable`,
:data:`SAFE_ALGORITHMS`, :func:`negotiate_algorithms`, :func:`token_hash`
(``at_hash``/``c_hash``), :func:`b64url_json`, :func:`b64url_decode` (strict,
canonical base64url), :func:`make_verifier` and :meth:`KeySet.verifier_for`
(the signature check of one key and algorithm, built once and cached).
``KeySet`` takes an optional ``clock=`` (a monotonic clock, for tests) and
``max_keys=``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.errors import JoseError
from joserfc.jwk import import_key

from .http import IssuerUnreachable, get_json, http_session

log = logging.getLogger(__name__)

#: Asymmetric algorithms this suite is willing to accept at all.  A caller
#: narrows this further (RS256 only by default).  ``none`` and ``HS*`` are
#: never in here and never will be.
SAFE_ALGORITHMS = ("RS256", "PS256", "ES256")

#: The key type (and curve) each accepted algorithm needs (RFC 7518 §3.1).
_ALG_KEY = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
}

class InvalidToken(Exception):
    """A JWT failed a check.

    :param reason: one human sentence (safe to show: it never contains the token).
    :param check: the name of the failed check (``signature``, ``alg``, ``iss`` ...).
    :param checks: the checks run so far, as ``{"check", "ok", "detail"}`` dicts,
        the failed one last (for the flow inspector).
    """

    def __init__(self, reason: str, *, check: str = "token", checks: list[dict] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.check = check
        self.checks = list(checks) if checks else [{"check": check, "ok": False, "detail": reason}]


class KeysUnavailable(InvalidToken):
    """The JWKS could not be fetched and no cached key fits.

    A subclass of :class:`InvalidToken` so that a caller that only knows
    ``InvalidToken`` still refuses the token; callers that care (the OIDC
    client, the resource server) can answer "issuer unreachable" instead.
    """


#: Longest encoded JWS header accepted (characters).  A real header
#: (``alg``, ``kid``, ``typ``) is well under 200; the cap keeps JSON nesting
#: too shallow to exhaust the parser's recursion limit (see :func:`b64url_json`).
MAX_HEADER_SEGMENT = 2048

#: Decoded JWS headers by their encoded segment.  Every token an issuer signs
#: with one key starts with the same header bytes (Okta's are
#: ``{"kid":"…","alg":"RS256"}``), so a resource server decodes each distinct
#: header once instead of once per token.  Only what decoded to a JSON object
#: is kept, the ``alg``/``kid``/``crit`` checks still run on every token, and
#: the cache is cleared when full, so made-up headers cannot grow it.
_HEADER_CACHE: dict[str, dict] = {}
_HEADER_CACHE_SIZE = 64


#: base64url's two URL-safe characters, mapped to the standard alphabet's.
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")

#: The characters that may end a segment whose length leaves a remainder of
#: 2 or 3 when divided by 4: the unused low bits of the last character must be
#: zero (RFC 4648 §3.5), so that every byte string has exactly one encoding.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_PADDING = {0: b"", 2: b"==", 3: b"="}


def b64url_decode(segment: str) -> bytes:
    """Decode one base64url segment strictly (RFC 7515 §2, RFC 4648 §5).

    Only ``[A-Za-z0-9_-]``, no ``=`` padding, no whitespace, and only the
    canonical encoding: a length of 4n+1 is impossible, and the last
    character may not carry stray bits.  So a token has exactly one
    spelling, and appended garbage is refused rather than silently dropped.

    :raises ValueError: (``binascii.Error`` or ``UnicodeEncodeError``) the
        segment is not canonical base64url.
    """
    # "+", "/" and "=" would pass the standard-alphabet decoder below, so
    # they are refused first; every other stray character (non-ASCII,
    # whitespace, "!") makes encode() or strict_mode raise.
    if "+" in segment or "/" in segment or "=" in segment:
        raise binascii.Error("not base64url")
    remainder = len(segment) % 4
    if remainder and (remainder == 1 or segment[-1] not in _CANONICAL_LAST[remainder]):
        raise binascii.Error("not canonical base64url")
    standard = segment.encode("ascii").translate(_TO_STANDARD_ALPHABET) + _PADDING[remainder]
    return binascii.a2b_base64(standard, strict_mode=True)


def _json_object(raw: bytes) -> Any:
    """``json.loads`` of UTF-8 (RFC 7515 §2), with deep nesting as ``ValueError``."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        # "[[[[…]]]]" a few thousand levels deep fits in a token of 8 KiB, and
        # json.loads answers it with RecursionError, which is not a
        # ValueError: uncaught, a forged token would turn into a 500 instead
        # of a 401 (RFC 6750 §3.1 invalid_token).
        raise ValueError("JSON nested too deeply") from None


def b64url_json(segment: str, *, max_length: int | None = None) -> Any:
    """Decode one base64url JSON segment of a compact JWS.

    :param segment: the base64url text (RFC 7515 §2, no padding; see :func:`b64url_decode`).
    :param max_length: when given, longer segments are refused before decoding.
    :raises ValueError: the segment is too long, not base64url, not UTF-8 or
        not JSON, including JSON nested so deeply that the parser gives up.
    """
    if max_length is not None and len(segment) > max_length:
        raise ValueError(f"segment longer than {max_length} characters")
    return _json_object(b64url_decode(segment))


def negotiate_algorithms(advertised: Iterable[str] | None, allowed: Iterable[str] = ("RS256",)) -> tuple[str, ...]:
    """The algorithms to accept: our local allow-list, narrowed by what the issuer advertises.

    RS256 is the OpenID Connect default (Core 15.1) and is always accepted when
    allowed locally; any other algorithm must be in *both* lists, so discovery
    alone can never widen what we accept (RFC 8725 §3.1).

    :param advertised: ``id_token_signing_alg_values_supported`` from discovery.
    :param allowed: the local allow-list (a subset of :data:`SAFE_ALGORITHMS`).
    :return: the algorithms to pass to :func:`decode_jwt`.
    """
    allowed = [alg for alg in allowed if alg in SAFE_ALGORITHMS]
    advertised = set(advertised or ())
    return tuple(alg for alg in allowed if alg == "RS256" or alg in advertised)


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` of a token (OpenID Connect Core 3.1.3.6, 3.3.2.11).

    The left-most half of the hash of the ASCII token, base64url-encoded, where
    the hash is the one the ID token's ``alg`` uses (SHA-256 for ``RS256``).

    :param value: the access token (or code).
    :param alg: the ID token's ``alg`` header.
    """
    bits = alg[-3:]
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}.get(bits)
    if digest is None:
        raise InvalidToken(f"Cannot compute a token hash for alg {alg!r}.", check="at_hash")
    try:
        # OpenID Connect Core 3.1.3.6 hashes "the octets of the ASCII
        # representation"; a token is ASCII by definition (RFC 6749
        # Appendix A.12, VSCHAR).  Anything else cannot match an issuer's
        # at_hash, and must fail as a refused token, not a UnicodeEncodeError.
        octets = value.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise InvalidToken("The token is not an ASCII string, so its hash cannot match.", check="at_hash") from None
    raw = digest(octets).digest()
    return base64.urlsafe_b64encode(raw[: len(raw) // 2]).rstrip(b"=").decode("ascii")


#: Signature verifier of one (key, alg): ``verify(signature, signing_input)``,
#: raising ``cryptography.exceptions.InvalidSignature`` when it does not verify.
Verifier = Callable[[bytes, bytes], None]

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def make_verifier(alg: str, public_key: Any) -> Verifier:
    """A signature check for ``alg`` with a ``cryptography`` public key (RFC 7518 §3).

    Built once per key and algorithm and kept by :class:`KeySet`, so that a
    token costs one hash and one public-key operation and nothing else.

    * ``RS*``: RSASSA-PKCS1-v1_5 (§3.3);
    * ``PS*``: RSASSA-PSS with MGF1 of the same hash, and a salt exactly as
      long as the hash output (§3.5: "MUST");
    * ``ES*``: the JWS signature is ``R || S``, each exactly as long as the
      curve's order (§3.4), re-encoded as the DER that ``cryptography`` verifies;
      any other length is refused.

    :param alg: an algorithm of :data:`_ALG_KEY` (never ``none`` or ``HS*``).
    :param public_key: an RSA or EC public key matching ``alg`` (the caller checked the type).
    """
    hash_alg = _HASHES[alg[2:]]()
    if alg.startswith("RS"):
        pkcs1 = padding.PKCS1v15()

        def verify(signature: bytes, signing_input: bytes) -> None:
            public_key.verify(signature, signing_input, pkcs1, hash_alg)
    elif alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)

        def verify(signature: bytes, signing_input: bytes) -> None:
            public_key.verify(signature, signing_input, pss, hash_alg)
    elif alg.startswith("ES"):
        size = (public_key.curve.key_size + 7) // 8
        ecdsa = ECDSA(hash_alg)

        def verify(signature: bytes, signing_input: bytes) -> None:
            if len(signature) != 2 * size:
                raise InvalidSignature("ECDSA signature of the wrong length")
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public_key.verify(encode_dss_signature(r, s), signing_input, ecdsa)
    else:  # pragma: no cover - _ALG_KEY lists only the three families
        raise ValueError(f"unsupported algorithm {alg!r}")
    return verify


class KeySet:
    """The issuer's JSON Web Key Set, fetched on demand and cached.

    :param jwks_uri: the issuer's ``jwks_uri`` (from discovery).
    :param http: a session with a timeout (:func:`common.http.http_session`).
    :param ttl: seconds a fetched JWKS is fresh.  After that the next lookup
        refetches; if that fails, the old keys keep working.
    :param refetch_cooldown: minimum seconds between two refetches caused by
        an unknown ``kid``, so that tokens with random ``kid`` values cannot
        turn us into a flood against the issuer.
    :param clock: a monotonic clock (tests pass a fake one).
    :param max_keys: keys beyond this many are ignored.
    """

    def __init__(self, jwks_uri: str, *, http: requests.Session | None = None, ttl: float = 300,
                 refetch_cooldown: float = 30, clock: Callable[[], float] = time.monotonic, max_keys: int = 50):
        self.jwks_uri = jwks_uri
        self.http = http or http_session()
        self.ttl = ttl
        self.refetch_cooldown = refetch_cooldown
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._keys: list[tuple[dict, Any]] = []  # (public JWK dict, joserfc key)
        #: (kid, alg) -> verifier, for keys found in ``_keys``; emptied
        #: whenever ``_keys`` is replaced, so it never outlives a rotation.
        self._verifiers: dict[tuple[str | None, str], Verifier] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not

    # -- fetching -------------------------------------------------------------

    def _fetch(self) -> None:
        """Fetch the JWKS now; on failure keep what we have (caller holds the lock)."""
        self._attempted_at = self.clock()
        try:
            document = get_json(self.http, self.jwks_uri, "key set (jwks_uri)")
        except IssuerUnreachable as exc:
            log.warning("JWKS fetch from %s failed: %s; keeping %d cached key(s)", self.jwks_uri, exc.description, len(self._keys))
            if not self._keys:
                raise KeysUnavailable(
                    f"The issuer's signing keys could not be fetched: {exc.description}", check="signature"
                ) from None
            return
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            log.warning("JWKS at %s has no 'keys' list; keeping cached keys", self.jwks_uri)
            if not self._keys:
                raise KeysUnavailable("The issuer's key set has no 'keys' list.", check="signature")
            return
        keys = []
        for jwk in raw_keys[: self.max_keys]:
            imported = self._import(jwk)
            if imported is not None:
                keys.append(imported)
        self._keys = keys
        self._verifiers = {}
        self._fetched_at = self._attempted_at

    @staticmethod
    def _import(jwk: Any) -> tuple[dict, Any] | None:
        """Import one JWK if it is a public signing key we can use; else ``None``."""
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC"):
            return None  # symmetric ("oct") keys are never used: no HMAC, ever
        if jwk.get("use", "sig") != "sig":
            return None
        # Keep only public members, whatever the issuer published.
        public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            key = import_key(public, public["kty"])
            # A key whose key_ops exclude "verify" is not for us (RFC 7517
            # §4.3); asking for the verify key now refuses it once, here.
            key.get_op_key("verify")
            return public, key
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("ignoring unusable JWK kid=%r: %s", jwk.get("kid"), exc)
            return None

    def _ensure_fresh(self) -> None:
        now = self.clock()
        if self._fetched_at is None:
            # Never fetched successfully: try, but not more than once per
            # short back-off while the endpoint is failing.
            backoff = min(self.refetch_cooldown, 5)
            if self._attempted_at is None or now - self._attempted_at >= backoff:
                self._fetch()
            elif not self._keys:
                raise KeysUnavailable("The issuer's signing keys are not available yet.", check="signature")
        elif now - self._fetched_at >= self.ttl and now - (self._attempted_at or 0) >= min(self.refetch_cooldown, 5):
            self._fetch()

    def refresh(self) -> None:
        """Fetch the JWKS now (ignores expiry and cool-down)."""
        with self._lock:
            self._fetch()

    def keys(self) -> list[dict]:
        """The cached public JWKs (fetching them first if needed)."""
        with self._lock:
            self._ensure_fresh()
            return [jwk for jwk, _ in self._keys]

    # -- lookup ---------------------------------------------------------------

    def _find(self, kid: str | None, alg: str | None) -> Any | None:
        kty, crv = _ALG_KEY.get(alg, (None, None)) if alg else (None, None)
        candidates = []
        for jwk, key in self._keys:
            if kid is not None and jwk.get("kid") != kid:
                continue
            if kty and jwk.get("kty") != kty:
                continue
            if crv and jwk.get("crv") != crv:
                continue
            if alg and jwk.get("alg") not in (None, alg):
                continue
            candidates.append(key)
        if kid is None:
            # Without a kid only an unambiguous key set will do.
            return candidates[0] if len(candidates) == 1 else None
        return candidates[0] if candidates else None

    def _lookup(self, kid: str | None, alg: str | None) -> Any:
        """:meth:`_find`, refetching once per cool-down on a miss (caller holds the lock)."""
        key = self._find(kid, alg)
        if key is not None:
            return key
        # An unknown kid is what a key rotation looks like from here
        # (OpenID Connect Core 10.1.1): refetch, but at most once per
        # cool-down so that made-up kids cannot flood the issuer.
        now = self.clock()
        if self._attempted_at is None or now - self._attempted_at >= self.refetch_cooldown:
            self._fetch()
            key = self._find(kid, alg)
            if key is not None:
                return key
        raise InvalidToken(
            f"No signing key with kid {kid!r} in the issuer's key set." if kid is not None
            else "The token has no kid and the issuer's key set does not have exactly one fitting key.",
            check="kid",
        )

    def verifier_for(self, kid: str | None, alg: str) -> Verifier:
        """The signature check for a token with this ``kid`` and ``alg`` (see :func:`make_verifier`).

        The key is looked up by ``kid`` (``None``: only if the set has exactly
        one fitting key), refetching the set at most once per cool-down; the
        verifier of a found key is kept until the key set next changes.

        :param alg: the token's ``alg``, already checked against the caller's allow-list.
        :raises InvalidToken: no such key, even after a refetch.
        :raises KeysUnavailable: the JWKS could not be fetched and nothing is cached.
        """
        with self._lock:
            self._ensure_fresh()
            verifier = self._verifiers.get((kid, alg))
            if verifier is None:
                key = self._lookup(kid, alg)
                verifier = make_verifier(alg, key.get_op_key("verify"))
                self._verifiers[(kid, alg)] = verifier
            return verifier


def decode_jwt(token: str, keyset: KeySet, *, algorithms: Iterable[str] = ("RS256",),
               max_length: int = 8192) -> tuple[dict, dict]:
    """Verify a compact JWS signature with the issuer's keys and return header and claims.

    Only the signature is checked here (RFC 7515 §5.2); claims are checked by
    :func:`check_registered_claims` and by the caller.

    :param token: the compact serialization ``header.payload.signature``.
    :param keyset: the issuer's :class:`KeySet`.
    :param algorithms: accepted ``alg`` values; ``none`` and ``HS*`` are removed even if given.
    :param max_length: tokens longer than this are refused before any parsing or crypto.
    :return: ``(header, claims)``.
    :raises InvalidToken: with a human reason.
    """
    if not isinstance(token, str) or not token:
        raise InvalidToken("No token was given.", check="format")
    if len(token) > max_length:
        raise InvalidToken(f"The token is {len(token)} characters long; at most {max_length} are accepted.", check="size")
    parts = token.split(".")
    if len(parts) != 3:
        # Five parts would be an encrypted JWT (JWE); nothing here issues those.
        raise InvalidToken("The token is not a signed JWT (it does not have three dot-separated parts).", check="format")
    if len(parts[0]) > MAX_HEADER_SEGMENT:
        # Capped before parsing: the whole-token cap alone still lets a
        # header nest JSON deeply enough to exhaust the parser's recursion.
        raise InvalidToken(f"The token header is longer than {MAX_HEADER_SEGMENT} characters.", check="format")
    header = _HEADER_CACHE.get(parts[0])
    if header is None:
        try:
            header = b64url_json(parts[0])
        except ValueError:  # binascii.Error, UnicodeError and JSONDecodeError are ValueErrors
            raise InvalidToken("The token header is not base64url-encoded JSON.", check="format") from None
        if not isinstance(header, dict):
            raise InvalidToken("The token header is not a JSON object.", check="format")
        if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[parts[0]] = header
    header = dict(header)  # the caller's own copy: the cached one is never handed out

    allowed = [alg for alg in algorithms if alg in _ALG_KEY]  # never none, never HS*
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise InvalidToken(f"The token's algorithm {alg!r} is not accepted (accepted: {', '.join(allowed)}).", check="alg")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("The token's kid is not a string.", check="kid")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so must refuse.
        raise InvalidToken("The token carries critical header extensions we do not understand.", check="format")

    # jku / x5u / jwk / x5c are deliberately not consulted: the key comes from
    # the issuer's JWKS only, looked up by kid (RFC 8725 §3.10).
    verify = keyset.verifier_for(kid, alg)
    # The signing input is the first two segments exactly as received
    # (RFC 7515 §5.2 step 8); both passed the base64url alphabet check, so
    # they are ASCII.  The header is not parsed a second time.
    try:
        payload = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
        verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise InvalidToken(f"The token's signature does not verify ({type(exc).__name__}).", check="signature") from None
    try:
        claims = _json_object(payload)
    except ValueError:
        # Includes deeply nested JSON (see b64url_json), even when signed.
        raise InvalidToken("The token's payload is not JSON.", check="format") from None
    if not isinstance(claims, dict):
        raise InvalidToken("The token's payload is not a JSON object.", check="format")
    return header, claims


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _failed(checks: list[dict], check: str, reason: str):
    """Raise :class:`InvalidToken` for ``check``, after the ``checks`` that passed."""
    raise InvalidToken(reason, check=check, checks=checks + [{"check": check, "ok": False, "detail": reason}])


def check_registered_claims(claims: Mapping[str, Any], *, issuer: str, audience: str | Iterable[str] | None,
                            leeway: float, now: float | None = None,
                            require: Iterable[str] = ("iss", "aud", "exp", "iat"), explain: bool = True) -> list[dict]:
    """Check the registered claims shared by ID tokens and access tokens (RFC 7519 §4.1).

    * ``iss`` must equal ``issuer`` exactly (OpenID Connect Core 3.1.3.7 step 2;
      no trailing-slash or case folding);
    * ``aud`` (a string or a list) must contain ``audience`` (step 3; RFC 9068 §4);
    * ``exp`` must be in the future, ``nbf`` and ``iat`` not in the future,
      each with ``leeway`` seconds for clock skew (steps 9 and 10).

    :param claims: the verified claims.
    :param issuer: the configured issuer identifier.
    :param audience: the audience we must find (client id, or ``API_AUDIENCE``);
        an iterable accepts any of several; ``None`` skips the check.
    :param leeway: clock skew allowance in seconds (``Settings.clock_leeway``).
    :param now: the current time (epoch seconds), for tests.
    :param require: claims that must be present.
    :param explain: ``False`` runs exactly the same checks but does not write
        the passed ones up (the resource server, which never shows them,
        checks every new token); a failure is explained either way.
    :return: the checks passed, as ``{"check", "ok", "detail"}`` dicts (empty
        when ``explain`` is false).
    :raises InvalidToken: naming the first failed check; ``.checks`` lists those before it.
    """
    now = time.time() if now is None else now
    checks: list[dict] = []

    for name in require:
        if name not in claims:
            _failed(checks, name, f"The token has no {name!r} claim.")

    if "iss" in claims or "iss" in require:
        if claims.get("iss") != issuer:
            _failed(checks, "iss", f"The token was issued by {claims.get('iss')!r}, not by the configured issuer {issuer!r}.")
        if explain:
            checks.append({"check": "iss", "ok": True, "detail": "issuer is exactly the configured issuer"})

    if audience is not None:
        wanted = (audience,) if isinstance(audience, str) else tuple(audience)
        aud = claims.get("aud")
        if isinstance(aud, str):
            found = aud in wanted
        elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
            found = any(a in wanted for a in aud)
        else:
            _failed(checks, "aud", "The token's audience (aud) is missing or malformed.")
        if not found:
            audiences = [aud] if isinstance(aud, str) else aud
            _failed(checks, "aud", f"The token is meant for {audiences!r}, not for {sorted(set(wanted))!r}.")
        if explain:
            checks.append({"check": "aud", "ok": True, "detail": f"audience contains {' or '.join(sorted(set(wanted)))}"})

    if "exp" in claims:
        exp = claims["exp"]
        if not _is_number(exp):
            _failed(checks, "exp", "The token's expiry (exp) is not a number.")
        if now > exp + leeway:
            _failed(checks, "exp", f"The token expired {int(now - exp)} s ago (leeway {int(leeway)} s).")
        if explain:
            checks.append({"check": "exp", "ok": True, "detail": f"not expired (expires in {int(exp - now)} s)"})

    if "nbf" in claims:
        nbf = claims["nbf"]
        if not _is_number(nbf):
            _failed(checks, "nbf", "The token's not-before time (nbf) is not a number.")
        if nbf > now + leeway:
            _failed(checks, "nbf", f"The token is not valid for another {int(nbf - now)} s.")
        if explain:
            checks.append({"check": "nbf", "ok": True, "detail": "already valid (nbf)"})

    if "iat" in claims:
        iat = claims["iat"]
        if not _is_number(iat):
            _failed(checks, "iat", "The token's issue time (iat) is not a number.")
        if iat > now + leeway:
            _failed(checks, "iat", f"The token claims to be issued {int(iat - now)} s in the future (leeway {int(leeway)} s).")
        if explain:
            checks.append({"check": "iat", "ok": True, "detail": "issued in the past (iat)"})
    return checks
