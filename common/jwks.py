"""The issuer's signing keys (JWKS, RFC 7517) and JWT signature checks (RFC 7515, RFC 7519).

Used by every client (ID tokens, OpenID Connect Core 3.1.3.7) and by the
resource server (access tokens, RFC 9068 §4).  Parsing the compact JWS and
verifying its signature is joserfc's (``joserfc.jws``); what is ours is the
policy around it, from RFC 8725 (JWT Best Current Practices):

* **algorithms are pinned locally** (RFC 8725 §3.1): the caller says which
  algorithms it accepts; the token's ``alg`` header only selects among them.
  ``none`` and every HMAC algorithm are refused outright, so an attacker
  cannot "sign" a token with the issuer's *public* key as an HMAC secret;
* **keys come only from the issuer's JWKS**, chosen by ``kid``: ``jku``,
  ``x5u``, ``jwk`` and ``x5c`` headers, which would let the token name its own
  key, are never consulted (RFC 8725 §3.10);
* **the JWKS is cached with an expiry**, its keys imported once per fetch; an
  unknown ``kid`` (a key rotation) refetches at once the first time after a
  regular fetch, then at most once per cool-down, and an unreachable JWKS
  endpoint leaves the cached keys working (that cache,
  :class:`~common.keyset.KeySet`, is :mod:`common.keyset`);
* **hostile input is bounded**: the token and its header are size-capped
  before parsing, and JSON nested deeply enough to exhaust the parser is a
  refused token, never an uncaught ``RecursionError``; so are ``NaN`` and
  ``Infinity``, which are not JSON (RFC 8259 §6).

Public API: :func:`decode_jwt`, :data:`SAFE_ALGORITHMS`,
:func:`negotiate_algorithms`, :func:`token_hash` (``at_hash``/``c_hash``), the
strict decoders :func:`b64url_decode` and :func:`b64url_json` (also used by
the flow inspector to display tokens); re-exported from :mod:`common.keyset`,
:class:`KeySet` and :class:`KeysUnavailable`; and, re-exported from
:mod:`common.jwt_claims`, :class:`InvalidToken` and
:func:`check_registered_claims` (``iss``/``aud``/``exp``/``iat``/``nbf``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any, Iterable

from joserfc import jws
from joserfc.errors import JoseError, MissingAlgorithmError
from joserfc.util import urlsafe_b64decode

from .jwt_claims import InvalidToken, check_registered_claims
from .keyset import ALGORITHM_KEY_TYPES, KeySet, KeysUnavailable

__all__ = [
    "KeySet",
    "decode_jwt",
    "InvalidToken",
    "KeysUnavailable",
    "check_registered_claims",
    "SAFE_ALGORITHMS",
    "MAX_HEADER_SEGMENT",
    "negotiate_algorithms",
    "token_hash",
    "b64url_decode",
    "b64url_json",
    "extract_jws",
    "registry_for",
    "json_object",
]

#: Asymmetric algorithms this suite is willing to accept at all.  A caller
#: narrows this further (RS256 only by default).  ``none`` and ``HS*`` are
#: never in here and never will be.
SAFE_ALGORITHMS = ("RS256", "PS256", "ES256")

#: Longest encoded JWS header accepted (characters).  A real header
#: (``alg``, ``kid``, ``typ``) is well under 200; the cap is checked before
#: anything is decoded, so a hostile header costs nothing to refuse.
MAX_HEADER_SEGMENT = 2048


# -- strict decoding -----------------------------------------------------------------------------------


def b64url_decode(segment: str) -> bytes:
    """Decode one base64url segment strictly (RFC 7515 §2, RFC 4648 §5), with joserfc's decoder.

    Only ``[A-Za-z0-9_-]``, no ``=`` padding, no whitespace, and only the
    canonical encoding (RFC 4648 §3.5: a length of 4n+1 is impossible, and
    the last character may not carry stray bits).  So a token has exactly
    one spelling, and appended garbage is refused rather than dropped.

    :raises ValueError: (``binascii.Error`` or ``UnicodeEncodeError``) not canonical base64url.
    """
    return urlsafe_b64decode(segment.encode("ascii"))


def _refuse_constant(name: str) -> Any:
    """``json.loads``' ``parse_constant``: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise ValueError(f"{name} is not a JSON number (RFC 8259 §6)")


