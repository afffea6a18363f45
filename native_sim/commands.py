"""One function per command of the native-app simulator, but ``password-login``.

``login`` (Authorization Code + PKCE) and the commands on the stored tokens
(``refresh``, ``call-api``, ``whoami``, ``logout``) are here, with the two
clients and the stored sign-in they share; the deprecated trusted-app mode,
``password-login``, is in :mod:`native_sim.trusted`.

Each function takes a :class:`~native_sim.context.Context` (settings, token
store, flow log, output streams) and returns an exit code, or raises
:class:`~native_sim.context.CommandError` with a one-line message and the
exit code that says what kind of failure it was.

Each protocol step is a function of ``common/`` named after it
(:mod:`common.authorization`, :mod:`common.tokens`, :mod:`common.id_token`,
:mod:`common.logout`); what is here is what is specific to a native app: the
loopback redirect, the system browser, and keeping tokens between runs.
"""

from __future__ import annotations

import json
import time
import webbrowser
from typing import Any

from common import api
from common.authorization import USER_SCOPE, build_authorization_request, check_authorization_response
from common.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, exit_code_for
from common.client import Client
from common.config import Settings
from common.dpop_client import key_of, new_dpop_key, remember_dpop_key
from common.errors import FlowError
from common.http import http_session
from common.id_token import validate_id_token
from common.inspector import shorten
from common.issuer import Issuer
from common.logout import revoke_token
from common.recorder import NULL_RECORDER, FlowRecorder
from common.tokens import TokenEndpointError, TokenSet, exchange_code, holding_key, refresh_tokens

from .context import (
    EXIT_SIGNED_OUT,
    EXIT_TIMEOUT,
    EXPIRED_REFRESH_STEPS,
    LOGIN_AGAIN,
    NATIVE,
    TRUSTED,
    CommandError,
    Context,
    NativeRecorder,
)
from .loopback import LOOPBACK_HOST, LoginTimeout, LoopbackListener
from .summary import expiry, token_summary, who

# -- the clients ------------------------------------------------------------


def native_client(
    settings: Settings, redirect_uri: str | None = None, *, recorder: FlowRecorder = NULL_RECORDER
) -> Client:
    """The public client of ``login``: no secret (RFC 8252 §8.4), PKCE instead."""
    return Client(
        Issuer(settings),
        client_id=settings.native_client_id,
        redirect_uri=redirect_uri,
        token_endpoint_auth_method="none",
        recorder=recorder,
    )


def trusted_client(settings: Settings, *, recorder: FlowRecorder = NULL_RECORDER) -> Client:
    """The confidential client of ``password-login``, authenticated with HTTP Basic (RFC 6749 §2.3.1)."""
    return Client(
        Issuer(settings),
        client_id=settings.trusted_client_id,
        client_secret=settings.trusted_client_secret,
        token_endpoint_auth_method="client_secret_basic",
        recorder=recorder,
    )


def client_for(ctx: Context, record: dict[str, Any], recorder: FlowRecorder | None = None) -> Client:
    """The client the stored tokens were issued to: a refresh token is bound to it (RFC 6749 §6)."""
    recorder = recorder or ctx.recorder
    if record.get("client") == TRUSTED:
        return trusted_client(ctx.settings, recorder=recorder)
    return native_client(ctx.settings, recorder=recorder)


# -- login: Authorization Code + PKCE through the system browser --------------


