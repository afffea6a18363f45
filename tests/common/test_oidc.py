"""The relying party's protocol steps (common/issuer.py, authorization.py, tokens.py, id_token.py,
userinfo.py, logout.py, introspection.py) against the fake issuer over real HTTP."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from common.config import load_settings
from common.errors import FlowError
from common.inspector import FlowLog
from common.keys import generate_private_key, private_key_pem, public_jwk
from common.authorization import build_authorization_request
from common.client import Client
from common.id_token import validate_id_token
from common.introspection import introspect
from common.issuer import Issuer
from common.logout import end_session_url, revoke_token
from common.tokens import TokenSet, client_credentials, exchange_code, password_grant, refresh_tokens
from common.pkce import code_challenge_s256
from common.userinfo import userinfo
from tests.fake_issuer import Reply, cached_rsa_key, new_ec_key
from tests.relying_party import complete_sign_in, narrating

from .conftest import REDIRECT_URI


def error_of(excinfo) -> str:
    return excinfo.value.error


# -- discovery -------------------------------------------------------------------


def test_discovery_is_cached(client, fake_issuer):
    client.issuer.metadata()
    client.issuer.metadata()
    assert fake_issuer.count("discovery") == 1


def test_discovery_issuer_mismatch(client, fake_issuer):
    fake_issuer.discovery_overrides["issuer"] = fake_issuer.issuer + "/"
    with pytest.raises(FlowError) as info:
        client.issuer.metadata()
    assert error_of(info) == "issuer_misconfigured"


@pytest.mark.parametrize("script", ["fail", "html", "hang"])
def test_discovery_unreachable(client, fake_issuer, script):
    getattr(fake_issuer, script)("discovery")
    with pytest.raises(FlowError) as info:
        client.issuer.metadata()
    assert error_of(info) == "issuer_unreachable"
    assert info.value.hint


def test_issuer_down(settings):
    closed = load_settings({"ISSUER": "http://127.0.0.1:9/oauth2/default", "HTTP_TIMEOUT": "0.5"})
    client = Client(Issuer(closed), client_id="c", client_secret="s", redirect_uri=REDIRECT_URI)
    with pytest.raises(FlowError) as info:
        build_authorization_request(client, "openid")
    assert error_of(info) == "issuer_unreachable"


def test_non_https_endpoint_refused(client, fake_issuer):
    fake_issuer.discovery_overrides["token_endpoint"] = "http://issuer.example.com/token"
    with pytest.raises(FlowError) as info:
        exchange_code(client, "c", {"code_verifier": "v"})
    assert error_of(info) == "issuer_misconfigured"


# -- authorization request ------------------------------------------------------------


def test_authorization_request(client, fake_issuer):
    log = FlowLog()
    url, pending = build_authorization_request(narrating(client, log), "openid profile",
                                               extra={"state": "fixed", "prompt": "login"})
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(fake_issuer.url("authorize") + "?")
    assert query["response_type"] == "code"
    assert query["client_id"] == fake_issuer.client_id
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["state"] == pending["state"] != "fixed"
    assert query["nonce"] == pending["nonce"]
    assert query["code_challenge"] == code_challenge_s256(pending["code_verifier"])
    assert query["code_challenge_method"] == "S256"
    assert query["prompt"] == "login"
    assert set(pending) == {"state", "nonce", "code_verifier", "redirect_uri", "created_at", "scope"}
    json.dumps(pending)
    _, again = build_authorization_request(client, "openid")
    assert again["state"] != pending["state"] and again["nonce"] != pending["nonce"]
    assert again["code_verifier"] != pending["code_verifier"]
    assert log.steps[-1]["title"] == "Authorization request"


# -- the happy path -------------------------------------------------------------------


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
    assert checks == {"signature": True, "iss": True, "aud": True, "exp": True, "iat": True, "nonce": True, "at_hash": True}


def test_tokenset_round_trip_is_compact(client, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    stored = tokens.to_dict()
    assert TokenSet.from_dict(json.loads(json.dumps(stored))) == TokenSet(**{**tokens.__dict__, "id_claims": stored["id_claims"],
                                                                               "expires_at": stored["expires_at"]})
    assert "at_hash" not in stored["id_claims"] and "aud" not in stored["id_claims"]
    assert len(json.dumps(stored)) < 4096
    assert not tokens.expired()
    assert TokenSet("a", expires_at=time.time() + 10).expired(leeway=30)


def test_client_secret_post_and_public_client(settings, fake_issuer):
    post = Client(Issuer(settings), client_id=fake_issuer.client_id, client_secret=fake_issuer.client_secret,
                      redirect_uri=REDIRECT_URI, token_endpoint_auth_method="client_secret_post")
    url, pending = build_authorization_request(post, "openid")
    complete_sign_in(post, fake_issuer.authorize(url), pending)
    assert fake_issuer.last("token").form["client_secret"] == fake_issuer.client_secret
    public = Client(Issuer(settings), client_id="public-client", redirect_uri=REDIRECT_URI,
                    token_endpoint_auth_method="none")
    url, pending = build_authorization_request(public, "openid")
    tokens = complete_sign_in(public, fake_issuer.authorize(url), pending)
    assert tokens.id_claims["aud"] == "public-client"
    assert "client_secret" not in fake_issuer.last("token").form
    assert "Authorization" not in fake_issuer.last("token").headers


# -- callback rejections ----------------------------------------------------------------


def _issuer_error(client, pending, **params):
    """An error response as RFC 6749 §4.1.2.1 and RFC 9207 §2 shape it: our state, the issuer's iss."""
    return {"state": pending["state"], "iss": client.issuer.identifier, **params}