def _finite_float(text: str) -> float:
    """``json.loads``' ``parse_float``: a number beyond a double's range (``1e400``) is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range (RFC 8259 §6)")
    return value


#: The strict JSON decoder of :func:`_json_value`, built once (it keeps no state between calls).
_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _json_value(raw: bytes) -> Any:
    """``json.loads`` of UTF-8 (RFC 7515 §2, RFC 7519 §7.2), strictly.

    RFC 8259 §6: "Numeric values that cannot be represented ... (such as
    Infinity and NaN) are not permitted"; Python's parser accepts them, and
    ``exp: NaN`` would compare false with every time, so it would never
    expire.  Refused here, as is JSON nested deeply enough to exhaust the
    parser, each as ``ValueError``.
    """
    try:
        # One decoder for every call: json.loads with hooks would build a new
        # decoder (and its scanner) per token; the result is the same.
        return _STRICT_JSON.decode(raw.decode("utf-8"))
    except RecursionError:
        # "[[[[…]]]]" a thousand levels deep fits in a token of 8 KiB, and
        # json.loads answers it with RecursionError, which is not a
        # ValueError: uncaught, a forged token would turn into a 500 instead
        # of a 401 (RFC 6750 §3.1 invalid_token).
        raise ValueError("JSON nested too deeply") from None


def b64url_json(segment: str, *, max_length: int | None = None) -> Any:
    """Decode one base64url JSON segment of a compact JWS (see :func:`b64url_decode`).

    :param max_length: when given, longer segments are refused before decoding.
    :raises ValueError: the segment is too long, not base64url, not UTF-8 or
        not JSON, including JSON nested so deeply that the parser gives up.
    """
    if max_length is not None and len(segment) > max_length:
        raise ValueError(f"segment longer than {max_length} characters")
    return _json_value(b64url_decode(segment))


# -- algorithms and token hashes -------------------------------------------------------------------


def negotiate_algorithms(
    advertised: Iterable[str] | None, allowed: Iterable[str] = ("RS256",)
) -> tuple[str, ...]:
    """The algorithms to accept: our local allow-list, narrowed by what the issuer advertises.

    RS256 is the OpenID Connect default (Core 15.1) and is always accepted when
    allowed locally; any other algorithm must be in *both* lists, so discovery
    alone can never widen what we accept (RFC 8725 §3.1).

    :param advertised: ``id_token_signing_alg_values_supported`` from discovery.
    :param allowed: the local allow-list (a subset of :data:`SAFE_ALGORITHMS`).
    :return: the algorithms to pass to :func:`decode_jwt`.
    """
    allowed = [alg for alg in allowed if alg in SAFE_ALGORITHMS]
    # A malformed discovery value (a number, nested lists) counts as nothing advertised.
    advertised = (
        {alg for alg in advertised if isinstance(alg, str)} if isinstance(advertised, list) else set()
    )
    return tuple(alg for alg in allowed if alg == "RS256" or alg in advertised)


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` of a token (OpenID Connect Core 3.1.3.6, 3.3.2.11).

    The left-most half of the hash of the ASCII token, base64url-encoded, where
    the hash is the one the ID token's ``alg`` uses (SHA-256 for ``RS256``).

    :param value: the access token (or code).
    :param alg: the ID token's ``alg`` header.
    """
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}.get(alg[-3:])
    if digest is None:
        raise InvalidToken(f"Cannot compute a token hash for alg {alg!r}.", check="at_hash")
    try:
        # OpenID Connect Core 3.1.3.6 hashes "the octets of the ASCII
        # representation"; a token is ASCII by definition (RFC 6749
        # Appendix A.12, VSCHAR).  Anything else cannot match an issuer's
        # at_hash, and must fail as a refused token, not a UnicodeEncodeError.
        octets = value.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise InvalidToken(
            "The token is not an ASCII string, so its hash cannot match.", check="at_hash"
        ) from None
    raw = digest(octets).digest()
    return base64.urlsafe_b64encode(raw[: len(raw) // 2]).rstrip(b"=").decode("ascii")


def _pinned_registry(alg: str) -> jws.JWSRegistry:
    """A joserfc JWS registry that accepts exactly one algorithm (RFC 8725 §3.1).

    Unknown header parameters are ignored, not refused: RFC 7515 §4 says a
    parameter not understood MUST be ignored unless it is listed in ``crit``
    (which :func:`_check_header` refuses).  joserfc's header cap is raised to
    ours, so that a header it would refuse is one we refused first.
    """
    registry = jws.JWSRegistry(algorithms=(alg,), strict_check_header=False)
    registry.max_header_length = MAX_HEADER_SEGMENT
    # joserfc's default (1024 characters) would refuse RS256 signatures of
    # keys over 6144 bits, which RFC 7518 §3.3 allows; 16384-bit keys fit.
    registry.max_signature_length = 2752
    return registry


#: One registry per algorithm we can ever accept, built once.  Even a caller's
#: allow-list of several algorithms reaches joserfc as one: the one this
#: token's ``alg`` names, already checked against that list.
_REGISTRIES = {alg: _pinned_registry(alg) for alg in ALGORITHM_KEY_TYPES}


#: The reason given for a token joserfc cannot parse.
_MALFORMED = "The token's header is not base64url-encoded JSON, or its payload not base64url."

#: Header segments that passed :func:`_extract` (strict JSON, an ``alg``, joserfc's
#: size limits), with their decoded header.  Every token an issuer signs with one key
#: begins with the same segment (``{"kid":...,"alg":"RS256"}``), so a new token's
#: header is decoded once per key, not once per token.  Only plain headers (scalar
#: values, no RFC 7797 ``b64``) are kept; a few dozen cover every key of an issuer,
#: and a flood of made-up headers clears the table instead of growing it.
_known_headers: dict[str, dict] = {}
_KNOWN_HEADERS_SIZE = 64

# -- one token's signature -----------------------------------------------------------------------------


def _extract(token: Any, max_length: int) -> jws.CompactSignature:
    """Parse a compact JWS (joserfc), after our size caps; nothing is verified yet."""
    if not isinstance(token, str) or not token:
        raise InvalidToken("No token was given.", check="format")
    if len(token) > max_length:
        raise InvalidToken(
            f"The token is {len(token)} characters long; at most {max_length} are accepted.", check="size"
        )
    if token.count(".") != 2:
        # Five parts would be an encrypted JWT (JWE); nothing here issues those.
        raise InvalidToken(
            "The token is not a signed JWT (it does not have three dot-separated parts).", check="format"
        )
    if token.index(".") > MAX_HEADER_SEGMENT:
        # Capped before parsing: the whole-token cap alone would let a header
        # nest JSON deeply enough to exhaust the parser; a hostile header must
        # cost a 401 (RFC 6750 §3.1), not a worker's time.
        raise InvalidToken(
            f"The token header is longer than {MAX_HEADER_SEGMENT} characters.", check="format"
        )
    header_segment, payload_segment, signature_segment = token.split(".")
    header = _known_headers.get(header_segment)
    if header is not None:
        return _extract_known(header, header_segment, payload_segment, signature_segment)
    try:
        # Our strict decoder first: joserfc's header decoder is a bare
        # json.loads, which takes NaN and Infinity (RFC 8259 §6 refuses them).
        _json_value(b64url_decode(header_segment))
        # Every registry has the same size limits, the only part extract uses.
        signed = jws.extract_compact(token.encode("utf-8"), registry=_REGISTRIES["RS256"])
    except MissingAlgorithmError:
        raise InvalidToken("The token's header names no algorithm (alg).", check="alg") from None
    except (JoseError, ValueError, TypeError, RecursionError):
        # joserfc's header decoder is a bare json.loads: JSON nested deeply
        # enough raises RecursionError, and a JSON string for a header can
        # raise TypeError.  Either is a malformed token (RFC 6750 §3.1), not a 500.
        raise InvalidToken(_MALFORMED, check="format") from None
    _remember_header(header_segment, signed.headers())
    return signed


def _remember_header(segment: str, header: dict) -> None:
    """Remember a header segment that passed :func:`_extract`, if plain (see :data:`_known_headers`)."""
    plain = isinstance(header, dict) and "b64" not in header
    if plain and all(isinstance(value, (str, int, float, bool)) for value in header.values()):
        if len(_known_headers) >= _KNOWN_HEADERS_SIZE:
            _known_headers.clear()  # made-up headers can only evict, never grow the table
        _known_headers[segment] = dict(header)


def _extract_known(
    header: dict, header_segment: str, payload_segment: str, signature_segment: str
) -> jws.CompactSignature:
    """:func:`_extract` for a header segment seen before: what joserfc's extract does, but the header.

    The header segment is the same string that passed every check before,
    so it decodes to the same header; what a new token brings is its payload
    and signature, checked here as ``jws.extract_compact`` checks them (size
    limits, strict base64url), into the same ``CompactSignature``.
    """
    registry = _REGISTRIES["RS256"]  # every registry has the same size limits
    try:
        segments = {
            "header": header_segment.encode("ascii"),
            "payload": payload_segment.encode("utf-8"),
            "signature": signature_segment.encode("utf-8"),
        }
        registry.validate_signature_size(segments["signature"])
        registry.validate_payload_size(segments["payload"])
        payload = urlsafe_b64decode(segments["payload"])
    except (JoseError, ValueError):
        raise InvalidToken(_MALFORMED, check="format") from None
    # The caller's own copy of the header: the remembered one is shared.
    signed = jws.CompactSignature(dict(header), payload)
    signed.segments.update(segments)
    return signed


def _check_header(header: Any, allowed: tuple[str, ...]) -> tuple[str, str | None]:
    """The token's ``alg`` (from the caller's list) and ``kid``, before any key is looked up."""
    if not isinstance(header, dict):
        raise InvalidToken("The token header is not a JSON object.", check="format")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise InvalidToken(
            f"The token's algorithm {alg!r} is not accepted (accepted: {', '.join(allowed)}).", check="alg"
        )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("The token's kid is not a string.", check="kid")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so we must refuse.
        # joserfc would accept the ones it knows, RFC 7797's unencoded
        # payload ("b64": false) among them; no issuer signs tokens that way.
        raise InvalidToken(
            "The token carries critical header extensions we do not understand.", check="format"
        )
    return alg, kid


def decode_jwt(
    token: str, keyset: KeySet, *, algorithms: Iterable[str] = ("RS256",), max_length: int = 8192
) -> tuple[dict, dict]:
    """Verify a compact JWS signature with the issuer's keys and return header and claims.

    Only the signature is checked here (RFC 7515 §5.2); claims are checked by
    :func:`check_registered_claims` and by the caller.

    :param token: the compact serialization ``header.payload.signature``.
    :param keyset: the issuer's :class:`KeySet`.
    :param algorithms: accepted ``alg`` values; ``none`` and ``HS*`` are removed even if given.
    :param max_length: tokens longer than this are refused before any parsing or crypto.
    :return: ``(header, claims)``, the header the caller's own copy.
    :raises InvalidToken: with a human reason.
    """
    allowed = tuple(filter(ALGORITHM_KEY_TYPES.__contains__, algorithms))  # never none, never HS*
    signed = _extract(token, max_length)
    header = signed.headers()
    alg, kid = _check_header(header, allowed)
    # jku / x5u / jwk / x5c are deliberately not consulted: the key comes from
    # the issuer's JWKS only, looked up by kid (RFC 8725 §3.10).
    key = keyset.key_for(kid, alg)
    try:
        # RFC 7515 §5.2 steps 8-9: the signature over the segments as received.
        verified = jws.validate_compact(signed, key, registry=_REGISTRIES[alg])
    except JoseError as exc:
        # Not a wrong signature (that is False): a header value of the wrong
        # type, such as a jku that is not a URL (RFC 7515 §4.1).
        raise InvalidToken(f"The token header is malformed ({exc.error}).", check="format") from None
    if not verified:
        raise InvalidToken("The token's signature does not verify with the issuer's key.", check="signature")
    try:
        claims = _json_value(signed.payload)
    except ValueError:
        # Includes deeply nested JSON (see _json_value), even when signed.
        raise InvalidToken("The token's payload is not JSON.", check="format") from None
    if not isinstance(claims, dict):
        raise InvalidToken("The token's payload is not a JSON object.", check="format")
    return header, claims


# -- for other JWS checkers (DPoP proofs, common.dpop) ------------------------------------------------


def extract_jws(token: Any, max_length: int) -> jws.CompactSignature:
    """A compact JWS parsed under the same caps and strict decoding as tokens; nothing verified yet.

    :raises InvalidToken: for a malformed or oversized JWS.
    """
    return _extract(token, max_length)


def registry_for(alg: str) -> jws.JWSRegistry:
    """The joserfc registry that accepts exactly ``alg`` (one of :data:`ALGORITHM_KEY_TYPES`)."""
    return _REGISTRIES[alg]


def json_object(raw: bytes) -> Any:
    """Strict JSON (no NaN, bounded nesting) of a verified payload; raises ``ValueError``."""
    return _json_value(raw)