def login(ctx: Context, *, open_browser: bool = True, timeout: float | None = None) -> int:
    """Sign in with the Authorization Code flow and PKCE (RFC 6749 §4.1, RFC 7636, RFC 8252).

    The steps, in order, are written out below: open the loopback listener,
    build the authorization request, send the system browser to it, wait
    for the answer, check it, exchange the code, validate the ID token,
    store the tokens.

    :param open_browser: ``False`` for ``--no-browser``.
    :param timeout: seconds to wait for the user (default ``LOGIN_TIMEOUT``).
    """
    settings = ctx.settings
    timeout = _login_timeout(settings, timeout)
    # The loopback listener is open first: the redirect URI names its port.
    with _open_listener(ctx) as listener:
        redirect_uri = settings.native_redirect_uri(listener.port)
        client = native_client(settings, redirect_uri, recorder=ctx.recorder)
        # DPoP (RFC 9449 §2), under DPOP: this sign-in's key pair; it will be
        # stored beside the tokens (mode 0600). DPOP=on fails here, before the browser opens.
        dpop_key = new_dpop_key(client)
        # Fresh state, nonce and PKCE S256 challenge; the verifier and the
        # rest of ``pending`` (the DPoP key too) stay in this process only.
        authorization_url, pending = build_authorization_request(client, USER_SCOPE)
        remember_dpop_key(pending, dpop_key)
        ctx.explain()
        listener.start(pending["state"])

        # The user's *system* browser (RFC 8252 §6), never an embedded view
        # that could read the password; or the URL printed with --no-browser.
        ctx.say(f"Listening for the sign-in response on {redirect_uri}")
        ctx.say("Sign in at this URL:")
        ctx.say(authorization_url)
        if open_browser and not webbrowser.open(authorization_url):
            ctx.say("(No browser could be started: open the URL above yourself.)")
        ctx.say(f"Waiting up to {timeout:g} seconds for you to finish signing in...")

        # The user signs in at the issuer; one redirect later the browser
        # delivers the answer to the listener, which accepts only the one
        # with our state, thanks the user, and closes.
        params = _wait_for_answer(listener, timeout)
    # The listener is closed: from here on nothing listens on the port.

    # ``pending`` (state, nonce, PKCE verifier) lived only in this process and
    # the listener accepted one response, so it is used exactly once.
    # The answer: our state, our issuer (RFC 9207), no error, a code.
    code = check_authorization_response(client, params, pending)
    # The code and the PKCE verifier, and no secret: a public client (RFC 8252 §8.4);
    # with DPoP, a proof of the key, which binds the tokens (refresh token too, RFC 9449 §5).
    tokens = exchange_code(client, code, pending)
    # Who signed in (OpenID Connect Core 3.1.3.7), bound to our nonce.
    tokens.id_claims = validate_id_token(
        client, tokens.id_token, nonce=pending["nonce"], access_token=tokens.access_token
    )
    with ctx.store.locked():  # a refresh in another process must not overwrite them
        save_tokens(ctx, NATIVE, settings.native_client_id, tokens)
    ctx.explain()
    ctx.say(f"Signed in as {who(tokens)}. {token_summary(tokens)}")
    ctx.say(f"Tokens stored in {ctx.store.description}.")
    return EXIT_OK


def _login_timeout(settings: Settings, timeout: float | None) -> float:
    """``--timeout``, or ``LOGIN_TIMEOUT``; never longer (the callback check would refuse the answer)."""
    timeout = settings.login_timeout if timeout is None else timeout
    if timeout > settings.login_timeout:
        raise CommandError(
            f"--timeout cannot be longer than LOGIN_TIMEOUT ({settings.login_timeout} seconds).", EXIT_USAGE
        )
    return timeout


def _open_listener(ctx: Context) -> LoopbackListener:
    """The loopback listener on ``NATIVE_REDIRECT_PORT`` (RFC 8252 §7.3); a clear error when it is taken."""
    port = ctx.settings.native_redirect_port
    try:
        return LoopbackListener(port, on_refused=lambda reason: ctx.warn(reason + "; still waiting"))
    except OSError as exc:
        raise CommandError(
            f"Cannot listen on {LOOPBACK_HOST}:{port} ({exc.strerror}). Stop the program using that port, "
            "or set NATIVE_REDIRECT_PORT to another registered port (0 = any free port, if the issuer "
            "allows it).",
            EXIT_USAGE,
        ) from None


def _wait_for_answer(listener: LoopbackListener, timeout: float) -> dict[str, str]:
    """The one authorization response the listener accepted, or a time-out error."""
    try:
        return listener.wait(timeout)
    except LoginTimeout:
        raise CommandError(
            f"Timed out: nobody finished signing in within {timeout:g} seconds, so nothing was stored. "
            "Run `python -m native_sim login` again when you are ready.",
            EXIT_TIMEOUT,
            "login_timeout",
        ) from None


# -- commands on the stored tokens ---------------------------------------------


def refresh(ctx: Context) -> int:
    """Get fresh tokens with the refresh token (RFC 6749 §6).

    The issuer may rotate the refresh token (RFC 9700 §4.14.2: a public
    client's refresh tokens should be sender-constrained or rotated); the
    new one replaces the old, which is then no longer valid.
    """
    record, tokens = _load(ctx)
    new = _refresh(ctx, record, tokens)
    rotated = (
        "rotated: the old one no longer works"
        if new.refresh_token != tokens.refresh_token
        else "kept: the issuer did not rotate it"
    )
    ctx.say(f"Tokens refreshed. The access token {expiry(new.expires_at)}. The refresh token was {rotated}.")
    return EXIT_OK


