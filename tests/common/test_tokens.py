"""The token endpoint (common/tokens.py): the code exchange, refresh, client credentials, password grant."""

from __future__ import annotations

import json
import time

import pytest

from common.authorization import build_authorization_request
from common.client import Client
from common.errors import FlowError
from common.id_token import validate_id_token
from common.inspector import FlowLog
from common.issuer import Issuer
from common.keys import generate_private_key, private_key_pem, public_jwk
from common.tokens import TokenSet, client_credentials, password_grant, refresh_tokens
from tests.fake_issuer import Reply
from tests.relying_party import complete_sign_in, error_of, narrating

from .conftest import REDIRECT_URI


def test_full_sign_in(client, fake_issuer, sign_in):
    params, pending = sign_in()
    log = FlowLog()
    tokens = complete_sign_in(client, params, pending, log=log)
    assert tokens.id_claims["sub"] == fake_issuer.user["sub"]
    assert tokens.refresh_token and tokens.access_token and tokens.id_token
    assert tokens.expires_at > time.time() + 3000
    # PKCE verifier and client authentication reached the issuer
    token_request = fake_issuer.last("token")
    assert token_request.form["code_verifier"] == pending["code_verifier"]
    assert token_request.headers["Authorization"].startswith("Basic ")
    titles = [s["title"] for s in log.steps]
    assert titles[0] == "Callback" and "ID token validation" in titles
    checks = {c["check"]: c["ok"] for c in log.steps[-1]["jwt"]["checks"]}
    assert checks == {
        "signature": True,
        "iss": True,
        "aud": True,
        "exp": True,
        "iat": True,
        "nonce": True,
        "at_hash": True,
    }


def test_tokenset_round_trip_is_compact(client, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    stored = tokens.to_dict()
    assert TokenSet.from_dict(json.loads(json.dumps(stored))) == TokenSet(
        **{**tokens.__dict__, "id_claims": stored["id_claims"], "expires_at": stored["expires_at"]}
    )
    assert "at_hash" not in stored["id_claims"] and "aud" not in stored["id_claims"]
    assert len(json.dumps(stored)) < 4096
    assert not tokens.expired()
    assert TokenSet("a", expires_at=time.time() + 10).expired(leeway=30)


def test_client_secret_post_and_public_client(settings, fake_issuer):
    post = Client(
        Issuer(settings),
        client_id=fake_issuer.client_id,
        client_secret=fake_issuer.client_secret,
        redirect_uri=REDIRECT_URI,
        token_endpoint_auth_method="client_secret_post",
    )
    url, pending = build_authorization_request(post, "openid")
    complete_sign_in(post, fake_issuer.authorize(url), pending)
    assert fake_issuer.last("token").form["client_secret"] == fake_issuer.client_secret
    public = Client(
        Issuer(settings),
        client_id="public-client",
        redirect_uri=REDIRECT_URI,
        token_endpoint_auth_method="none",
    )
    url, pending = build_authorization_request(public, "openid")
    tokens = complete_sign_in(public, fake_issuer.authorize(url), pending)
    assert tokens.id_claims["aud"] == "public-client"
    assert "client_secret" not in fake_issuer.last("token").form
    assert "Authorization" not in fake_issuer.last("token").headers


def test_code_replay_is_token_error(client, sign_in):
    params, pending = sign_in()
    complete_sign_in(client, params, dict(pending))
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, dict(pending))
    assert error_of(info) == "token_error"
    assert "invalid_grant" in info.value.description
    assert info.value.issuer_error == "invalid_grant"