def test_error_parameter_is_passed_on_as_text(client, sign_in):
    _, pending = sign_in()
    log = FlowLog()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, _issuer_error(client, pending, error="access_denied", error_description=(
            "User said no <script>alert(1)</script>\r\nX-Injected: 1")), pending, log=log)
    assert error_of(info) == "access_denied"
    assert "User said no" in info.value.description
    assert "\n" not in info.value.description and "\r" not in info.value.description
    assert log.steps[-1]["error"]["error"] == "access_denied"


def test_error_description_is_bounded(client, sign_in):
    _, pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, _issuer_error(client, pending, error="access_denied", error_description="x" * 5000),
                               pending)
    assert error_of(info) == "access_denied"
    assert 300 <= len(info.value.description) < 400


def test_hostile_error_code_is_replaced(client, sign_in):
    _, pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, _issuer_error(client, pending, error='<img src=x onerror=alert(1)>"'), pending)
    assert error_of(info) == "authorization_error"


SPOOFED = "Your account is locked. Call support at +1 555 0100 and give your password"


@pytest.mark.parametrize("case", ["no_state", "foreign_state", "no_sign_in_pending"])
def test_unsolicited_error_is_refused_without_its_text(client, fake_issuer, sign_in, case):
    """RFC 6749 §10.12: an error response that does not carry our state is not ours.

    Anyone can link a user to the callback with ``?error=...&error_description=...``;
    showing that text would put the attacker's sentence on the app's own origin.
    """
    _, pending = sign_in()
    params = {"error": "account_locked", "error_description": SPOOFED, "iss": client.issuer.identifier}
    if case == "foreign_state":
        params["state"] = "a-state-this-client-never-sent"
    elif case == "no_sign_in_pending":
        params["state"] = pending["state"]
        pending = None
    log = FlowLog()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending, log=log)
    expected = "state_mismatch" if case == "foreign_state" else "state_missing"
    assert error_of(info) == expected
    shown = " ".join((info.value.error, info.value.description, info.value.hint))
    assert "Call support" not in shown and "account_locked" not in shown
    assert log.steps[-1]["error"]["error"] == expected
    assert fake_issuer.count("token") == 0


def test_error_without_iss_when_advertised_is_refused(client, sign_in):
    """RFC 9207 §2.4: ``iss`` is checked in error responses too (they can be mixed up as well)."""
    _, pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, {"state": pending["state"], "error": "access_denied",
                                "error_description": SPOOFED}, pending)
    assert error_of(info) == "iss_mismatch"
    assert "Call support" not in info.value.description