def call_api(ctx: Context) -> int:
    """Call the resource server's ``GET /api/messages`` with the access token (RFC 6750 §2.1).

    An expired access token is refreshed first, so the API is never sent
    a token it must refuse.
    """
    record, tokens = _load(ctx)
    if tokens.expired():
        ctx.say("The access token has expired; refreshing it first.")
        tokens = _refresh(ctx, record, tokens, expired=True)
    url = f"{ctx.settings.api_url}/api/messages"
    try:
        # Bearer (RFC 6750 §2.1), or DPoP with a proof of the stored key (RFC 9449 §7.1).
        answer = api.call_api(
            url,
            tokens.access_token,
            http=http_session(ctx.settings),
            recorder=ctx.recorder,
            dpop_key=key_of(tokens),
        )
    finally:
        ctx.explain()
    if answer.status in (401, 403):
        # RFC 6750 §3: the reason is in WWW-Authenticate.
        raise CommandError(
            f"The API refused the access token (HTTP {answer.status}: "
            f"{answer.www_authenticate or 'no reason given'}). "
            "Try `python -m native_sim refresh`, or sign in again.",
            EXIT_REFUSED,
            "invalid_token",
        )
    if answer.status >= 500:
        raise CommandError(f"The API failed (HTTP {answer.status}).", EXIT_UNREACHABLE)
    if answer.status >= 400:
        raise CommandError(f"The API answered HTTP {answer.status}.", EXIT_REFUSED)
    ctx.say(f"GET {url} -> HTTP {answer.status}")
    body = answer.body
    ctx.say(body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False))
    return EXIT_OK


def whoami(ctx: Context) -> int:
    """Show who is signed in, from the stored ID token's validated claims (no network)."""
    record, tokens = _load(ctx)
    claims = tokens.id_claims or {}
    mode = "trusted mode, password grant" if record.get("client") == TRUSTED else "Authorization Code + PKCE"
    mode = "device authorization grant" if record.get("grant") == "device_code" else mode  # device-login
    rows = [
        ("issuer", record.get("issuer")),
        ("client", f"{record.get('client_id')} ({mode})"),
        ("subject (sub)", claims.get("sub")),
        ("name", claims.get("name")),
        ("email", claims.get("email")),
        ("scopes", tokens.scope),
        ("access token", f"{shorten(tokens.access_token)}, {expiry(tokens.expires_at)}"),
        ("refresh token", shorten(tokens.refresh_token, head=4, tail=0) if tokens.refresh_token else "none"),
        ("DPoP", "bound to the key stored beside them (RFC 9449)" if tokens.dpop_bound else None),
        ("stored in", ctx.store.description),
    ]
    ctx.say(f"Signed in as {who(tokens)}")
    for label, value in rows:
        if value:
            ctx.say(f"  {label + ':':<15} {value}")
    return EXIT_OK


def logout(ctx: Context) -> int:
    """Revoke the refresh token at the issuer (RFC 7009) and delete the stored tokens.

    Revoking first matters: deleting only the local copy would leave a
    refresh token that is still valid wherever else it may have leaked.
    Under the store's lock, so that a refresh running in another process
    cannot store new tokens after they were deleted here.
    """
    with ctx.store.locked():
        return _sign_out(ctx)


def _sign_out(ctx: Context) -> int:
    """:func:`logout`'s work, with the store's lock held."""
    record = ctx.store.load()
    if record is None:
        ctx.say("Not signed in: nothing to do.")
        return EXIT_OK
    tokens = TokenSet.from_dict(record.get("tokens") or {"access_token": ""})
    failure = None
    if record.get("issuer") == ctx.settings.issuer:
        # With a proof of the stored DPoP key when the tokens are bound to it.
        client = holding_key(client_for(ctx, record), tokens)
        # revoke_token is best effort and never raises (sign-out must finish);
        # it returns True, or why the issuer did not confirm.
        outcomes = []
        if tokens.refresh_token:
            outcomes.append(revoke_token(client, tokens.refresh_token, "refresh_token"))
        if tokens.access_token:
            # A JWT access token stays valid for local validation until it
            # expires; revoking it still helps resource servers that introspect.
            outcomes.append(revoke_token(client, tokens.access_token, "access_token"))
        ctx.explain()
        failure = next((outcome for outcome in outcomes if outcome is not True), None)
        revoked = "" if failure else "the tokens were revoked at the issuer and "
    else:
        ctx.warn(
            f"the stored tokens belong to {record.get('issuer')}, not the configured issuer; "
            "they were not revoked"
        )
        revoked = ""
    ctx.store.delete()
    ctx.say(f"Signed out: {revoked}the stored tokens were deleted from {ctx.store.description}.")
    if failure:
        raise CommandError(
            f"Signed out locally, but the issuer did not confirm the revocation ({failure}); the refresh "
            "token stays valid until it expires.",
            EXIT_UNREACHABLE,
            "revocation_failed",
        )
    ctx.say(
        "Your browser may still be signed in at the issuer, so the next `login` may not ask for a password."
    )
    return EXIT_OK


