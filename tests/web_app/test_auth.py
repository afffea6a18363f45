"""The web app in-process (Flask test client) against the scriptable test issuer and real Redis.

Covers the authorization request, every way the callback can fail, the
same-origin rule for ``next``, refresh failures, CSRF on sign-out and the
failure pages.  The real dev issuer is used by test_integration.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import free_port
from tests.web_app.conftest import element_text, form_csrf, make_client

COOKIE = "web_app_session"


def _start_login(client, **params):
    """GET /login; return (response, authorization request parameters)."""
    response = client.get("/login", query_string=params)
    assert response.status_code == 302, response.get_data(as_text=True)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return response, {k: v[0] for k, v in query.items()}


def _sign_in(client, fake_issuer, **params):
    """A whole sign-in; return the callback's response."""
    login, _ = _start_login(client, **params)
    callback = fake_issuer.authorize(login.headers["Location"])
    return client.get("/authorization-code/callback", query_string=callback)


def _session_data(app, client) -> dict:
    from common.session import load_stored_session

    return load_stored_session(
        app.config["SESSION_REDIS"].get(f"web_app:session:{client.get_cookie(COOKIE).value}")
    )


def _expire_access_token(client) -> None:
    with client.session_transaction() as session:
        tokens = dict(session["tokens"])
        tokens["expires_at"] = int(time.time()) - 10
        session["tokens"] = tokens


