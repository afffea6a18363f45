"""Open redirects and security headers, against the running suite (gunicorn, real HTTP).

Open redirects (RFC 9700 §4.11): every parameter that says where to go
next — the web app's ``next``, the issuer's sign-in ``next``, the issuer's
``post_logout_redirect_uri``, the web app's post-logout landing — is tried
with off-site targets and the tricks browsers fall for (``//host``,
``/\\host``, control characters, ``javascript:``).  The answer must stay
on the site; a legitimate same-site target must still work, so that the
test can fail.

Security headers: every page carries a Content-Security-Policy with
``frame-ancestors 'none'`` (and ``X-Frame-Options`` for old browsers, above
all on pages with a password or a sign-in button), ``nosniff``, and, on
the pages whose URL carries a code or tokens (the callbacks), a
``Referrer-Policy`` that keeps the URL from leaking to other sites.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import redis
import requests

from common.session import load_stored_session
from tests.web_app.conftest import at_issuer, demo_user, extra_users, sign_in, start_sign_in

HOSTILE_TARGETS = [
    "https://evil.test/",
    "//evil.test/",
    "///evil.test/",
    "/\\evil.test",
    "\\\\evil.test",
    "/%5Cevil.test",
    "http:evil.test",
    "https:/evil.test",
    "javascript:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "/\t/evil.test",
    "/ok\r\nLocation: https://evil.test/",
    " https://evil.test/",
    "\x00//evil.test",
]


def lands_on(base_url: str, location: str) -> bool:
    """True when a redirect to ``location`` (relative to ``base_url``) stays on that origin."""
    if location.startswith(("//", "/\\", "\\")) or any(ord(ch) < 0x20 for ch in location):
        return False
    target = urlsplit(urljoin(base_url + "/", location))
    base = urlsplit(base_url)
    return (target.scheme, target.netloc) == (base.scheme, base.netloc)


# -- open redirects --------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_web_app_refuses_off_site_next_after_sign_in(web_app, suite_env, target):
    """``/login?next=...`` never sends the signed-in user off the site."""
    base = suite_env["WEB_BASE_URL"]
    username, password = extra_users(suite_env)[0]
    http = requests.Session()
    callback = at_issuer(http, start_sign_in(http, base, next_path=target), username, password)
    landing = http.get(callback, allow_redirects=False)
    assert landing.status_code == 302
    location = landing.headers["Location"]
    assert lands_on(base, location), location
    if target != "/%5Cevil.test":
        # (``/%5Cevil.test`` is a same-site path: browsers keep the escaped
        # backslash in the path, so following it is safe.)
        assert urlsplit(urljoin(base, location)).path == "/profile"


def test_web_app_follows_a_same_site_next(web_app, suite_env):
    """The control case: a same-site path is honoured, query string and all."""
    base = suite_env["WEB_BASE_URL"]
    username, password = extra_users(suite_env)[1]
    http = requests.Session()
    callback = at_issuer(
        http, start_sign_in(http, base, next_path="/inspector?from=test"), username, password
    )
    landing = http.get(callback, allow_redirects=False)
    assert landing.headers["Location"] in {"/inspector?from=test", base + "/inspector?from=test"}


def test_login_required_pages_send_a_same_site_next(web_app, suite_env):
    """The ``next`` the app builds itself (from the requested path) is a path, never a URL."""
    base = suite_env["WEB_BASE_URL"]
    response = requests.get(base + "//evil.test/profile", allow_redirects=False)
    if response.status_code == 302:
        assert lands_on(base, response.headers["Location"])
    else:
        assert response.status_code == 404


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_web_app_post_logout_landing_stays_on_site(web_app, suite_env, target):
    """The post-logout redirect URI (``/?state=...``) only ever redirects to ``/``."""
    base = suite_env["WEB_BASE_URL"]
    response = requests.get(base + "/", params={"state": target, "next": target}, allow_redirects=False)
    assert response.status_code in {200, 302}
    if response.status_code == 302:
        assert lands_on(base, response.headers["Location"])
        assert urlsplit(urljoin(base, response.headers["Location"])).path == "/"


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_issuer_sign_in_refuses_off_site_next(dev_issuer, suite_env, target):
    """The issuer's sign-in form goes back only to its own pages (the authorization request)."""
    issuer_origin = _origin(suite_env["ISSUER"])
    username, password = demo_user(suite_env)
    http = requests.Session()
    page = http.get(issuer_origin + "/signin", params={"next": target})
    assert page.status_code == 200
    hidden_next = _hidden(page.text, "next")
    assert hidden_next is None or lands_on(issuer_origin, hidden_next), hidden_next
    posted = http.post(
        issuer_origin + "/signin",
        allow_redirects=False,
        data={
            "csrf_token": _hidden(page.text, "csrf_token"),
            "next": target,
            "username": username,
            "password": password,
        },
    )
    assert posted.status_code == 302, posted.text[:500]
    assert lands_on(issuer_origin, posted.headers["Location"]), posted.headers["Location"]


@pytest.mark.parametrize("target", [*HOSTILE_TARGETS, "{web}/evil", "{web}/?x=1", "{web}"])
def test_issuer_logout_follows_only_the_registered_post_logout_uri(web_app, suite_env, target):
    """RP-initiated logout redirects only to a URI registered for the hinted client, exactly."""
    base = suite_env["WEB_BASE_URL"]
    target = target.format(web=base)
    id_token = _signed_in_id_token(suite_env)
    end_session = _origin(suite_env["ISSUER"]) + urlsplit(suite_env["ISSUER"]).path + "/v1/logout"
    response = requests.get(
        end_session,
        allow_redirects=False,
        params={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": target,
            "state": "s1",
        },
    )
    assert response.status_code < 500
    if response.is_redirect:
        assert lands_on(_origin(suite_env["ISSUER"]), response.headers["Location"]), response.headers[
            "Location"
        ]
    assert "evil.test" not in response.headers.get("Location", "")