# -- helpers -------------------------------------------------------------------


def _load(ctx: Context) -> tuple[dict[str, Any], TokenSet]:
    """The stored record and its tokens, or :class:`CommandError` (exit 5) when there are none."""
    record = ctx.store.load()
    if record is None or not isinstance(record.get("tokens"), dict):
        raise CommandError(f"Not signed in. {LOGIN_AGAIN}", EXIT_SIGNED_OUT, "not_signed_in")
    settings = ctx.settings
    trusted = record.get("client") == TRUSTED
    expected_client = settings.trusted_client_id if trusted else settings.native_client_id
    if record.get("issuer") != ctx.settings.issuer or record.get("client_id") != expected_client:
        raise CommandError(
            f"The stored tokens belong to another issuer or client ({record.get('issuer')}, "
            f"{record.get('client_id')}). {LOGIN_AGAIN}",
            EXIT_SIGNED_OUT,
            "not_signed_in",
        )
    return record, TokenSet.from_dict(record["tokens"])


def _refresh(ctx: Context, record: dict[str, Any], tokens: TokenSet, *, expired: bool = False) -> TokenSet:
    """Refresh under the store's lock, store the result; a refused refresh token means "sign in again".

    Another ``native_sim`` may be refreshing the same tokens right now. A
    rotating issuer takes a second use of a refresh token for theft and
    revokes the grant (RFC 9700 §4.14.2), so the refresh runs under the
    token store's lock, and the store is read again once the lock is held:
    if the other process has stored new tokens meanwhile, those are used.
    """
    with ctx.store.locked():
        current = ctx.store.load()
        stored = (current or {}).get("tokens")
        if (
            isinstance(stored, dict)
            and stored.get("refresh_token") != tokens.refresh_token
            and current.get("issuer") == record.get("issuer")
            and current.get("client_id") == record.get("client_id")
        ):
            # Someone else spent the refresh token we read and stored its successor.
            ctx.say("Another native_sim process has just refreshed the tokens; using those.")
            return TokenSet.from_dict(stored)
        return _spend_refresh_token(ctx, record, tokens, expired)


def _spend_refresh_token(ctx: Context, record: dict[str, Any], tokens: TokenSet, expired: bool) -> TokenSet:
    """The refresh request itself (RFC 6749 §6); the caller holds the store's lock.

    :param expired: ``call-api`` found the access token expired (else the user ran ``refresh``).
    """
    if not tokens.refresh_token:
        raise CommandError(
            f"No refresh token is stored (the issuer did not issue one). {LOGIN_AGAIN}",
            EXIT_SIGNED_OUT,
            "no_refresh_token",
        )
    recorder = NativeRecorder(ctx.log, EXPIRED_REFRESH_STEPS) if expired else ctx.recorder
    # A DPoP-bound refresh token works only with a proof of its key (RFC 9449 §5).
    client = holding_key(client_for(ctx, record, recorder), tokens)
    try:
        # previous=tokens: a new ID token must be about the same user, and the
        # sign-in's ID token is kept when the issuer sends none (OIDC Core 12.2).
        new = refresh_tokens(client, tokens.refresh_token, previous=tokens)
    except TokenEndpointError as exc:
        if exc.issuer_error == "invalid_grant":
            # RFC 6749 §5.2: expired, revoked, or already used (rotation).
            # It will never work again, so forget it.
            ctx.store.delete()
            raise CommandError(
                f"Your sign-in has expired: the issuer refused the refresh token (invalid_grant: "
                f"{exc.description}). {LOGIN_AGAIN}",
                EXIT_SIGNED_OUT,
                exc.error,
            ) from None
        raise
    finally:
        ctx.explain()
    save_tokens(
        ctx, record.get("client", NATIVE), record.get("client_id", ""), new, grant=record.get("grant")
    )
    return new


def save_tokens(
    ctx: Context, client: str, client_id: str, tokens: TokenSet, *, grant: str | None = None
) -> None:
    """Store only what later commands need: whose tokens, and the tokens (``grant``: ``device-login``'s)."""
    ctx.store.save(
        {
            "issuer": ctx.settings.issuer,
            "client": client,
            "client_id": client_id,
            "tokens": tokens.to_dict(),
            "saved_at": int(time.time()),
            **({"grant": grant} if grant else {}),
        }
    )


def describe_flow_error(exc: FlowError) -> tuple[str, int]:
    """One line and an exit code for a :class:`FlowError` that reached the command line.

    The exit code is :func:`common.cli.exit_code_for`'s, the same as the service app's.
    """
    line = f"{exc.error}: {exc.description}"
    if exc.hint:
        line += f" {exc.hint}"
    return " ".join(line.split()), exit_code_for(exc)
