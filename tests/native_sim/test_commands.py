"""The commands in-process against the scriptable test issuer: refresh, call-api and logout edge cases."""

from __future__ import annotations

import io

import pytest

from common.authorization import build_authorization_request
from common.cli import EXIT_UNREACHABLE
from common.config import load_settings
from common.errors import FlowError
from common.inspector import FlowLog
from native_sim import commands
from native_sim.storage import FileTokenStore
from tests.fake_issuer import Reply
from tests.relying_party import complete_sign_in
from tests.support import free_port

NATIVE_CLIENT_ID = "public-client"  # registered at the test issuer without a secret


@pytest.fixture
def ctx(fake_issuer, tmp_path):
    """A Context signed in (through the fake issuer's token endpoint) as the native client."""
    settings = load_settings(
        {
            "ISSUER": fake_issuer.issuer,
            "NATIVE_CLIENT_ID": NATIVE_CLIENT_ID,
            "API_URL": f"http://127.0.0.1:{free_port()}",
            "HTTP_TIMEOUT": "1",
        }
    )
    context = commands.Context(
        settings=settings,
        store=FileTokenStore(tmp_path / "tokens"),
        log=FlowLog(max_steps=100),
        out=io.StringIO(),
        err=io.StringIO(),
    )
    client = commands.native_client(settings, "http://127.0.0.1:5003/callback")
    url, pending = build_authorization_request(client, "openid profile email offline_access")
    tokens = complete_sign_in(client, fake_issuer.authorize(url), pending)
    commands.save_tokens(context, commands.NATIVE, NATIVE_CLIENT_ID, tokens)
    return context


def test_refresh_without_a_new_id_token_keeps_the_sign_ins(ctx, fake_issuer):
    """OIDC Core §12.2, now done by common.tokens.refresh_tokens(previous=...)."""
    _, before = commands._load(ctx)
    fake_issuer.token_extra["id_token"] = None
    assert commands.refresh(ctx) == 0
    _, after = commands._load(ctx)
    assert after.access_token != before.access_token
    assert after.id_token == before.id_token and after.id_claims == before.id_claims


def test_refused_refresh_token_means_sign_in_again(ctx, fake_issuer):
    fake_issuer.refresh_tokens.clear()  # the issuer revoked every refresh token: invalid_grant
    with pytest.raises(commands.CommandError) as info:
        commands.refresh(ctx)
    assert info.value.exit_code == commands.EXIT_SIGNED_OUT and "invalid_grant" in str(info.value)
    assert ctx.store.load() is None


def test_call_api_unreachable_is_exit_3(ctx):
    with pytest.raises(FlowError) as info:
        commands.call_api(ctx)
    assert info.value.error == "api_unreachable"
    line, code = commands.describe_flow_error(info.value)
    assert code == EXIT_UNREACHABLE and "could not be reached" in line
    # The inspector shows the failed call, with no token in it.
    step = ctx.log.steps[-1]
    assert step["title"].startswith("Call the API") and step["error"]["error"] == "api_unreachable"


def test_logout_says_when_the_issuer_confirmed(ctx, fake_issuer):
    refresh_token = ctx.store.load()["tokens"]["refresh_token"]
    assert commands.logout(ctx) == 0
    assert refresh_token in fake_issuer.revoked
    assert "the tokens were revoked at the issuer" in ctx.out.getvalue()
    assert ctx.store.load() is None


@pytest.mark.parametrize(
    "reply,reason", [(Reply(400, {"error": "invalid_request"}), "HTTP 400"), (Reply(503, ""), "HTTP 503")]
)
def test_logout_reports_a_failed_revocation(ctx, fake_issuer, reply, reason):
    """revoke_token's result (not the flow log) says whether the issuer confirmed (RFC 7009 §2.2)."""
    fake_issuer.script("revoke", reply)
    ctx.log = None  # works without --explain too
    with pytest.raises(commands.CommandError) as info:
        commands.logout(ctx)
    assert info.value.exit_code == EXIT_UNREACHABLE and reason in str(info.value)
    assert ctx.store.load() is None  # signed out locally all the same
    assert "were revoked" not in ctx.out.getvalue()


def test_logout_waits_for_a_refresh_in_another_process(ctx):
    """logout takes the store's lock, so a refresh holding it cannot store tokens after the delete."""
    import threading

    holding, release = threading.Event(), threading.Event()

    def refresh_elsewhere():
        # Another process's refresh, standing in: it holds the lock file of the same store.
        with FileTokenStore(ctx.store.lock_path.parent).locked():
            holding.set()
            release.wait(10)

    other = threading.Thread(target=refresh_elsewhere)
    other.start()
    assert holding.wait(10)
    done = threading.Event()
    signing_out = threading.Thread(target=lambda: (commands.logout(ctx), done.set()))
    signing_out.start()
    assert not done.wait(0.5), "logout finished while another process held the store's lock"
    assert ctx.store.load() is not None
    release.set()
    signing_out.join(10)
    other.join(10)
    assert done.is_set() and ctx.store.load() is None