def test_error_page_escapes_description(client, sign_in):
    from flask import Flask

    from common.errors import register_error_handlers

    _, pending = sign_in()
    app = Flask(__name__, template_folder="../../common/templates")
    app.jinja_env.globals["url_for"] = lambda *a, **k: "/style.css"
    register_error_handlers(app)

    @app.route("/cb")
    def callback():
        complete_sign_in(client, _issuer_error(client, pending, error="access_denied",
                                             error_description="<script>alert(1)</script>"), pending)

    response = app.test_client().get("/cb", headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert b"<script>alert(1)</script>" not in response.data
    assert b"&lt;script&gt;" in response.data


def test_no_pending_sign_in(client, sign_in):
    params, _ = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, None)
    assert error_of(info) == "state_missing"


def test_state_missing(client, sign_in):
    params, pending = sign_in()
    del params["state"]
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "state_missing"


def test_foreign_state(client, fake_issuer, sign_in):
    params, _ = sign_in()
    _, other_pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, other_pending)
    assert error_of(info) == "state_mismatch"
    assert fake_issuer.count("token") == 0


def test_login_expired(client, fake_issuer, sign_in):
    params, pending = sign_in()
    pending["created_at"] -= 601
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "login_expired"
    assert fake_issuer.count("token") == 0


def test_rfc9207_iss_missing_when_advertised(client, fake_issuer, sign_in):
    params, pending = sign_in()
    del params["iss"]
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "iss_mismatch"
    assert fake_issuer.count("token") == 0


def test_rfc9207_iss_wrong(client, fake_issuer, sign_in):
    params, pending = sign_in()
    params["iss"] = "https://evil.test/oauth2/default"
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "iss_mismatch"


def test_rfc9207_iss_optional_when_not_advertised(client, fake_issuer, sign_in):
    fake_issuer.discovery_overrides["authorization_response_iss_parameter_supported"] = None
    fake_issuer.send_iss = False
    tokens = complete_sign_in(client, *sign_in())
    assert tokens.access_token


def test_code_missing(client, sign_in):
    params, pending = sign_in()
    del params["code"]
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "invalid_request"


def test_code_replay_is_token_error(client, sign_in):
    params, pending = sign_in()
    complete_sign_in(client, params, dict(pending))
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, dict(pending))
    assert error_of(info) == "token_error"
    assert "invalid_grant" in info.value.description
    assert info.value.issuer_error == "invalid_grant"


# -- token endpoint failures ---------------------------------------------------------------


@pytest.mark.parametrize("script,expected", [
    (lambda f: f.fail("token", 500), "token_error"),
    (lambda f: f.fail("token", 503), "token_error"),
    (lambda f: f.html("token"), "token_error"),
    (lambda f: f.hang("token", 2), "issuer_unreachable"),
    (lambda f: f.script("token", Reply(200, {"token_type": "Bearer", "expires_in": 10})), "token_error"),
    (lambda f: f.script("token", Reply(200, {"access_token": "x", "token_type": "mac"})), "token_error"),
    (lambda f: f.script("token", Reply(200, [1, 2])), "token_error"),
    (lambda f: f.script("token", Reply(302, "", {"Location": "http://evil.test/"})), "token_error"),
])
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


@pytest.mark.parametrize("expires_in", ["nan", float("nan"), 1e400, pytest.param(10**400, id="10**400"), 1e17, -5, 0,
                                        True, "soon", [3600]])
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


# -- ID token validation (OIDC Core 3.1.3.7) -----------------------------------------------


def validate(client, fake_issuer, claims=None, header=None, key=None, nonce="n-1", access_token=None):
    token = fake_issuer.mint_id_token({"nonce": "n-1", **(claims or {})}, header=header, key=key)
    return validate_id_token(client, token, nonce=nonce, access_token=access_token)


def test_valid_id_token(client, fake_issuer):
    assert validate(client, fake_issuer)["sub"] == fake_issuer.user["sub"]


