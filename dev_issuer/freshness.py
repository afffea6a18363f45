"""A fresh sign-in for ``prompt=login`` and ``max_age``, bound to one authorization request.

OpenID Connect Core 3.1.2.1: with ``prompt=login``, or a ``max_age`` the
last sign-in is older than, the OP MUST re-authenticate the End-User.  The
authorization endpoint therefore sends the user to the sign-in form with a
random *challenge* added to the authorization request it will come back
with (the form's ``next``).  A correct password records that challenge and
the time in the session; the authorization request carrying the same
challenge, within :data:`FRESH_SIGN_IN_WINDOW` seconds, accepts it once.  A
sign-in made for anything else (the issuer's home page, another request), or
one left unused, satisfies no later request.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, urlsplit

from flask import session

#: The authorization-request parameter that carries the challenge (the issuer's own, not a protocol one).
CHALLENGE_PARAMETER = "sign_in_challenge"

#: Session key of the recorded fresh sign-in: ``{"challenge": ..., "at": epoch seconds}``.
FRESH_SIGN_IN = "fresh_sign_in"

#: Seconds from a fresh sign-in to the authorization request it was made for
#: (one redirect: the sign-in POST answers with it).
FRESH_SIGN_IN_WINDOW = 60


def challenge_request(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The authorization request's parameters with a new challenge, for the sign-in form's ``next``."""
    kept = [(name, value) for name, value in items if name != CHALLENGE_PARAMETER]
    return kept + [(CHALLENGE_PARAMETER, secrets.token_urlsafe(16))]


def challenge_of(next_url: str) -> str | None:
    """The challenge a sign-in form's ``next`` carries, if it carries exactly one."""
    values = parse_qs(urlsplit(next_url).query).get(CHALLENGE_PARAMETER) or []
    return values[0] if len(values) == 1 and 0 < len(values[0]) <= 64 else None


def requires_fresh_sign_in(next_url: str) -> bool:
    """Whether the sign-in form was sent for a re-authentication (then an SSO session is not enough)."""
    return challenge_of(next_url) is not None


def record_fresh_sign_in(next_url: str) -> None:
    """After a correct password: the request ``next_url`` names may accept this sign-in, once, soon."""
    challenge = challenge_of(next_url)
    if challenge is None:
        session.pop(FRESH_SIGN_IN, None)
    else:
        session[FRESH_SIGN_IN] = {"challenge": challenge, "at": int(time.time())}


def take_fresh_sign_in(challenge: str | None) -> bool:
    """Whether this authorization request (its ``challenge``) follows a fresh sign-in made for it.

    The record is removed whatever the answer: it serves one request.
    """
    fresh = session.pop(FRESH_SIGN_IN, None)
    if not isinstance(fresh, dict) or not challenge or fresh.get("challenge") != challenge:
        return False
    at = fresh.get("at")
    return isinstance(at, int) and 0 <= time.time() - at <= FRESH_SIGN_IN_WINDOW