def test_healthz_needs_no_session(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_login_moves_to_the_configured_host_first(client, suite_env, fake_issuer):
    response = client.get("/login?next=/profile", headers={"Host": "127.0.0.1:5999"})
    assert response.status_code == 302
    assert response.headers["Location"] == suite_env["WEB_BASE_URL"] + "/login?next=/profile"
    assert "Set-Cookie" not in response.headers  # nothing started on the wrong host
    assert fake_issuer.count("discovery") == 0


def test_authorization_request_parameters(client, app, suite_env, fake_issuer):
    response, params = _start_login(client)
    assert response.headers["Location"].startswith(fake_issuer.url("authorize") + "?")
    assert params["response_type"] == "code"
    assert params["client_id"] == fake_issuer.client_id
    assert params["redirect_uri"] == suite_env["WEB_BASE_URL"] + "/authorization-code/callback"
    assert params["scope"].split() == ["openid", "profile", "email", "offline_access"]
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 22 and len(params["nonce"]) >= 22
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"])
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # Fresh values every time.
    _, again = _start_login(client)
    assert again["state"] != params["state"] and again["nonce"] != params["nonce"]
    assert again["code_challenge"] != params["code_challenge"]


def test_pending_login_keeps_the_verifier_server_side(client, app):
    response, params = _start_login(client)
    pending = _session_data(app, client)["pending_logins"][params["state"]]["pending"]
    digest = hashlib.sha256(pending["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == params["code_challenge"]
    assert pending["nonce"] == params["nonce"]
    assert pending["code_verifier"] not in response.headers["Location"]


def test_sign_in_regenerates_the_session_and_honours_next(client, app, fake_issuer):
    login, params = _start_login(client, next="/inspector")
    old_sid = client.get_cookie(COOKIE).value
    callback = fake_issuer.authorize(login.headers["Location"])
    assert callback["state"] == params["state"] and callback["iss"] == fake_issuer.issuer
    response = client.get("/authorization-code/callback", query_string=callback)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/inspector"

    # The token request: the code, the PKCE verifier and HTTP Basic client auth.
    token_request = fake_issuer.last("token")
    assert token_request.form["grant_type"] == "authorization_code"
    assert token_request.form["code"] == callback["code"]
    assert "code_verifier" in token_request.form
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in token_request.form

    # A new session id (session fixation), the old one gone from Redis.
    new_sid = client.get_cookie(COOKIE).value
    assert new_sid != old_sid
    store = app.config["SESSION_REDIS"]
    assert not store.exists(f"web_app:session:{old_sid}")
    data = _session_data(app, client)
    assert data["tokens"]["refresh_token"] and "pending_logins" not in data

    profile = client.get("/profile").get_data(as_text=True)
    assert fake_issuer.user["email"] in element_text(profile, "claims")
    inspector = client.get("/inspector").get_data(as_text=True)
    for title in (
        "Authorization request",
        "Callback",
        "Token request (authorization code)",
        "ID token validation",
    ):
        assert title in inspector
    assert fake_issuer.client_secret not in inspector


def test_state_and_code_are_single_use(client, fake_issuer):
    login, _ = _start_login(client)
    callback = fake_issuer.authorize(login.headers["Location"])
    assert client.get("/authorization-code/callback", query_string=callback).status_code == 302
    tokens_before = fake_issuer.count("token")
    # Replayed in another browser: refused, and the code is never sent again.
    other = make_client(client.application)
    replay = other.get("/authorization-code/callback", query_string=callback)
    assert replay.status_code == 400
    assert element_text(replay.get_data(as_text=True), "error-code") == "state_missing"
    # Replayed in the same, signed-in browser (a reload): the profile, the answer unread.
    reload = client.get("/authorization-code/callback", query_string=callback)
    assert reload.status_code == 302 and urlsplit(reload.headers["Location"]).path == "/profile"
    assert fake_issuer.count("token") == tokens_before  # the code was never sent again
    # A replayed (or forged) callback does not sign the user out.
    assert client.get("/profile").status_code == 200


@pytest.mark.parametrize(
    "target", ["https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)"]
)
def test_next_accepts_same_origin_paths_only(client, fake_issuer, target):
    response = _sign_in(client, fake_issuer, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/profile"


def test_issuer_error_is_shown_escaped_and_leaves_no_session(client, app, fake_issuer):
    _, params = _start_login(client)
    sid = client.get_cookie(COOKIE).value
    response = client.get(
        "/authorization-code/callback",
        query_string={
            "state": params["state"],
            "iss": fake_issuer.issuer,
            "error": "access_denied",
            "error_description": "<script>alert('x')</script> said no",
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert element_text(html, "error-code") == "access_denied"
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert 'id="try-again"' in html and 'id="error-hint"' in html and "Traceback" not in html
    assert client.get_cookie(COOKIE) is None
    assert not app.config["SESSION_REDIS"].exists(f"web_app:session:{sid}")


def test_callback_without_state(client, app, fake_issuer):
    login, params = _start_login(client)
    response = client.get("/authorization-code/callback?code=abc")
    assert response.status_code == 400
    assert element_text(response.get_data(as_text=True), "error-code") == "state_missing"
    # An answer without our state is not ours: the sign-in in flight is untouched and can finish.
    assert list(_session_data(app, client)["pending_logins"]) == [params["state"]]
    callback = fake_issuer.authorize(login.headers["Location"])
    assert client.get("/authorization-code/callback", query_string=callback).status_code == 302


def test_callback_with_a_foreign_state(client, app, fake_issuer):
    login, params = _start_login(client)
    callback = fake_issuer.authorize(login.headers["Location"])
    response = client.get("/authorization-code/callback", query_string={**callback, "state": "someone-elses"})
    assert response.status_code == 400
    assert element_text(response.get_data(as_text=True), "error-code") == "state_mismatch"
    assert fake_issuer.count("token") == 0
    assert list(_session_data(app, client)["pending_logins"]) == [params["state"]]
    assert client.get("/authorization-code/callback", query_string=callback).status_code == 302


SPOOFED = "Your account is locked. Call support at +1 555 0100 and give your password"


@pytest.mark.parametrize("signed_in", [False, True])
@pytest.mark.parametrize("state", [None, "forged-state"])
def test_unsolicited_error_shows_none_of_its_text(client, app, fake_issuer, signed_in, state):
    """RFC 6749 §10.12: anyone can link a user to the callback with an error of their choosing.

    Without the state of a sign-in this browser started, the answer is refused
    without repeating its error_description (no attacker text on our origin),
    and nothing in the session changes: the sign-in in flight in another tab
    and the signed-in session both survive.
    """
    if signed_in:
        _sign_in(client, fake_issuer)
    login, params = _start_login(client)
    before = _session_data(app, client)
    query = {"error": "account_locked", "error_description": SPOOFED, "iss": fake_issuer.issuer}
    if state:
        query["state"] = state
    response = client.get("/authorization-code/callback", query_string=query)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert element_text(html, "error-code") == ("state_mismatch" if state else "state_missing")
    assert "Call support" not in html and "account_locked" not in html
    # (The error page's Sign out form may add the session's anti-CSRF token; nothing else changes.)
    after = {key: value for key, value in _session_data(app, client).items() if key != "csrf_token"}
    assert after == {key: value for key, value in before.items() if key != "csrf_token"}
    # The real answer still completes the sign-in that was waiting for it.
    callback = fake_issuer.authorize(login.headers["Location"])
    assert client.get("/authorization-code/callback", query_string=callback).status_code == 302


def test_a_finished_sign_in_leaves_other_tabs_sign_ins_alone(client, app, fake_issuer):
    """Two tabs started a sign-in; the first to come back takes only its own pending entry."""
    first, first_params = _start_login(client)
    second, second_params = _start_login(client)
    # The first tab's answer is an error (the user cancelled there): only that entry goes.
    response = client.get(
        "/authorization-code/callback",
        query_string={"state": first_params["state"], "iss": fake_issuer.issuer, "error": "access_denied"},
    )
    assert element_text(response.get_data(as_text=True), "error-code") == "access_denied"
    assert list(_session_data(app, client)["pending_logins"]) == [second_params["state"]]
    callback = fake_issuer.authorize(second.headers["Location"])
    assert client.get("/authorization-code/callback", query_string=callback).status_code == 302
    assert client.get("/profile").status_code == 200


@pytest.mark.parametrize("repeated", ["state", "code", "iss"])
def test_callback_with_a_repeated_parameter_is_refused(client, app, fake_issuer, repeated):
    """RFC 6749 §3.1: parameters must not appear twice; which one would the issuer have meant?"""
    login, params = _start_login(client)
    callback = fake_issuer.authorize(login.headers["Location"])
    query = [*callback.items(), (repeated, "another-value")]
    response = client.get("/authorization-code/callback", query_string=query)
    assert response.status_code == 400
    assert element_text(response.get_data(as_text=True), "error-code") == "invalid_request"
    assert fake_issuer.count("token") == 0
    assert list(_session_data(app, client)["pending_logins"]) == [params["state"]]


@pytest.mark.parametrize("expires_in", ["nan", 1e400, 1e17, pytest.param(10**400, id="10**400")])
def test_unusual_expires_in_does_not_break_sign_in_or_profile(client, fake_issuer, expires_in):
    """RFC 6749 §5.1: expires_in is a lifetime in seconds; an absurd one is treated as unknown."""
    fake_issuer.token_extra["expires_in"] = expires_in
    response = _sign_in(client, fake_issuer)
    assert response.status_code == 302, response.get_data(as_text=True)
    profile = client.get("/profile")
    assert profile.status_code == 200
    assert element_text(profile.get_data(as_text=True), "access-token-expiry") == "at an unknown time"


def test_time_formatting_never_raises():
    from common.display import format_utc

    assert format_utc(0) == "1970-01-01 00:00:00 UTC"
    for value in (1e17, float("nan"), float("inf"), -1e300, "soon", None):
        assert format_utc(value) == "unknown"


def test_callback_without_any_sign_in_started(client):
    response = client.get("/authorization-code/callback?code=abc&state=xyz")
    assert response.status_code == 400
    assert element_text(response.get_data(as_text=True), "error-code") == "state_missing"
    assert client.get_cookie(COOKIE) is None


def test_callback_from_another_issuer(client, fake_issuer):
    """RFC 9207: the issuer advertises ``iss`` on the callback, so it must match."""
    login, _ = _start_login(client)
    callback = fake_issuer.authorize(login.headers["Location"])
    response = client.get(
        "/authorization-code/callback", query_string={**callback, "iss": "https://evil.test"}
    )
    assert element_text(response.get_data(as_text=True), "error-code") == "iss_mismatch"
    assert client.get_cookie(COOKIE) is None


def test_id_token_for_another_client_is_refused(client, fake_issuer):
    fake_issuer.id_token_claims = {"aud": "someone-else"}
    response = _sign_in(client, fake_issuer)
    assert response.status_code >= 400
    assert element_text(response.get_data(as_text=True), "error-code") == "invalid_id_token"
    assert client.get_cookie(COOKIE) is None


def test_login_that_took_too_long(client, app, fake_issuer):
    _, params = _start_login(client)
    with client.session_transaction() as session:
        pending_logins = session["pending_logins"]
        pending_logins[params["state"]]["pending"]["created_at"] = time.time() - 3600
        session["pending_logins"] = pending_logins
    response = client.get(
        "/authorization-code/callback",
        query_string={"code": "abc", "state": params["state"], "iss": fake_issuer.issuer},
    )
    assert response.status_code == 400
    assert element_text(response.get_data(as_text=True), "error-code") == "login_expired"
    assert client.get_cookie(COOKIE) is None


def test_signed_out_user_is_sent_to_sign_in(client):
    response = client.get("/profile")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/profile"


def test_expired_token_with_a_refused_refresh_asks_to_sign_in_again(client, fake_issuer):
    _sign_in(client, fake_issuer)
    page = client.get("/profile").get_data(as_text=True)
    _expire_access_token(client)
    fake_issuer.refresh_tokens.clear()  # the issuer forgot (revoked) every refresh token
    response = client.post("/call-api", data={"csrf_token": form_csrf(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Please sign in again" in home and 'id="sign-in"' in home
    assert client.get("/profile").status_code == 302


def test_issuer_down_during_refresh_keeps_the_session(client, fake_issuer):
    _sign_in(client, fake_issuer)
    page = client.get("/profile").get_data(as_text=True)
    _expire_access_token(client)
    fake_issuer.fail("token", 503)
    response = client.post("/call-api", data={"csrf_token": form_csrf(page)})
    assert response.status_code == 502
    assert element_text(response.get_data(as_text=True), "error-code") in {
        "issuer_unreachable",
        "token_error",
    }
    assert client.get("/profile").status_code == 200


def test_call_api_needs_the_csrf_token(client, fake_issuer):
    _sign_in(client, fake_issuer)
    assert client.post("/call-api", data={"csrf_token": "forged"}).status_code == 400


def test_sign_out(client, app, fake_issuer, suite_env):
    _sign_in(client, fake_issuer)
    refresh_token = _session_data(app, client)["tokens"]["refresh_token"]
    id_token = _session_data(app, client)["tokens"]["id_token"]
    sid = client.get_cookie(COOKIE).value
    page = client.get("/profile").get_data(as_text=True)

    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/profile").status_code == 200  # still signed in

    response = client.post("/logout", data={"csrf_token": form_csrf(page)})
    assert response.status_code == 302
    assert fake_issuer.revoked == [refresh_token]
    assert not app.config["SESSION_REDIS"].exists(f"web_app:session:{sid}")
    end_session = urlsplit(response.headers["Location"])
    assert f"{end_session.scheme}://{end_session.netloc}{end_session.path}" == fake_issuer.url("end_session")
    query = {k: v[0] for k, v in parse_qs(end_session.query).items()}
    assert query["id_token_hint"] == id_token
    assert query["post_logout_redirect_uri"] == suite_env["WEB_BASE_URL"] + "/"

    # The issuer sends the browser home with our state: confirmed signed out.
    home = client.get("/", query_string={"state": query["state"]}, follow_redirects=True).get_data(
        as_text=True
    )
    assert "signed out, here and at the issuer" in home
    assert client.get("/profile").status_code == 302
    # A forged state on the home page confirms nothing.
    assert "signed out, here and at the issuer" not in client.get(
        "/?state=forged", follow_redirects=True
    ).get_data(as_text=True)


def test_issuer_unreachable(suite_env):
    from web_app import create_app

    dead = f"http://127.0.0.1:{free_port()}/oauth2/default"
    client = make_client(create_app({**suite_env, "ISSUER": dead, "HTTP_TIMEOUT": "2", "TESTING": True}))
    response = client.get("/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 502
    assert element_text(html, "error-code") == "issuer_unreachable"
    assert 'id="error-hint"' in html and 'id="try-again"' in html and "Traceback" not in html
    assert client.get_cookie(COOKIE) is None


def test_redis_unreachable(suite_env, fake_issuer):
    from web_app import create_app

    client = make_client(
        create_app({**suite_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "TESTING": True})
    )
    client.set_cookie(COOKIE, "x" * 32)
    response = client.get("/profile")
    assert response.status_code == 503
    assert element_text(response.get_data(as_text=True), "error-code") == "temporarily_unavailable"
    assert response.headers.get("Retry-After")


# -- a signed-in user back on the callback (a reload, Back, a second tab) ----------------------------


def test_reloading_the_callback_when_signed_in_shows_the_profile_with_a_notice(client, fake_issuer):
    login, _ = _start_login(client)
    callback = fake_issuer.authorize(login.headers["Location"])
    assert client.get("/authorization-code/callback", query_string=callback).status_code == 302
    tokens_before = fake_issuer.count("token")
    reload = client.get("/authorization-code/callback", query_string=callback, follow_redirects=True)
    html = reload.get_data(as_text=True)
    assert reload.status_code == 200 and reload.request.path == "/profile"
    assert "You are already signed in" in html and 'id="error-code"' not in html
    assert fake_issuer.count("token") == tokens_before


def test_finishing_in_a_second_tab_after_the_first_shows_the_profile(client, fake_issuer):
    first, _ = _start_login(client)
    second, _ = _start_login(client)
    first_answer = fake_issuer.authorize(first.headers["Location"])
    second_answer = fake_issuer.authorize(second.headers["Location"])
    assert client.get("/authorization-code/callback", query_string=first_answer).status_code == 302
    # The first tab's sign-in replaced the session (new id), so the second tab's state is gone.
    late = client.get("/authorization-code/callback", query_string=second_answer, follow_redirects=True)
    assert late.status_code == 200 and late.request.path == "/profile"
    assert "You are already signed in" in late.get_data(as_text=True)


def test_error_page_keeps_the_signed_in_navigation(client, fake_issuer):
    _sign_in(client, fake_issuer)
    _start_login(client)  # a sign-in in flight: a foreign answer is still refused
    response = client.get("/authorization-code/callback", query_string={"code": "x", "state": "forged"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and element_text(html, "error-code") == "state_mismatch"
    assert 'id="profile-link"' in html and 'id="sign-out"' in html
    not_found = client.get("/no-such-page").get_data(as_text=True)
    assert 'id="profile-link"' in not_found and 'id="sign-out"' in not_found


def test_error_page_of_a_signed_out_user_has_no_signed_in_links(client):
    html = client.get("/authorization-code/callback?code=x&state=y").get_data(as_text=True)
    assert 'id="error-code"' in html and 'id="profile-link"' not in html and 'id="sign-out"' not in html


# -- calling the API: post/redirect/get ---------------------------------------------------------------


def test_call_api_redirects_to_the_profile_with_the_answer_anchored(client, fake_issuer):
    _sign_in(client, fake_issuer)
    page = client.get("/profile").get_data(as_text=True)
    posted = client.post("/call-api", data={"csrf_token": form_csrf(page)})
    assert posted.status_code == 303
    assert posted.headers["Location"] == "/profile#api-answer"
    profile = client.get("/profile").get_data(as_text=True)
    assert element_text(profile, "api-status") == "HTTP 200" and 'id="api-answer"' in profile
    assert element_text(profile, "api-result")


def test_reloading_call_api_with_get_goes_to_the_profile_not_405(client, fake_issuer):
    _sign_in(client, fake_issuer)
    page = client.get("/profile").get_data(as_text=True)
    client.post("/call-api", data={"csrf_token": form_csrf(page)})
    calls = fake_issuer.count("api")
    reload = client.get("/call-api")
    assert reload.status_code == 303 and reload.headers["Location"] == "/profile#api-answer"
    landed = client.get("/call-api", follow_redirects=True)
    assert (
        landed.status_code == 200 and element_text(landed.get_data(as_text=True), "api-status") == "HTTP 200"
    )
    assert fake_issuer.count("api") == calls  # a GET never calls the API again


def test_call_api_by_get_when_signed_out_asks_to_sign_in(client):
    response = client.get("/call-api")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


def test_sign_out_without_an_end_session_endpoint_leaves_the_old_session_id_worthless(
    client, app, fake_issuer
):
    """The notice shown after a local-only sign-out lives under a new id, never the signed-in one."""
    fake_issuer.discovery_overrides["end_session_endpoint"] = None
    _sign_in(client, fake_issuer)
    sid = client.get_cookie(COOKIE).value
    page = client.get("/profile").get_data(as_text=True)
    response = client.post("/logout", data={"csrf_token": form_csrf(page)})
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/"
    assert not app.config["SESSION_REDIS"].exists(f"web_app:session:{sid}")
    new = client.get_cookie(COOKIE)
    assert new is None or new.value != sid
    assert "signed out of this app" in client.get("/").get_data(as_text=True)