@pytest.mark.parametrize("claims,check", [
    ({"iss": "https://evil.test/oauth2/default"}, "iss"),
    ({"aud": "someone-else"}, "aud"),
    ({"aud": "someone-else", "azp": "test-client"}, "aud"),
    ({"aud": ["test-client", "other"]}, "azp"),
    ({"aud": ["test-client", "other"], "azp": "other"}, "azp"),
    ({"azp": "other"}, "azp"),
    ({"exp": ("now", -61)}, "exp"),
    ({"iat": ("now", +120)}, "iat"),
    ({"nonce": "wrong"}, "nonce"),
    ({"nonce": None}, "nonce"),
    ({"sub": None}, "sub"),
])
def test_id_token_rejections(client, fake_issuer, claims, check):
    # Times are relative to when the test runs, not to when it was collected.
    now = int(time.time())
    claims = {k: now + v[1] if isinstance(v, tuple) else v for k, v in claims.items()}
    log = FlowLog()
    token = fake_issuer.mint_id_token({"nonce": "n-1", **claims})
    with pytest.raises(FlowError) as info:
        validate_id_token(narrating(client, log), token, nonce="n-1")
    assert error_of(info) == "invalid_id_token"
    failed = [c for c in log.steps[-1]["jwt"]["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == [check]
    assert log.steps[-1]["error"]["error"] == "invalid_id_token"


def test_several_audiences_with_right_azp(client, fake_issuer):
    assert validate(client, fake_issuer, {"aud": ["test-client", "other"], "azp": "test-client"})


def test_expiry_within_leeway_accepted(client, fake_issuer):
    validate(client, fake_issuer, {"exp": int(time.time()) - 30})


def test_bad_signature(client, fake_issuer):
    token = fake_issuer.mint_id_token({"nonce": "n-1"}, key=cached_rsa_key(6, fake_issuer.key.kid))
    with pytest.raises(FlowError) as info:
        validate_id_token(client, token, nonce="n-1")
    assert "signature" in info.value.description


def test_at_hash_mismatch(client, fake_issuer, sign_in):
    fake_issuer.id_token_claims["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, *sign_in())
    assert error_of(info) == "invalid_id_token" and "at_hash" in info.value.description


@pytest.mark.parametrize("at_hash", ["ü" * 22, "\u202e" + "A" * 21, 42])
def test_hostile_at_hash_is_rejected_not_crashed(client, fake_issuer, at_hash):
    """A non-ASCII at_hash is compared as bytes (hmac.compare_digest refuses non-ASCII str)."""
    with pytest.raises(FlowError) as info:
        validate(client, fake_issuer, claims={"at_hash": at_hash}, access_token="an-access-token")
    assert error_of(info) == "invalid_id_token" and "at_hash" in info.value.description


def test_at_hash_uses_the_algorithms_hash(settings, fake_issuer, sign_in):
    ec = new_ec_key("ec-1")
    fake_issuer.publish(fake_issuer.key, ec)
    fake_issuer.id_token_key = ec
    fake_issuer.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
    client = Client(Issuer(settings), client_id=fake_issuer.client_id, client_secret=fake_issuer.client_secret,
                        redirect_uri=REDIRECT_URI)
    url, pending = build_authorization_request(client, "openid")
    assert complete_sign_in(client, fake_issuer.authorize(url), pending).id_claims["sub"]


def test_es256_refused_unless_advertised(client, fake_issuer, sign_in):
    ec = new_ec_key("ec-1")
    fake_issuer.publish(fake_issuer.key, ec)
    fake_issuer.id_token_key = ec
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, *sign_in())
    assert "algorithm" in info.value.description


def test_unknown_kid_even_after_refetch(client, fake_issuer):
    validate(client, fake_issuer)
    client.issuer.keyset.refetch_cooldown = 0
    with pytest.raises(FlowError) as info:
        validate(client, fake_issuer, key=cached_rsa_key(5, "never-published"))
    assert "kid" in info.value.description
    assert fake_issuer.count("jwks") == 2


def test_rotated_kid_accepted_after_refetch(client, fake_issuer):
    validate(client, fake_issuer)
    client.issuer.keyset.refetch_cooldown = 0
    fake_issuer.rotate()
    assert validate(client, fake_issuer)["sub"]
    assert fake_issuer.count("jwks") == 2


def test_jwks_unreachable_is_issuer_unreachable(client, fake_issuer):
    fake_issuer.fail("jwks", 502)
    with pytest.raises(FlowError) as info:
        validate(client, fake_issuer)
    assert error_of(info) == "issuer_unreachable"


# -- after sign-in ------------------------------------------------------------------------


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


def test_userinfo(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    assert userinfo(client, tokens.access_token, expected_sub=tokens.sub)["email"] == fake_issuer.user["email"]
    fake_issuer.userinfo_claims = {"sub": "someone-else", "email": "evil@example.com"}
    log = FlowLog()
    with pytest.raises(FlowError) as info:
        userinfo(narrating(client, log), tokens.access_token, expected_sub=tokens.sub)
    assert error_of(info) == "invalid_userinfo"
    assert log.steps[-1]["error"]["error"] == "invalid_userinfo"
    with pytest.raises(FlowError) as info:
        userinfo(client, "not-a-token", expected_sub=tokens.sub)
    assert error_of(info) == "token_error"


def test_revoke_is_best_effort(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    assert revoke_token(client, tokens.refresh_token) is True
    assert fake_issuer.revoked == [tokens.refresh_token]
    fake_issuer.hang("revoke", 2)
    log = FlowLog()
    outcome = revoke_token(narrating(client, log), tokens.refresh_token)  # does not raise
    assert outcome is not True and "did not answer in time" in outcome
    assert log.steps[-1]["error"]["error"] == "issuer_unreachable"


@pytest.mark.parametrize("reply,expected", [
    (Reply(200, ""), True),  # RFC 7009 §2.2: the body of a success is ignored
    (Reply(400, {"error": "unsupported_token_type"}), "HTTP 400"),
    (Reply(503, ""), "HTTP 503"),
])
def test_revoke_reports_its_outcome(client, fake_issuer, reply, expected):
    fake_issuer.script("revoke", reply)
    outcome = revoke_token(client, "a-refresh-token")
    assert outcome is True if expected is True else expected in outcome


def test_refresh_without_id_token_keeps_the_previous_one(client, fake_issuer, sign_in):
    """OIDC Core §12.2: a refresh response need not carry an ID token; the sign-in's still describes the user."""
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


def test_end_session_url(client, fake_issuer):
    url = end_session_url(client, "id.token.hint", "http://localhost:5001/", "st")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(fake_issuer.url("end_session"))
    assert query == {"client_id": fake_issuer.client_id, "id_token_hint": "id.token.hint",
                     "post_logout_redirect_uri": "http://localhost:5001/", "state": "st"}
    fake_issuer.discovery_overrides["end_session_endpoint"] = None
    fresh = Client(Issuer(client.settings), client_id="c", client_secret="s")
    assert end_session_url(fresh, "x", "http://localhost:5001/", "st") is None


def test_client_credentials_with_private_key_jwt(settings, fake_issuer, tmp_path):
    key_file = tmp_path / "service.pem"
    key_file.write_bytes(private_key_pem(generate_private_key()))
    fake_issuer.clients["service"] = {"secret": None, "jwk": public_jwk(key_file)}
    client = Client(Issuer(settings), client_id="service", token_endpoint_auth_method="private_key_jwt",
                        private_key_path=str(key_file))
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
    client = Client(Issuer(settings), client_id=fake_issuer.client_id, client_secret=fake_issuer.client_secret)
    log = FlowLog()
    client = narrating(client, log)
    tokens = password_grant(client, fake_issuer.user["email"], fake_issuer.password, "openid profile")
    tokens.id_claims = validate_id_token(client, tokens.id_token, nonce=None, access_token=tokens.access_token)
    assert tokens.id_claims["sub"] == fake_issuer.user["sub"]
    assert fake_issuer.password not in json.dumps(log.to_list()) and fake_issuer.password not in log.render_text()
    with pytest.raises(FlowError) as info:
        password_grant(client, fake_issuer.user["email"], "wrong", "openid")
    assert error_of(info) == "token_error"


def test_introspect(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    assert introspect(client, tokens.access_token, "access_token")["active"] is True
    assert introspect(client, "nonsense") == {"active": False}


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
