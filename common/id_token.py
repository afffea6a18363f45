"""ID token validation, as OpenID Connect Core 3.1.3.7 asks.

The ID token says who signed in.  It is trusted only after every check
below, each recorded for the flow inspector with the token itself.
"""

from __future__ import annotations

import hmac

from .client import Client
from .errors import FlowError
from .http import IssuerUnreachable
from .jwks import InvalidToken, KeysUnavailable, check_registered_claims, decode_jwt, token_hash
from .untrusted import plain_text

#: Header ``typ`` values (lower case, without ``application/``) that say "access token":
#: RFC 9068 §2.1's ``at+jwt``.  Such a token is never an ID token.
ACCESS_TOKEN_TYP_VALUES = frozenset({"at+jwt"})


def validate_id_token(
    client: Client,
    id_token: str,
    *,
    nonce: str | None,
    access_token: str | None = None,
    require_at_hash: bool = False,
    expected_sub: str | None = None,
) -> dict:
    """Validate an ID token (OpenID Connect Core 3.1.3.7) and return its claims.

    Signature with the issuer's JWKS (pinned algorithms), not typed as an
    access token (``typ: at+jwt``, RFC 9068 §2.1), ``iss`` exact,
    ``aud`` contains our client id, ``azp`` when there are several audiences
    (and, when present, equal to our client id), ``exp``/``iat`` within
    ``CLOCK_LEEWAY``, ``nonce`` equal to the one we sent, ``at_hash``
    (3.2.2.9 / 3.3.2.11) when present.

    :param id_token: the compact JWT.
    :param nonce: the nonce we sent; ``None`` when there was none (refresh, password grant).
    :param access_token: the access token issued with it, for ``at_hash``.
    :param require_at_hash: ``at_hash`` must be present (implicit ``id_token token``).
    :param expected_sub: the subject the session already has (refresh, OIDC Core 12.2).
    :raises FlowError: ``invalid_id_token`` (or ``issuer_unreachable`` when keys cannot be fetched).
    """
    checks: list[dict] = []
    try:
        header, claims = _verify_signature(client, id_token, checks)
        _check_claims(
            client,
            header,
            claims,
            checks,
            nonce=nonce,
            access_token=access_token,
            require_at_hash=require_at_hash,
            expected_sub=expected_sub,
        )
    except KeysUnavailable as exc:
        raise _keys_unreachable(client, id_token, checks, exc) from None
    except InvalidToken as exc:
        raise _rejected(client, id_token, checks, exc) from None
    client.recorder.token("id_token", id_token, checks)
    return claims


def _verify_signature(client: Client, id_token: str, checks: list[dict]) -> tuple[dict, dict]:
    """Steps 6-8: the JWS signature, with the issuer's JWKS and our pinned algorithms; header and claims.

    Appends the passed ``signature`` check to ``checks``.

    :raises InvalidToken: the signature does not verify (or the token is malformed).
    :raises KeysUnavailable: the issuer's key set could not be fetched.
    """
    header, claims = decode_jwt(
        id_token, client.issuer.keyset, algorithms=client.issuer.id_token_algorithms()
    )
    checks.append(
        {
            "check": "signature",
            "ok": True,
            "detail": f"{header['alg']} signature verified with the issuer's key {header.get('kid')!r}",
        }
    )
    return header, claims


def _keys_unreachable(
    client: Client, id_token: str, checks: list[dict], exc: KeysUnavailable
) -> IssuerUnreachable:
    """The error to raise when the keys could not be fetched, recorded with the token for the inspector."""
    # Not the token's fault: the keys could not be fetched, so this is
    # "try again later", not "this token is forged".
    checks.append({"check": "signature", "ok": False, "detail": exc.reason})
    error = IssuerUnreachable(exc.reason, "The issuer's key set (jwks_uri) is not reachable; try again.")
    client.recorder.token("id_token", id_token, checks, error)
    return error


def _rejected(client: Client, id_token: str, checks: list[dict], exc: InvalidToken) -> FlowError:
    """The ``invalid_id_token`` error to raise for a failed check, recorded with the token and its checks."""
    # exc.checks holds the failed check (and, from check_registered_claims, those before it).
    error = FlowError(
        "invalid_id_token",
        f"The ID token was rejected: {exc.reason}",
        "Sign in again. If it keeps happening, compare the issuer's settings with ISSUER and the client id.",
        400,
    )
    failed = [check for check in exc.checks if check not in checks]
    client.recorder.token("id_token", id_token, checks + failed, error)
    return error


