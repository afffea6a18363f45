"""The JSON answer every peer gives: the same one as our resource server's ``/api/messages``.

Shared by the three peers (stdlib only, so it runs in their own virtualenv),
so that the servers differ in how they check the token and in nothing they
send back.  The claims are read as ``resource_server/access_token.py`` reads
them: ``cid`` or ``client_id``, ``scp`` or ``scope``.
"""

import time


def messages_answer(claims: dict) -> dict:
    """The body of ``GET /api/messages`` for a token with these (verified) claims."""
    sub = claims.get("sub")
    client_id = claims.get("cid") or claims.get("client_id")
    scopes = claims.get("scp", claims.get("scope", []))
    scopes = scopes.split() if isinstance(scopes, str) else list(scopes)
    now = int(time.time())
    return {
        "messages": [
            {"date": now, "text": f"Hello, {sub}. Your access token was accepted."},
            {
                "date": now,
                "text": f"It was issued to client {client_id or '(unknown)'} "
                f"with the scopes: {' '.join(scopes) or '(none)'}.",
            },
        ],
        "sub": sub,
        "client_id": client_id,
        "scopes": scopes,
    }
