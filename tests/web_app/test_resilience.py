"""Refresh, restart and Redis outages, on a private suite (``short_suite``).

Its access tokens live two seconds, so every API call after a short wait
needs the refresh token; its web app and Redis belong to these tests alone,
so they can be restarted and paused.
"""

from __future__ import annotations

import os
import signal
import time
from urllib.parse import urlsplit

import requests

from common.introspection import introspect
from common.logout import revoke_token
from tests.web_app.conftest import demo_user, element_text, form_csrf, sign_in
from tests.web_app.test_integration import stored_tokens, web_client


def _signed_in(suite) -> tuple[requests.Session, requests.Response]:
    http = requests.Session()
    username, password = demo_user(suite.env)
    page = sign_in(http, suite.web_base_url, username, password)
    assert page.status_code == 200 and username in element_text(page.text, "claims")
    return http, page


def _wait_until_expired(tokens) -> None:
    time.sleep(max(0.0, tokens.expires_at - time.time()) + 1.1)


def test_refresh_after_expiry_with_rotation(short_suite):
    http, page = _signed_in(short_suite)
    first = stored_tokens(short_suite.env, http)
    _wait_until_expired(first)
    # Without a refresh the API would refuse the expired token.
    api = requests.get(
        short_suite.env["API_URL"] + "/api/messages",
        headers={"Authorization": f"Bearer {first.access_token}"},
        timeout=5,
    )
    assert api.status_code == 401

    answer = http.post(short_suite.web_base_url + "/call-api", data={"csrf_token": form_csrf(page.text)})
    assert answer.status_code == 200, answer.text[:1000]
    assert element_text(answer.text, "api-status") == "HTTP 200"
    second = stored_tokens(short_suite.env, http)
    assert second.access_token != first.access_token
    # Rotation: a new refresh token replaced the old one, which is now dead.
    assert second.refresh_token != first.refresh_token
    client = web_client(short_suite.env)
    assert introspect(client, first.refresh_token, "refresh_token")["active"] is False
    # The profile still knows the user (the ID token from the sign-in is kept).
    assert second.sub == first.sub

    # And again, with the rotated refresh token.
    _wait_until_expired(second)
    answer = http.post(short_suite.web_base_url + "/call-api", data={"csrf_token": form_csrf(answer.text)})
    assert element_text(answer.text, "api-status") == "HTTP 200"
    assert stored_tokens(short_suite.env, http).refresh_token != second.refresh_token
    assert "Token request (refresh)" in http.get(short_suite.web_base_url + "/inspector").text


def test_failed_refresh_asks_to_sign_in_again(short_suite):
    http, page = _signed_in(short_suite)
    tokens = stored_tokens(short_suite.env, http)
    revoke_token(web_client(short_suite.env), tokens.refresh_token)
    _wait_until_expired(tokens)

    answer = http.post(short_suite.web_base_url + "/call-api", data={"csrf_token": form_csrf(page.text)})
    assert urlsplit(answer.url).path == "/"
    assert "Please sign in again" in answer.text
    assert 'id="sign-in"' in answer.text
    assert http.get(short_suite.web_base_url + "/profile", allow_redirects=False).status_code == 302


def test_restart_keeps_users_signed_in(short_suite):
    http, _ = _signed_in(short_suite)
    cookie = http.cookies.get("web_app_session")
    short_suite.web.stop()
    short_suite.web.start()
    profile = http.get(short_suite.web_base_url + "/profile", allow_redirects=False)
    assert profile.status_code == 200
    assert demo_user(short_suite.env)[0] in element_text(profile.text, "claims")
    assert http.cookies.get("web_app_session") == cookie


def test_redis_outage_gives_a_503_and_the_user_continues_afterwards(short_suite):
    http, _ = _signed_in(short_suite)
    pid = short_suite.redis.proc.pid
    # SIGSTOP, not a kill: the paused Redis keeps its data (it runs with
    # --save ""), as a Redis behind a network blip would.
    os.kill(pid, signal.SIGSTOP)
    try:
        down = http.get(short_suite.web_base_url + "/profile", allow_redirects=False, timeout=20)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert down.status_code == 503
    assert element_text(down.text, "error-code") == "temporarily_unavailable"
    assert "Traceback" not in down.text and 'id="try-again"' in down.text

    back = http.get(short_suite.web_base_url + "/profile", allow_redirects=False)
    assert back.status_code == 200
    assert demo_user(short_suite.env)[0] in element_text(back.text, "claims")
