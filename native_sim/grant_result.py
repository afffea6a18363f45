"""Finishing a sign-in that had no authorization request: the password grant and the device grant.

Both get their tokens straight from the token endpoint, so there is no
``state`` to check and no ``nonce`` to compare (OpenID Connect Core
3.1.3.7 step 11); the ID token is validated like any other, then the
tokens are stored exactly as ``login`` stores them.
"""

from __future__ import annotations

from common.cli import EXIT_REFUSED
from common.client import Client
from common.id_token import validate_id_token
from common.tokens import TokenSet

from .commands import save_tokens
from .context import CommandError, Context


def keep_tokens_without_nonce(
    ctx: Context, client: Client, tokens: TokenSet, *, kind: str, client_id: str, grant: str | None = None
) -> None:
    """Validate the ID token of a grant without an authorization request, and store the tokens."""
    if not tokens.id_token:
        raise CommandError(
            "The issuer returned no ID token although the request asked for openid.",
            EXIT_REFUSED,
            "invalid_id_token",
        )
    # Who signed in (OpenID Connect Core 3.1.3.7); no authorization request, so no nonce.
    tokens.id_claims = validate_id_token(
        client, tokens.id_token, nonce=None, access_token=tokens.access_token
    )
    with ctx.store.locked():  # a refresh in another process must not overwrite them
        save_tokens(ctx, kind, client_id, tokens, grant=grant)