def _check_claims(
    client: Client,
    header: dict,
    claims: dict,
    checks: list[dict],
    *,
    nonce: str | None,
    access_token: str | None,
    require_at_hash: bool,
    expected_sub: str | None,
) -> None:
    """The claim checks of OIDC Core 3.1.3.7 on a token whose signature is verified.

    Appends each passed check to ``checks``.

    :raises InvalidToken: at the first check that fails (carrying that check).
    """
    _refuse_access_token_type(header)
    # 3.1.3.7 steps 2-3 and 9-10: iss exact, aud contains us, exp and iat.
    checks.extend(
        check_registered_claims(
            claims,
            issuer=client.issuer.identifier,
            audience=client.client_id,
            leeway=client.settings.clock_leeway,
            require=("iss", "sub", "aud", "exp", "iat"),
        )
    )
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("The ID token's subject (sub) is not a non-empty string.", check="sub")
    _check_authorized_party(client, claims, checks)
    # Step 11: the nonce of this sign-in (none on a refresh, 12.2).
    if nonce is not None:
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise InvalidToken(
                "The ID token's nonce is missing or differs from the one this sign-in sent.", check="nonce"
            )
        checks.append({"check": "nonce", "ok": True, "detail": "matches the nonce of this sign-in"})
    if access_token is not None and ("at_hash" in claims or require_at_hash):
        _check_at_hash(header, claims, access_token)
        checks.append({"check": "at_hash", "ok": True, "detail": "the access token belongs to this ID token"})
    # 12.2: a refreshed ID token must be about the same user.
    if expected_sub is not None and claims["sub"] != expected_sub:
        raise InvalidToken("The new ID token is for a different user (sub) than this session.", check="sub")


def _refuse_access_token_type(header: dict) -> None:
    """An access token is never taken for an ID token (RFC 9068 §2.1, RFC 8725 §3.11).

    Both are JWTs signed with the issuer's keys and may name us in ``aud``;
    RFC 9068 access tokens are typed ``at+jwt`` (``application/at+jwt`` in
    full, RFC 7515 §4.1.9, compared case-insensitively) so that a relying
    party can tell them apart.  An ID token is typed ``JWT`` or not at all.
    """
    typ = header.get("typ")
    if typ is None:
        return
    if not isinstance(typ, str):
        raise InvalidToken("The ID token's type (typ) is not a string.", check="typ")
    if typ.lower().removeprefix("application/") in ACCESS_TOKEN_TYP_VALUES:
        raise InvalidToken(
            f"The token is an access token (typ {plain_text(typ, 40)!r}, RFC 9068 §2.1), not an ID token.",
            check="typ",
        )


def _check_authorized_party(client: Client, claims: dict, checks: list[dict]) -> None:
    """Steps 4-5: with several audiences, ``azp`` must be there; when there, it must name us."""
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud
    if len(audiences) > 1 and "azp" not in claims:
        raise InvalidToken("The ID token has several audiences but no authorized party (azp).", check="azp")
    if "azp" in claims:
        if claims["azp"] != client.client_id:
            raise InvalidToken(
                f"The ID token was issued to {claims['azp']!r} (azp), not to this client.", check="azp"
            )
        checks.append({"check": "azp", "ok": True, "detail": "authorized party is this client"})


def _check_at_hash(header: dict, claims: dict, access_token: str) -> None:
    """3.2.2.9 / 3.3.2.11: ``at_hash`` binds the access token to this ID token."""
    if "at_hash" not in claims:
        raise InvalidToken("The ID token has no at_hash although one is required.", check="at_hash")
    expected = token_hash(access_token, header["alg"])
    # Compared as UTF-8 bytes: compare_digest refuses non-ASCII str, and a
    # hostile at_hash must be rejected, not crash the callback.
    sent = claims["at_hash"]
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode("utf-8"), expected.encode()):
        raise InvalidToken(
            "The ID token's at_hash does not match the access token it came with.", check="at_hash"
        )
