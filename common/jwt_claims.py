"""Why a JWT was refused (:class:`InvalidToken`), and the registered claims checks (RFC 7519 §4.1).

Shared by ID tokens (OpenID Connect Core 3.1.3.7) and access tokens (RFC
9068 §4).  :mod:`common.jwks` raises the same :class:`InvalidToken` for a
signature that does not verify and re-exports both names, so callers import
them from there.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Mapping


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


def _is_number(value: Any) -> bool:
    """A NumericDate (RFC 7519 §2): a finite JSON number within a double's range, not a boolean.

    ``NaN`` compares false with everything, so ``exp: NaN`` would never
    expire, and ``Infinity`` would not either; RFC 8259 §6 does not allow
    them in JSON, and an integer too large for a double is refused with them.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond a double's range (10**400)
        return False


def _failed(checks: list[dict], check: str, reason: str):
    """Raise :class:`InvalidToken` for ``check``, after the ``checks`` that passed."""
    raise InvalidToken(reason, check=check, checks=checks + [{"check": check, "ok": False, "detail": reason}])


def _check_audience(claims: Mapping[str, Any], audience: str | Iterable[str], checks: list[dict]) -> str:
    """``aud`` (a string or a list of strings) contains the audience (RFC 7519 §4.1.3); the passed detail."""
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
    return f"audience contains {' or '.join(sorted(set(wanted)))}"


def _check_times(
    claims: Mapping[str, Any], now: float, leeway: float, checks: list[dict], explain: bool
) -> None:
    """``exp`` in the future, ``nbf`` and ``iat`` not, with leeway (RFC 7519 §4.1.4-4.1.6)."""
    if "exp" in claims:
        exp = claims["exp"]
        if not _is_number(exp):
            _failed(checks, "exp", "The token's expiry (exp) is not a finite number.")
        if now > exp + leeway:
            _failed(checks, "exp", f"The token expired {int(now - exp)} s ago (leeway {int(leeway)} s).")
        if explain:
            detail = f"not expired (expires in {int(exp - now)} s)"
            checks.append({"check": "exp", "ok": True, "detail": detail})
    if "nbf" in claims:
        nbf = claims["nbf"]
        if not _is_number(nbf):
            _failed(checks, "nbf", "The token's not-before time (nbf) is not a finite number.")
        if nbf > now + leeway:
            _failed(checks, "nbf", f"The token is not valid for another {int(nbf - now)} s.")
        if explain:
            checks.append({"check": "nbf", "ok": True, "detail": "already valid (nbf)"})
    if "iat" in claims:
        iat = claims["iat"]
        if not _is_number(iat):
            _failed(checks, "iat", "The token's issue time (iat) is not a finite number.")
        if iat > now + leeway:
            _failed(
                checks,
                "iat",
                f"The token claims to be issued {int(iat - now)} s in the future (leeway {int(leeway)} s).",
            )
        if explain:
            checks.append({"check": "iat", "ok": True, "detail": "issued in the past (iat)"})


def check_registered_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audience: str | Iterable[str] | None,
    leeway: float,
    now: float | None = None,
    require: Iterable[str] = ("iss", "aud", "exp", "iat"),
    explain: bool = True,
) -> list[dict]:
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
            _failed(
                checks,
                "iss",
                f"The token was issued by {claims.get('iss')!r}, not by the configured issuer {issuer!r}.",
            )
        if explain:
            checks.append({"check": "iss", "ok": True, "detail": "issuer is exactly the configured issuer"})
    if audience is not None:
        detail = _check_audience(claims, audience, checks)
        if explain:
            checks.append({"check": "aud", "ok": True, "detail": detail})
    _check_times(claims, now, leeway, checks, explain)
    return checks
