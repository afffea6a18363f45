"""Every answer that sets (or deletes) a session cookie carries ``Cache-Control: no-store``.

Flask writes the session cookie after the ``after_request`` hooks, so the
security-headers hook never saw it; the session store now marks those
answers itself (``common/session_store.py`` ``mark_no_store``), for every
app and for the dev issuer's sign-in.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin

import requests

from tests.web_app.conftest import extra_users, start_sign_in


def _assert_no_store_when_cookie_is_set(response, what: str) -> None:
    assert "Set-Cookie" in response.headers, f"{what}: expected to set the session cookie"
    assert "no-store" in response.headers.get("Cache-Control", ""), (what, dict(response.headers))


def test_web_app_login_that_sets_the_cookie_is_not_stored(client):
    response = client.get("/login")
    assert response.status_code == 302
    _assert_no_store_when_cookie_is_set(response, "web_app /login")


def test_web_app_sign_out_that_deletes_the_cookie_is_not_stored(client):
    client.get("/login")
    with client.session_transaction() as session:
        session["csrf_token"] = "t"
    response = client.post("/logout", data={"csrf_token": "t"})
    assert response.status_code == 302
    _assert_no_store_when_cookie_is_set(response, "web_app /logout")


def test_issuer_sign_in_get_and_post_are_not_stored(dev_issuer, web_app, suite_env):
    """The issuer's sign-in form (GET) and its answer (POST), each setting the issuer's session cookie."""
    http = requests.Session()
    authorize = http.get(start_sign_in(http, suite_env["WEB_BASE_URL"]), allow_redirects=False)
    # Follow the issuer's own redirects (if any) to the form, checking every cookie-setting answer.
    while authorize.is_redirect:
        if "Set-Cookie" in authorize.headers:
            _assert_no_store_when_cookie_is_set(authorize, f"issuer redirect {authorize.url}")
        authorize = http.get(urljoin(authorize.url, authorize.headers["Location"]), allow_redirects=False)
    page = authorize.text
    assert 'id="sign-in-form"' in page, page[:2000]
    _assert_no_store_when_cookie_is_set(authorize, "issuer sign-in GET")

    def hidden(name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]*)"', page)
        return unescape(match.group(1)) if match else ""

    username, password = extra_users(suite_env)[3]
    posted = http.post(
        urljoin(authorize.url, "/signin"),
        data={
            "csrf_token": hidden("csrf_token"),
            "next": hidden("next"),
            "username": username,
            "password": password,
        },
        allow_redirects=False,
    )
    assert posted.status_code in {302, 303}, posted.text[:2000]
    _assert_no_store_when_cookie_is_set(posted, "issuer sign-in POST")
