"""The SPA's backend for frontend as real processes: spa_app under gunicorn, dev issuer, API, Redis.

``requests`` plays the page (navigations to /bff/login and the callback,
``fetch``-like calls with ``X-CSRF: 1``); the tokens must stay in Redis.
"""

from __future__ import annotations

import http.client as http_client
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from common.client import Client
from common.config import load_settings
from common.introspection import introspect
from common.issuer import Issuer
from common.logout import revoke_token
from common.tokens import TokenSet
from tests.spa_app.bff_helpers import (
    COOKIE,
    CSRF,
    JWT_SHAPE,
    bff_sign_in,
    expire_access_token,
    redis_of,
    refresh_steps,
    session_key,
    stored_session,
)
from tests.web_app.conftest import demo_user, extra_users


def bff_client(env: dict) -> Client:
    """The BFF's own registration, for introspection and revocation from the test."""
    settings = load_settings(env)
    return Client(
        Issuer(settings),
        client_id=settings.spa_bff_client_id,
        client_secret=settings.spa_bff_client_secret,
        redirect_uri=settings.spa_bff_redirect_uri,
    )


def signed_in(env: dict, username: str | None = None, password: str | None = None) -> requests.Session:
    """A browser signed in to the BFF."""
    if username is None:
        username, password = demo_user(env)
    http = requests.Session()
    bff_sign_in(http, env["SPA_BASE_URL"], username, password)
    return http


def test_sign_in_user_api_and_sign_out(spa_app, suite_env):
    base = suite_env["SPA_BASE_URL"]
    username, password = demo_user(suite_env)
    http = requests.Session()
    callback = bff_sign_in(http, base, username, password, return_to="/?mode=bff")
    assert callback.headers["Location"] == "/?mode=bff"
    bodies = [callback.text]

    user = http.get(base + "/bff/user", headers=CSRF)
    assert user.status_code == 200
    claims = user.json()
    assert claims["sub"] and claims["email"] == username
    assert "access_token" not in user.text and "id_token" not in user.text
    bodies.append(user.text)

    api = http.get(base + "/bff/api/messages", headers=CSRF)
    assert api.status_code == 200, api.text
    assert api.json()["messages"]
    assert api.json()["client_id"] == load_settings(suite_env).spa_bff_client_id
    bodies.append(api.text)

    inspector = http.get(base + "/bff/inspector", headers=CSRF)
    titles = [step["title"] for step in inspector.json()["steps"]]
    assert "Authorization request" in titles and "ID token validation" in titles
    bodies.append(inspector.text)

    tokens = TokenSet.from_dict(stored_session(suite_env, http)["tokens"])
    client = bff_client(suite_env)
    assert introspect(client, tokens.refresh_token, "refresh_token")["active"] is True
    key = session_key(http)

    logout = http.post(base + "/bff/logout", headers=CSRF)
    assert logout.status_code == 200
    bodies.append(logout.text)
    query = parse_qs(urlsplit(logout.json()["logout_url"]).query)
    assert query["post_logout_redirect_uri"] == [base + "/"]
    assert query["state"][0] and query["id_token_hint"] == [tokens.id_token]
    # Revoked at the issuer, gone from Redis, and the cookie deleted.
    assert introspect(client, tokens.refresh_token, "refresh_token")["active"] is False
    assert not redis_of(suite_env).exists(key)
    assert COOKIE not in http.cookies
    assert http.get(base + "/bff/user", headers=CSRF).status_code == 401

    # No token in any body the page received (the logout answer's ID token
    # hint is inside the issuer's URL, which the page only navigates to).
    for body in bodies[:-1]:
        assert not JWT_SHAPE.search(body), body[:300]


def test_session_cookie_is_httponly_lax_and_its_own(spa_app, suite_env):
    base = suite_env["SPA_BASE_URL"]
    username, password = demo_user(suite_env)
    http = requests.Session()
    callback = bff_sign_in(http, base, username, password)
    cookie = callback.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert not any(part.startswith("domain=") for part in attributes)
    # The cookie is an opaque id, never a token.
    assert not JWT_SHAPE.search(cookie)


def test_the_in_browser_modes_never_get_a_cookie(spa_app, suite_env):
    base = suite_env["SPA_BASE_URL"]
    http = requests.Session()
    for path in ("/", "/?mode=pkce", "/login/callback?code=x&state=y", "/config.json", "/healthz"):
        response = http.get(base + path)
        assert response.status_code == 200 and "Set-Cookie" not in response.headers, path
    # Nor does a BFF call that is not signed in.
    assert "Set-Cookie" not in http.get(base + "/bff/user", headers=CSRF).headers


