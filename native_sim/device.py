"""``device-login``: the device authorization grant (RFC 8628), for a device without a usable browser.

A TV, or this program over SSH: it cannot open a browser where the user
is, so it shows a short code and a URL, and the user approves on their
phone.  The steps are :mod:`common.device`'s, written out in
:func:`device_login`; the tokens are checked and stored exactly as
``login`` stores them (:func:`native_sim.commands.save_tokens`), for the
same public client, so ``call-api``, ``refresh`` and ``logout`` work
afterwards.
"""

from __future__ import annotations

import io

from common.authorization import USER_SCOPE
from common.cli import EXIT_OK, EXIT_REFUSED
from common.device import DeviceAuthorization, DeviceFlowEnded, poll_for_tokens, request_device_authorization
from common.dpop_client import new_dpop_key

from .commands import native_client
from .context import EXIT_TIMEOUT, NATIVE, CommandError, Context
from .grant_result import keep_tokens_without_nonce
from .summary import token_summary, who

#: Exit code of a command stopped with Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def device_login(ctx: Context, *, show_qr: bool = True) -> int:
    """Sign in with the device authorization grant (RFC 8628 §3).

    The steps, in order: ask for the codes, show the user where to go and
    what to type, poll until they have decided, validate the ID token,
    store the tokens.

    :param show_qr: ``False`` for ``--no-qr``.
    """
    settings = ctx.settings
    # The same public client as `login` (RFC 8252 §8.4: no secret), so the
    # stored tokens refresh and revoke the same way.
    client = native_client(settings, recorder=ctx.recorder)
    # DPoP (RFC 9449 §5), under DPOP: a fresh key whose proofs go with the polls, so that the
    # tokens are bound to it (and stored beside it); DPOP=on fails here, before any code is shown.
    client = client.with_dpop_key(new_dpop_key(client))
    # §3.1-3.2: a device_code for us, a user_code for the user, and where to enter it.
    authorization = request_device_authorization(client, USER_SCOPE)
    ctx.explain()
    _show_instructions(ctx, authorization, show_qr)

    # §3.4-3.5: poll at `interval` while the user signs in and approves on another device.
    try:
        tokens = poll_for_tokens(
            client, authorization, on_poll=lambda answer, interval: _waiting(ctx, answer)
        )
    except DeviceFlowEnded as ended:
        ctx.explain()
        code = EXIT_REFUSED if ended.reason == "access_denied" else EXIT_TIMEOUT
        raise CommandError(f"{ended.reason}: {ended.description} {ended.hint}", code, ended.reason) from None
    except KeyboardInterrupt:
        # The codes stay valid at the issuer until they expire; nothing was stored here.
        raise CommandError("Interrupted: nothing was stored.", EXIT_INTERRUPTED, "interrupted") from None

    keep_tokens_without_nonce(
        ctx, client, tokens, kind=NATIVE, client_id=settings.native_client_id, grant="device_code"
    )
    ctx.explain()
    ctx.say(f"Signed in as {who(tokens)}. {token_summary(tokens)}")
    ctx.say(f"Tokens stored in {ctx.store.description}.")
    return EXIT_OK


def _show_instructions(ctx: Context, authorization: DeviceAuthorization, show_qr: bool) -> None:
    """Where to go and what to type (RFC 8628 §3.3): each on a line of its own, and a QR code.

    §3.3.1: the complete URI (with the code in it) is for a QR code or a
    link; the code is still shown, so that the user can check that the
    page shows the same one (§5.4, remote phishing).
    """
    minutes = max(1, authorization.expires_in // 60)
    ctx.say("To sign in, open this page on your phone or computer:")
    ctx.say(authorization.verification_uri)
    ctx.say("and enter the code:")
    ctx.say(authorization.user_code)
    if authorization.verification_uri_complete:
        ctx.say("Or open this link, which has the code in it:")
        ctx.say(authorization.verification_uri_complete)
        if show_qr:
            qr = qr_code(
                authorization.verification_uri_complete, getattr(ctx.out, "encoding", None) or "utf-8"
            )
            if qr:
                ctx.say("Or scan it:")
                ctx.say(qr)
    ctx.say(f"The code expires in {minutes} minutes. Waiting for you to approve (Ctrl-C to stop)...")


def qr_code(text: str, encoding: str = "utf-8") -> str | None:
    """``text`` as a QR code of Unicode half blocks (segno); ``None`` when ``encoding`` cannot show them."""
    import segno  # noqa: PLC0415 -- only this command needs it

    buffer = io.StringIO()
    segno.make(text, error="m").terminal(out=buffer, compact=True)
    qr = buffer.getvalue().rstrip("\n")
    try:
        qr.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return None
    return qr


def _waiting(ctx: Context, answer: str) -> None:
    """After a poll that goes on: the steps so far (``--explain``), and a word after a ``slow_down``."""
    ctx.explain()
    if answer == "slow_down":
        ctx.say("The issuer asked to poll less often (slow_down): waiting 5 seconds longer between polls.")
