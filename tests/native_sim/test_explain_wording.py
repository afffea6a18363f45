"""``--explain`` tells the native app's story, not the web app's (issue 12, item 20).

A native app is a public client without a server: no client
authentication; ``logout`` revokes the access token as well; a manual
``refresh`` is not an "(nearly) expired" access token.
"""

from __future__ import annotations

import io

import pytest

from common.authorization import build_authorization_request, check_authorization_response
from common.config import load_settings
from common.errors import FlowError
from common.inspector import FlowLog
from common.tokens import exchange_code
from native_sim import commands
from native_sim.__main__ import build_parser
from native_sim.storage import FileTokenStore
from tests.support import free_port

NATIVE_CLIENT_ID = "public-client"  # registered at the test issuer without a secret

#: The web app's wording, which must not appear in the native app's story.
WEB_WORDING = (
    "Our server",
    "client authentication)",
    "(nearly) expired",
    "revoke the refresh token (RFC 7009), so",
)


def _context(fake_issuer, tmp_path) -> commands.Context:
    settings = load_settings(
        {
            "ISSUER": fake_issuer.issuer,
            "NATIVE_CLIENT_ID": NATIVE_CLIENT_ID,
            "API_URL": f"http://127.0.0.1:{free_port()}",
            "HTTP_TIMEOUT": "1",
        }
    )
    return commands.Context(
        settings=settings,
        store=FileTokenStore(tmp_path / "tokens"),
        log=FlowLog(max_steps=100),
        out=io.StringIO(),
        err=io.StringIO(),
    )


def _told(ctx: commands.Context) -> str:
    ctx.explain()
    text = ctx.out.getvalue()
    ctx.out.seek(0)
    ctx.out.truncate()
    return text


@pytest.fixture
def ctx(fake_issuer, tmp_path):
    """Signed in through the login steps, narrated with the native app's recorder."""
    context = _context(fake_issuer, tmp_path)
    client = commands.native_client(
        context.settings, "http://127.0.0.1:5003/callback", recorder=context.recorder
    )
    url, pending = build_authorization_request(client, "openid profile email offline_access")
    code = check_authorization_response(client, fake_issuer.authorize(url), pending)
    tokens = exchange_code(client, code, pending)
    commands.save_tokens(context, commands.NATIVE, NATIVE_CLIENT_ID, tokens)
    return context


def test_login_is_told_for_a_public_client_without_a_server(ctx):
    text = _told(ctx)
    assert "The system browser now goes to the issuer" in text
    assert "one-shot listener on the loopback interface (RFC 8252 §7.3)" in text
    assert "a native app has no server" in text and "and no client authentication" in text
    for wording in WEB_WORDING:
        assert wording not in text
    assert "ties the answer to this browser session" not in text


def test_a_manual_refresh_is_not_an_expired_token(ctx):
    _told(ctx)
    assert commands.refresh(ctx) == 0
    text = _told(ctx)
    assert "Token request (refresh)" in text
    assert "You asked for fresh tokens" in text
    assert "(nearly) expired" not in text


def test_call_api_refreshes_an_expired_token_and_says_so(ctx, fake_issuer):
    record = ctx.store.load()
    record["tokens"]["expires_at"] = 1  # long expired
    ctx.store.save(record)
    _told(ctx)
    with pytest.raises(FlowError):  # nothing listens on API_URL; the refresh came first
        commands.call_api(ctx)
    text = _told(ctx)
    assert "The stored access token has expired, so before calling the API" in text


def test_logout_says_both_tokens_are_revoked(ctx):
    _told(ctx)
    assert commands.logout(ctx) == 0
    text = _told(ctx)
    assert "revoke the refresh token and then the access token (RFC 7009)" in text
    assert "revoke the refresh token (RFC 7009), so" not in text


def test_password_login_help_names_auto():
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["password-login"].format_help()
    assert "TRUSTED_MODE=auto" in " ".join(help_text.split())
    assert "needs TRUSTED_MODE=true" not in " ".join(help_text.split())