def test_issuer_logout_redirects_to_the_registered_uri(web_app, suite_env):
    """The control case: the registered URI (``{WEB_BASE_URL}/``) is followed, with our state."""
    base = suite_env["WEB_BASE_URL"]
    end_session = suite_env["ISSUER"] + "/v1/logout"
    response = requests.get(
        end_session,
        allow_redirects=False,
        params={
            "id_token_hint": _signed_in_id_token(suite_env),
            "post_logout_redirect_uri": base + "/",
            "state": "s1",
        },
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == base + "/"
    assert parse_qs(location.query)["state"] == ["s1"]


# -- security headers -------------------------------------------------------------------------------------


def assert_page_headers(response: requests.Response, what: str) -> None:
    """CSP with frame-ancestors 'none', X-Frame-Options, nosniff (every page)."""
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, (what, csp)
    assert "default-src" in csp and "object-src 'none'" in csp or "default-src 'none'" in csp, (what, csp)
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("X-Content-Type-Options") == "nosniff", what


def assert_callback_headers(response: requests.Response, what: str) -> None:
    """A URL with a code or tokens in it: never sent on as a Referer, never cached."""
    assert_page_headers(response, what)
    assert response.headers.get("Referrer-Policy") in {"no-referrer", "same-origin"}, what
    assert "no-store" in response.headers.get("Cache-Control", ""), what


def test_web_app_headers_on_every_page(web_app, suite_env):
    base = suite_env["WEB_BASE_URL"]
    username, password = extra_users(suite_env)[2]
    http = requests.Session()
    assert_page_headers(http.get(base + "/"), "home")
    assert_page_headers(http.get(base + "/no-such-page"), "404 page")
    assert_page_headers(http.get(base + "/profile", allow_redirects=False), "profile, signed out")
    authorization_url = start_sign_in(http, base)
    assert_page_headers(http.get(base + "/login", allow_redirects=False), "login redirect")
    # The callback, failing (no sign-in in flight for this state) and succeeding.
    failed = requests.get(base + "/authorization-code/callback", params={"code": "x", "state": "y"})
    assert failed.status_code == 400
    assert_callback_headers(failed, "callback error page")
    callback = at_issuer(http, authorization_url, username, password)
    landed = http.get(callback, allow_redirects=False)
    assert landed.status_code == 302
    assert_callback_headers(landed, "callback success")
    for path in ("/profile", "/inspector"):
        assert_page_headers(http.get(base + path), path)
    style = http.get(base + "/_common/static/style.css")
    assert style.headers["X-Content-Type-Options"] == "nosniff"


def test_issuer_sign_in_page_cannot_be_framed(dev_issuer, suite_env, web_app):
    """The page people type their password into: no framing (clickjacking), nothing cached."""
    issuer_origin = _origin(suite_env["ISSUER"])
    http = requests.Session()
    authorization = http.get(start_sign_in(http, suite_env["WEB_BASE_URL"]))
    assert 'id="sign-in-form"' in authorization.text
    assert_page_headers(authorization, "issuer sign-in page")
    assert_page_headers(http.get(issuer_origin + "/"), "issuer home")
    for path in ("/.well-known/openid-configuration", "/v1/keys"):
        assert http.get(suite_env["ISSUER"] + path).headers["X-Content-Type-Options"] == "nosniff", path
    token = http.post(suite_env["ISSUER"] + "/v1/token", data={"grant_type": "nonsense"})
    assert token.status_code in {400, 401} and "no-store" in token.headers.get("Cache-Control", "")


def test_spa_headers(spa_app, suite_env):
    """The SPA's page and its callback: the strict CSP, no framing, no Referer."""
    base = suite_env["SPA_BASE_URL"]
    assert_page_headers(requests.get(base + "/"), "spa home")
    callback = requests.get(base + "/login/callback", params={"code": "c", "state": "s"})
    assert_callback_headers(callback, "spa callback")
    assert "'unsafe-inline'" not in callback.headers["Content-Security-Policy"]


def test_service_app_and_api_headers(service_app, resource_server, suite_env):
    assert_page_headers(requests.get(suite_env["SERVICE_BASE_URL"] + "/"), "service status page")
    api = requests.get(suite_env["API_URL"] + "/api/messages")
    assert api.status_code == 401 and api.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in api.headers.get("Cache-Control", "")


# -- helpers ---------------------------------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _hidden(page: str, name: str) -> str | None:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    return unescape(match.group(1)) if match else None


_ID_TOKEN: dict[str, str] = {}


def _signed_in_id_token(env: dict) -> str:
    """An ID token the dev issuer issued to the web app (from a real sign-in, read from Redis)."""
    if "token" not in _ID_TOKEN:
        http = requests.Session()
        username, password = extra_users(env)[3]
        sign_in(http, env["WEB_BASE_URL"], username, password)
        raw = redis.Redis.from_url(env["REDIS_URL"]).get(
            f"web_app:session:{http.cookies.get('web_app_session')}"
        )
        _ID_TOKEN["token"] = load_stored_session(raw)["tokens"]["id_token"]
    return _ID_TOKEN["token"]