@pytest.mark.parametrize(
    "script,expected",
    [
        (lambda f: f.fail("token", 500), "token_error"),
        (lambda f: f.fail("token", 503), "token_error"),
        (lambda f: f.html("token"), "token_error"),
        (lambda f: f.hang("token", 2), "issuer_unreachable"),
        (lambda f: f.script("token", Reply(200, {"token_type": "Bearer", "expires_in": 10})), "token_error"),
        (lambda f: f.script("token", Reply(200, {"access_token": "x", "token_type": "mac"})), "token_error"),
        (lambda f: f.script("token", Reply(200, [1, 2])), "token_error"),
        (lambda f: f.script("token", Reply(302, "", {"Location": "http://evil.test/"})), "token_error"),
    ],
)
def test_token_endpoint_failures(client, fake_issuer, sign_in, script, expected):
    params, pending = sign_in()
    script(fake_issuer)
    log = FlowLog()
    started = time.monotonic()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending, log=log)
    assert time.monotonic() - started < 1.5
    assert error_of(info) == expected
    assert info.value.status == 502 and info.value.hint
    assert log.steps[-1]["error"]["error"] == expected


def test_bearer_is_case_insensitive(client, fake_issuer, sign_in):
    fake_issuer.token_extra["token_type"] = "bearer"
    assert complete_sign_in(client, *sign_in()).token_type == "Bearer"


def test_missing_id_token_when_openid_requested(client, fake_issuer, sign_in):
    fake_issuer.token_extra["id_token"] = None
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, *sign_in())
    assert error_of(info) == "invalid_id_token"


@pytest.mark.parametrize(
    "expires_in",
    ["nan", float("nan"), 1e400, pytest.param(10**400, id="10**400"), 1e17, -5, 0, True, "soon", [3600]],
)
def test_unusable_expires_in_means_unknown_expiry(client, fake_issuer, sign_in, expires_in):
    """RFC 6749 §5.1: expires_in is a lifetime in seconds; anything else must not break the sign-in.

    "nan" and 1e400 used to raise (a 500 after the code was spent); 1e17 was
    stored and made every later page fail when formatting the date.
    """
    fake_issuer.token_extra["expires_in"] = expires_in
    log = FlowLog()
    tokens = complete_sign_in(client, *sign_in(), log=log)
    assert tokens.expires_at is None and not tokens.expired()
    assert "expires_at" not in tokens.to_dict()
    json.dumps(tokens.to_dict(), allow_nan=False)
    notes = [step for step in log.steps if step["title"] == "Token response"]
    assert notes and "not a usable lifetime" in notes[0]["explanation"]


@pytest.mark.parametrize("expires_in", [1, "3600", 3600.5, 365 * 24 * 3600])
def test_usable_expires_in(client, fake_issuer, sign_in, expires_in):
    fake_issuer.token_extra["expires_in"] = expires_in
    before = time.time()
    tokens = complete_sign_in(client, *sign_in())
    assert before + float(expires_in) - 1 <= tokens.expires_at <= time.time() + float(expires_in)


def test_tokenset_with_a_non_finite_expiry_still_serialises():
    assert "expires_at" not in TokenSet("a", expires_at=float("inf")).to_dict()


def test_token_endpoint_refusal_carries_the_issuers_code(client, fake_issuer, sign_in):
    from common.tokens import TOKEN_ERROR_HINTS, TokenEndpointError

    params, pending = sign_in()
    fake_issuer.script("token", Reply(400, {"error": "invalid_client", "error_description": "bad\nsecret"}))
    with pytest.raises(TokenEndpointError) as info:
        complete_sign_in(client, params, pending)
    assert isinstance(info.value, FlowError) and info.value.error == "token_error"
    assert info.value.issuer_error == "invalid_client" and info.value.issuer_description == "bad secret"
    assert info.value.hint == TOKEN_ERROR_HINTS["invalid_client"]