def test_expired_access_token_is_renewed_once_under_concurrent_calls(spa_app, suite_env):
    base = suite_env["SPA_BASE_URL"]
    http = signed_in(suite_env)
    before = TokenSet.from_dict(stored_session(suite_env, http)["tokens"])
    expire_access_token(suite_env, http)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: http.get(base + "/bff/api/messages", headers=CSRF), range(8)))
    assert [answer.status_code for answer in answers] == [200] * 8, [a.text for a in answers]

    after = TokenSet.from_dict(stored_session(suite_env, http)["tokens"])
    assert after.refresh_token != before.refresh_token and after.access_token != before.access_token
    # One token request for eight calls: the others waited on the session's lock.
    assert len(refresh_steps(http, base)) == 1
    # The renewed grant is alive (a second use of the old refresh token would have revoked it).
    assert http.get(base + "/bff/api/messages", headers=CSRF).status_code == 200


def test_revoked_refresh_token_signs_the_user_out_cleanly(spa_app, suite_env):
    base = suite_env["SPA_BASE_URL"]
    http = signed_in(suite_env)
    key = session_key(http)
    tokens = TokenSet.from_dict(stored_session(suite_env, http)["tokens"])
    revoke_token(bff_client(suite_env), tokens.refresh_token, token_type_hint="refresh_token")
    expire_access_token(suite_env, http)

    answer = http.get(base + "/bff/api/messages", headers=CSRF)
    assert answer.status_code == 401
    assert answer.json()["error"] == "login_required"
    assert not redis_of(suite_env).exists(key)
    assert COOKIE not in http.cookies
    assert http.get(base + "/bff/user", headers=CSRF).status_code == 401


def test_the_api_status_and_challenge_come_back_unchanged(spa_app, suite_env):
    base = suite_env["SPA_BASE_URL"]
    http = signed_in(suite_env)
    # A route the user's token may not call: the API's 403 and its challenge, unchanged.
    direct = requests.get(suite_env["API_URL"] + "/api/custom", headers={"Authorization": "Bearer x"})
    answer = http.get(base + "/bff/api/custom", headers=CSRF)
    assert answer.status_code == 403
    # The BFF's token is DPoP-bound at the dev issuer (DPOP=auto), so the API's challenge uses the
    # DPoP scheme (RFC 9449 §7.1); it reaches the page as the API wrote it.
    challenge = answer.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("DPoP ") and 'error="insufficient_scope"' in challenge
    assert direct.headers.get("WWW-Authenticate", "").startswith("Bearer")
    missing = http.get(base + "/bff/api/no-such-route", headers=CSRF)
    assert missing.status_code == 404
    # The proxy is still signed in after those answers.
    assert http.get(base + "/bff/user", headers=CSRF).status_code == 200


def test_two_users_across_workers_each_see_only_their_own(spa_app, suite_env):
    base = suite_env["SPA_BASE_URL"]
    users = extra_users(suite_env)[:4]
    browsers = [signed_in(suite_env, username, password) for username, password in users]

    def check(index: int) -> None:
        http, (username, _) = browsers[index % len(browsers)], users[index % len(users)]
        assert http.get(base + "/bff/user", headers=CSRF).json()["email"] == username
        assert http.get(base + "/bff/api/messages", headers=CSRF).json()["sub"] in {
            username,
            stored_session(suite_env, http)["tokens"]["id_claims"]["sub"],
        }

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, range(40)))


def test_the_bff_client_is_on_the_applications_page(dev_issuer, suite_env):
    settings = load_settings(suite_env)
    page = requests.get(settings.issuer_base_url + "/admin/apps", timeout=10).text
    card = re.search(r'<section class="card" id="app-spa-bff">(.*?)</section>', page, re.S).group(1)
    assert settings.spa_bff_client_id in card
    assert '<td class="client-type">confidential</td>' in card
    assert '<td class="auth-methods">client_secret_basic</td>' in card
    assert f"<code>{settings.spa_bff_redirect_uri}</code>" in card
    assert f"<code>{settings.spa_post_logout_redirect_uri}</code>" in card
    assert "implicit" not in card and "password" not in card
    assert settings.spa_bff_client_secret not in page


#: Raw request targets sent to gunicorn as they are (``requests`` would normalise dot segments).
RAW_TRICKS = {
    "dot_dot": "/bff/api/../../healthz",
    "encoded_slash": "/bff/api/..%2f..%2fhealthz",
    "encoded_backslash": "/bff/api/..%5Chealthz",
    "double_slash": "/bff/api//127.0.0.1/api/messages",
    "absolute_url": "/bff/api/http://127.0.0.1/api/messages",
    "userinfo": "/bff/api/@127.0.0.1/api/messages",
}


@pytest.mark.parametrize("trick", list(RAW_TRICKS))
def test_the_proxy_under_gunicorn_refuses_raw_tricks(spa_app, suite_env, trick):
    http = signed_in(suite_env)
    base = urlsplit(suite_env["SPA_BASE_URL"])
    connection = http_client.HTTPConnection(base.hostname, base.port, timeout=10)
    connection.request(
        "GET", RAW_TRICKS[trick], headers={**CSRF, "Cookie": f"{COOKIE}={http.cookies.get(COOKIE)}"}
    )
    response = connection.getresponse()
    body = response.read().decode()
    assert response.status == 400, (response.status, body[:300])
    assert '"invalid_path"' in body
