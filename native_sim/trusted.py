"""``password-login``: the trusted-app mode, the Resource Owner Password grant (RFC 6749 §4.3).

Deprecated: RFC 9700 §2.4 says this grant MUST NOT be used, because the app
sees the user's password and the issuer can neither add a second factor nor
protect the user from phishing.  It is here, off unless trusted mode
(``TRUSTED_MODE``), because existing apps still use it; see README.md,
"Trusted app".  The steps are the token request with the password
(:func:`common.tokens.password_grant`) and the ID token check
(:func:`common.id_token.validate_id_token`), written out in
:func:`password_login`; the rest of the app (the clients, the stored tokens,
the other commands) is shared with ``login`` in :mod:`native_sim.commands`.
"""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from common.authorization import USER_SCOPE
from common.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from common.config import Settings
from common.dpop_client import new_dpop_key
from common.tokens import TokenEndpointError, password_grant

from .commands import trusted_client
from .context import TRUSTED, CommandError, Context
from .grant_result import keep_tokens_without_nonce
from .summary import token_summary, who

PASSWORD_GRANT_WARNING = (
    "the Resource Owner Password grant is deprecated: RFC 9700 (OAuth 2.0 Security Best Current Practice, "
    "§2.4) says it MUST NOT be used: the app sees the user's password, and the issuer can neither add a "
    "second factor nor protect the user from phishing. New apps must use `login` (Authorization Code + PKCE)."
)


def password_login(
    ctx: Context, *, username: str | None = None, password_stdin: bool = False, stdin: TextIO | None = None
) -> int:
    """Sign in with the Resource Owner Password grant (RFC 6749 §4.3), as a "trusted app".

    The client authenticates with HTTP Basic (``TRUSTED_CLIENT_ID`` / ``TRUSTED_CLIENT_SECRET``),
    sends the user's password with ``scope=openid ...`` and gets tokens, including an ID token
    that is validated like any other.  The password is read without echo, sent once, and never
    logged or stored.

    :param username: the user name (prompted for when omitted).
    :param password_stdin: read the password from standard input (one line)
        instead of prompting on the terminal: for scripts and tests.
    """
    settings = ctx.settings
    _require_trusted_mode(settings)
    ctx.warn(PASSWORD_GRANT_WARNING)

    client = trusted_client(settings, recorder=ctx.recorder)
    # RFC 8414 §2: an issuer that leaves "password" out of
    # grant_types_supported does not offer it; say so before asking anyone
    # to type a password.
    if "password" not in (client.metadata().get("grant_types_supported") or []):
        raise CommandError(
            "The issuer does not offer the Resource Owner Password grant (it is not in its "
            "grant_types_supported). Use `python -m native_sim login` instead.",
            EXIT_REFUSED,
            "unsupported_grant_type",
        )

    # DPoP (RFC 9449 §2), under DPOP: a key pair for this sign-in, stored beside the
    # tokens; made before the password is asked for, so that DPOP=on fails first.
    client = client.with_dpop_key(new_dpop_key(client))
    username, password = _credentials(ctx, username, password_stdin, stdin or sys.stdin)
    try:
        # The password goes straight to the token endpoint, once.
        tokens = password_grant(client, username, password, USER_SCOPE)
    except TokenEndpointError as exc:
        raise _password_refused(settings, exc) from None
    finally:
        del password  # not kept a moment longer than the request needed it
    keep_tokens_without_nonce(ctx, client, tokens, kind=TRUSTED, client_id=settings.trusted_client_id)
    ctx.explain()
    ctx.say(f"Signed in as {who(tokens)} (trusted mode, password grant). {token_summary(tokens)}")
    ctx.say(f"Tokens stored in {ctx.store.description}.")
    return EXIT_OK


def _require_trusted_mode(settings) -> None:
    """The password grant is off unless enabled (RFC 9700 §2.4): say how to turn it on."""
    if not settings.trusted_mode:
        raise CommandError(
            "Trusted mode is off. Set TRUSTED_MODE=true to try the password grant (and enable the Resource "
            "Owner Password grant for the trusted client at the issuer).",
            EXIT_USAGE,
            "trusted_mode_off",
        )


def _credentials(ctx: Context, username: str | None, password_stdin: bool, stdin: TextIO) -> tuple[str, str]:
    """The user name (prompted for when not given) and the password (without echo, or one stdin line)."""
    if not username:
        print("Username: ", end="", file=ctx.err, flush=True)
        username = stdin.readline().strip()
    if not username:
        raise CommandError("No username given.", EXIT_USAGE)
    if password_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ", stream=ctx.err)
    if not password:
        raise CommandError("No password given.", EXIT_USAGE)
    return username, password


def _password_refused(settings: Settings, exc: TokenEndpointError) -> Exception:
    """What to tell the user when the token endpoint refused the password grant (RFC 6749 §5.2)."""
    issuer_error = exc.issuer_error
    if issuer_error == "invalid_grant":
        # RFC 6749 §5.2: the resource owner credentials are invalid.
        return CommandError(
            "Wrong username or password: the issuer refused them (invalid_grant).", EXIT_REFUSED, issuer_error
        )
    if issuer_error in {"unsupported_grant_type", "unauthorized_client"}:
        return CommandError(
            f"The issuer does not allow the password grant for client {settings.trusted_client_id} "
            f"({issuer_error}). Enable the Resource Owner Password grant for this app and in the "
            "authorization server's access policy, or use `login`.",
            EXIT_REFUSED,
            issuer_error,
        )
    return exc
