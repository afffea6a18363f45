"""How the commands describe a sign-in to the user: who, and until when."""

from __future__ import annotations

import time
from datetime import datetime

from common.tokens import TokenSet


def who(tokens: TokenSet) -> str:
    """The signed-in user's e-mail address, user name, name or subject, whichever the ID token has."""
    claims = tokens.id_claims or {}
    name = claims.get("email") or claims.get("preferred_username") or claims.get("name") or claims.get("sub")
    return str(name or "(unknown user)")


def expiry(expires_at: float | None) -> str:
    """When the access token expires, in words."""
    if not expires_at:
        return "no expiry given"
    when = datetime.fromtimestamp(expires_at).strftime("%Y-%m-%d %H:%M:%S")
    remaining = expires_at - time.time()
    if remaining <= 0:
        return f"expired at {when}"
    return f"expires at {when} (in {int(remaining // 60)} min {int(remaining % 60)} s)"


def token_summary(tokens: TokenSet) -> str:
    """One sentence about the access token's expiry and whether a refresh token came."""
    refresh = (
        "a refresh token came with it"
        if tokens.refresh_token
        else "no refresh token came with it (offline_access was not granted)"
    )
    return f"The access token {expiry(tokens.expires_at)}; {refresh}."