def test_refresh_rotation_and_keep(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    fresh = refresh_tokens(client, tokens.refresh_token, expected_sub=tokens.sub)
    assert fresh.refresh_token != tokens.refresh_token and fresh.access_token != tokens.access_token
    assert fresh.id_claims["sub"] == tokens.sub
    with pytest.raises(FlowError) as info:
        refresh_tokens(client, tokens.refresh_token)  # the rotated-out token is dead
    assert error_of(info) == "token_error"
    fake_issuer.rotate_refresh_tokens = False
    kept = refresh_tokens(client, fresh.refresh_token)
    assert kept.refresh_token == fresh.refresh_token


def test_refresh_with_other_subject_refused(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    fake_issuer.id_token_claims["sub"] = "someone-else"
    with pytest.raises(FlowError) as info:
        refresh_tokens(client, tokens.refresh_token, expected_sub=tokens.sub)
    assert error_of(info) == "invalid_id_token"


def test_refresh_without_id_token_keeps_the_previous_one(client, fake_issuer, sign_in):
    """OIDC Core §12.2: a refresh response need not carry an ID token.

    The sign-in's ID token still describes the user.
    """
    tokens = complete_sign_in(client, *sign_in())
    fake_issuer.token_extra["id_token"] = None
    fresh = refresh_tokens(client, tokens.refresh_token, previous=tokens)
    assert fresh.access_token != tokens.access_token
    assert fresh.id_token == tokens.id_token and fresh.id_claims == tokens.id_claims
    bare = refresh_tokens(client, fresh.refresh_token)
    assert bare.id_token is None  # without previous: nothing to keep
    fake_issuer.token_extra.clear()
    fake_issuer.id_token_claims["sub"] = "someone-else"
    with pytest.raises(FlowError) as info:  # previous also supplies expected_sub
        refresh_tokens(client, bare.refresh_token, previous=fresh)
    assert error_of(info) == "invalid_id_token"


def test_client_credentials_with_private_key_jwt(settings, fake_issuer, tmp_path):
    key_file = tmp_path / "service.pem"
    key_file.write_bytes(private_key_pem(generate_private_key()))
    fake_issuer.clients["service"] = {"secret": None, "jwk": public_jwk(key_file)}
    client = Client(
        Issuer(settings),
        client_id="service",
        token_endpoint_auth_method="private_key_jwt",
        private_key_path=str(key_file),
    )
    log = FlowLog()
    tokens = client_credentials(narrating(client, log), "customScope")
    assert tokens.access_token and tokens.id_token is None
    assertion = fake_issuer.assertions[-1]
    assert assertion["header"]["kid"] == public_jwk(key_file)["kid"]
    claims = assertion["claims"]
    assert claims["iss"] == claims["sub"] == "service" and claims["aud"] == fake_issuer.url("token")
    assert 0 < claims["exp"] - claims["iat"] <= 300 and claims["jti"]
    assert "[redacted]" in json.dumps(log.to_list())
    assert fake_issuer.last("token").form["client_assertion"] not in json.dumps(log.to_list())


def test_password_grant_never_logs_password(settings, fake_issuer):
    client = Client(
        Issuer(settings), client_id=fake_issuer.client_id, client_secret=fake_issuer.client_secret
    )
    log = FlowLog()
    client = narrating(client, log)
    tokens = password_grant(client, fake_issuer.user["email"], fake_issuer.password, "openid profile")
    tokens.id_claims = validate_id_token(
        client, tokens.id_token, nonce=None, access_token=tokens.access_token
    )
    assert tokens.id_claims["sub"] == fake_issuer.user["sub"]
    assert (
        fake_issuer.password not in json.dumps(log.to_list())
        and fake_issuer.password not in log.render_text()
    )
    with pytest.raises(FlowError) as info:
        password_grant(client, fake_issuer.user["email"], "wrong", "openid")
    assert error_of(info) == "token_error"


def test_private_key_from_jwk_file(tmp_path):
    from common.keys import load_private_key

    key = generate_private_key("EC")
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key.as_dict(private=True)))
    jwk = public_jwk(path)
    assert jwk["kid"] == key.thumbprint() and jwk["alg"] == "ES256" and "d" not in jwk
    assert load_private_key(path).is_private
    (tmp_path / "pub.json").write_text(json.dumps(jwk))
    with pytest.raises(ValueError):
        load_private_key(tmp_path / "pub.json")
