"""The web app as a real process: gunicorn (4 workers), dev issuer, resource server, Redis.

An HTTP client plays the browser: it follows redirects, submits the
issuer's sign-in form and posts the app's forms.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import redis
import requests

from common.client import Client
from common.config import load_settings
from common.introspection import introspect
from common.issuer import Issuer
from common.session import load_stored_session
from common.tokens import TokenSet
from tests.web_app.conftest import (
    at_issuer,
    demo_user,
    element_text,
    extra_users,
    form_csrf,
    sign_in,
    start_sign_in,
)

COOKIE = "web_app_session"


def stored_tokens(env: dict, http: requests.Session) -> TokenSet:
    """The tokens the web app keeps for this browser, read straight from Redis."""
    sid = http.cookies.get(COOKIE)
    raw = redis.Redis.from_url(env["REDIS_URL"]).get(f"web_app:session:{sid}")
    assert raw is not None, "no server-side session for this cookie"
    return TokenSet.from_dict(load_stored_session(raw)["tokens"])


def web_client(env: dict) -> Client:
    """The web app's own client registration, for introspection from the test."""
    settings = load_settings(env)
    return Client(
        Issuer(settings),
        client_id=settings.web_client_id,
        client_secret=settings.web_client_secret,
        redirect_uri=settings.web_redirect_uri,
    )


def test_sign_in_profile_and_api(web_app, suite_env):
    base = suite_env["WEB_BASE_URL"]
    username, password = demo_user(suite_env)
    http = requests.Session()
    profile = sign_in(http, base, username, password)
    assert profile.status_code == 200 and urlsplit(profile.url).path == "/profile"
    assert username in element_text(profile.text, "claims")
    # The browser holds only an opaque, HttpOnly session id: no token in any cookie.
    assert set(http.cookies.keys()) >= {COOKIE}
    tokens = stored_tokens(suite_env, http)
    for cookie in http.cookies:
        assert tokens.access_token not in (cookie.value or "")
    assert tokens.refresh_token and tokens.id_token
    assert tokens.access_token not in profile.text and tokens.refresh_token not in profile.text

    answer = http.post(base + "/call-api", data={"csrf_token": form_csrf(profile.text)})
    assert answer.status_code == 200
    result = json.loads(element_text(answer.text, "api-result"))
    # (Okta-shaped access tokens name the user by login, ID tokens by id.)
    assert result["sub"] in {tokens.sub, username}
    assert result["messages"]
    assert result["client_id"] == load_settings(suite_env).web_client_id

    # Compact: the tokens (with the DPoP key they are bound to, at an issuer that
    # offers DPoP), a few claims and a bounded flow log (with its decoded proofs), compressed.
    raw = redis.Redis.from_url(suite_env["REDIS_URL"]).get(f"web_app:session:{http.cookies.get(COOKIE)}")
    assert len(raw) < 6144, len(raw)
    assert load_stored_session(raw)["tokens"]["access_token"] == tokens.access_token

    inspector = http.get(base + "/inspector")
    assert inspector.status_code == 200 and 'id="inspector"' in inspector.text
    for title in (
        "Authorization request",
        "Callback",
        "Token request (authorization code)",
        "ID token validation",
        "Call the API",
    ):
        assert title in inspector.text
    assert load_settings(suite_env).web_client_secret not in inspector.text
    assert tokens.access_token not in inspector.text


def test_sign_out_revokes_and_ends_the_issuer_session(web_app, suite_env):
    base = suite_env["WEB_BASE_URL"]
    username, password = demo_user(suite_env)
    http = requests.Session()
    profile = sign_in(http, base, username, password)
    tokens = stored_tokens(suite_env, http)
    client = web_client(suite_env)
    assert introspect(client, tokens.refresh_token, "refresh_token")["active"] is True
    old_sid = http.cookies.get(COOKIE)

    response = http.post(
        base + "/logout", data={"csrf_token": form_csrf(profile.text)}, allow_redirects=False
    )
    assert response.status_code == 302
    end_session = response.headers["Location"]
    query = parse_qs(urlsplit(end_session).query)
    assert query["id_token_hint"] == [tokens.id_token]
    assert query["post_logout_redirect_uri"] == [base + "/"]
    assert query["state"][0]

    # Revoked at the issuer, and gone from Redis.
    assert introspect(client, tokens.refresh_token, "refresh_token")["active"] is False
    assert not redis.Redis.from_url(suite_env["REDIS_URL"]).exists(f"web_app:session:{old_sid}")

    # The issuer ends its session and sends the browser home with our state.
    home = http.get(end_session)
    assert urlsplit(home.url).path == "/" and urlsplit(home.url).netloc == urlsplit(base).netloc
    assert "signed out, here and at the issuer" in home.text
    assert 'id="sign-in"' in home.text
    assert http.get(base + "/profile", allow_redirects=False).status_code == 302

    # Signed out at the issuer too: a new sign-in shows its sign-in form again.
    page = http.get(base + "/login")
    assert urlsplit(page.url).netloc != urlsplit(base).netloc
    assert 'id="sign-in-form"' in page.text


def test_hundred_interleaved_sign_ins(web_app, suite_env):
    """100 browsers, 5 users, 4 workers: every step of every sign-in interleaved."""
    base = suite_env["WEB_BASE_URL"]
    users = extra_users(suite_env)
    assert len(users) >= 5
    browsers = [(requests.Session(), users[i % len(users)]) for i in range(100)]

    def start(item):
        http, _ = item
        return start_sign_in(http, base)

    def authenticate(args):
        (http, (username, password)), authorization_url = args
        return at_issuer(http, authorization_url, username, password)

    def finish(args):
        (http, _), callback_url = args
        return http.get(callback_url)

    with ThreadPoolExecutor(max_workers=16) as pool:
        # Every sign-in starts before any finishes; each phase in a shuffled order.
        order = list(range(100))
        random.shuffle(order)
        urls = dict(zip(order, pool.map(start, [browsers[i] for i in order]), strict=False))
        random.shuffle(order)
        callbacks = dict(
            zip(order, pool.map(authenticate, [(browsers[i], urls[i]) for i in order]), strict=False)
        )
        random.shuffle(order)
        profiles = dict(
            zip(order, pool.map(finish, [(browsers[i], callbacks[i]) for i in order]), strict=False)
        )
        # And once more, every browser reloading its profile at the same time.
        random.shuffle(order)
        again = dict(
            zip(
                order,
                pool.map(lambda item: item[0].get(base + "/profile"), [browsers[i] for i in order]),
                strict=False,
            )
        )

    for i, (_http, (username, _)) in enumerate(browsers):
        for page in (profiles[i], again[i]):
            assert page.status_code == 200 and urlsplit(page.url).path == "/profile", (
                i,
                page.status_code,
                page.text[:500],
            )
            assert username in element_text(page.text, "claims")
            for other, _ in users:
                if other != username:
                    assert other not in page.text
    # Each browser has its own session id.
    assert len({http.cookies.get(COOKIE) for http, _ in browsers}) == 100
