"""The SPA's Backend-for-Frontend mode clicked through in Chromium, against the dev issuer.

Sign in through the issuer's form → profile (claims from ``/bff/user``) →
call the API through ``/bff/api/messages`` → the access token renewed by
the BFF → sign out, here and at the issuer.  All the while no token may
reach the browser: none in ``document.cookie`` or Web Storage, none in any
response the browser received (read through the DevTools protocol), and
the session cookie is HttpOnly.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import redis
import requests
from selenium.webdriver.common.by import By

from common.session import load_stored_session
from common.session_store import encode_session_data
from tests.spa_app.conftest import JWT_SHAPE, NetworkLog, SpaActions
from tests.support import screenshot_dir

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()

#: spa_app/__init__.py: the BFF's session cookie (``__Host-`` prefixed on https only).
BFF_COOKIE = "spa_bff_session"


class BffActions(SpaActions):
    """What a person does with the SPA in BFF mode, plus what the test reads from the network and Redis."""

    def __init__(self, driver, settings):
        super().__init__(driver, settings)
        self.network = NetworkLog(driver)
        self.redis = redis.Redis.from_url(settings.redis_url)

    def sign_in_bff(self):
        """Open the page in BFF mode, sign in at the issuer's form, see the profile."""
        self.open("/?mode=bff")
        assert self.driver.find_element(By.ID, "mode-bff").is_selected()
        self.start_sign_in()
        self.network.collect()  # the issuer's page, before the browser leaves it
        self.submit_credentials()
        self.wait_ready_on_spa()
        self.visible("profile")
        self.network.collect()

    def call_api(self) -> str:
        """Click "Call the API" and wait for its answer; returns the result's text."""
        reads = self.inspector_reads()
        self.driver.find_element(By.ID, "call-api").click()
        # The inspector is re-read from the server after each call, once the answer is shown.
        self.wait(lambda d: self.inspector_reads() > reads)
        result = self.visible("api-result")
        self.network.collect()
        return result.text

    def server_titles(self) -> list[str]:
        return self.inspector_titles()

    def inspector_reads(self) -> int:
        """How many times the page has read the server's steps (app.js counts them)."""
        return int(self.driver.find_element(By.ID, "inspector").get_attribute("data-reads") or 0)

    # -- the BFF's session in Redis ------------------------------------------------------------------

    def session_id(self) -> str:
        cookies = [c for c in self.driver.get_cookies() if c["name"] == BFF_COOKIE]
        assert len(cookies) == 1, self.driver.get_cookies()
        return cookies[0]["value"]

    def session_key(self) -> bytes:
        keys = list(self.redis.scan_iter(match=f"*:session:{self.session_id()}"))
        assert len(keys) == 1, keys
        return keys[0]

    def stored_session(self) -> dict:
        return load_stored_session(self.redis.get(self.session_key()))

    def stored_tokens(self) -> dict:
        """The one token set in the stored session (wherever the BFF keeps it)."""
        found = [value for value in _dicts(self.stored_session()) if _is_token_set(value)]
        assert len(found) == 1, found
        return found[0]

    def expire_access_token(self) -> None:
        """Make the stored access token expired, as time would (its lifetime is an hour here)."""
        key = self.session_key()
        data = load_stored_session(self.redis.get(key))
        for value in _dicts(data):
            if _is_token_set(value):
                value["expires_at"] = int(time.time()) - 10
        self.redis.set(key, encode_session_data(data), keepttl=True, xx=True)

    def delete_session(self) -> None:
        """The session ends on the server side (expired, or deleted by an operator)."""
        assert self.redis.delete(self.session_key()) == 1

    def fetch_from_page(self, path: str, method: str = "GET") -> int:
        """The status of a fetch() the page's origin makes, as bff.js does."""
        return self.driver.execute_async_script(
            "const [path, method, done] = arguments;"
            "fetch(path, {method, credentials: 'same-origin', headers: {'X-CSRF': '1'}})"
            ".then(r => done(r.status), e => done(String(e)));",
            path,
            method,
        )

    # -- pictures for the README ---------------------------------------------------------------------

    def picture(self, name: str, top_id: str | None = None, height: int | None = None) -> None:
        """Save ``{name}`` in :func:`screenshot_dir` (``docs/screenshots`` with ``UPDATE_SCREENSHOTS=1``).

        From the top of ``top_id`` (or of the page), ``height`` pixels (or to the page's end).
        """
        self.driver.execute_script("window.scrollTo(0, 0)")
        top = 0
        if top_id:
            top = self.driver.execute_script(
                "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
                "return r.top + window.scrollY - 8;",
                top_id,
            )
        full = self.driver.execute_script("return document.documentElement.scrollHeight")
        width = self.driver.execute_script("return document.documentElement.clientWidth")
        bottom = min(full, top + height) if height else full
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": top, "width": width, "height": bottom - top, "scale": 1},
            },
        )
        (SCREENSHOTS / name).write_bytes(base64.b64decode(shot["data"]))


def _dicts(value):
    """Every dict inside ``value`` (itself included)."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def _is_token_set(value: dict) -> bool:
    """A stored token set (common.tokens.TokenSet.to_dict), not an inspector step's shortened copy."""
    return "access_token" in value and "expires_at" in value


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def bff(network_browser, spa_app, dev_issuer, resource_server, settings):
    """A :class:`BffActions` on a clean, recording browser, the whole stack running."""
    return BffActions(network_browser, settings)


def assert_nothing_in_the_browser(spa: BffActions):
    """No token in the page's cookies or Web Storage; every cookie of the SPA's host HttpOnly."""
    stored = spa.storage()
    assert stored["local"] == {} and stored["cookies"] == ""
    for key, value in stored["session"].items():
        assert not JWT_SHAPE.search(value), key
    for cookie in spa.driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]:
        assert not JWT_SHAPE.search(cookie["value"]), cookie["name"]
        if cookie["domain"] == urlsplit(spa.base_url).hostname:
            assert cookie["httpOnly"], cookie["name"]


def assert_no_token_was_received(spa: BffActions, logout_hints: set[str]):
    """No JWT-shaped value in any response body or header the browser received.

    One value is allowed, and only where the contract puts it: the
    ``id_token_hint`` of the RP-initiated logout URL that ``POST /bff/logout``
    answers (RP-Initiated Logout 1.0 §2: it tells the issuer whose session
    to end; an ID token opens no API, which the test checks).
    """
    network = spa.network.collect()
    # The bodies that matter were read, so the check below is not vacuous.
    for path in ("/bff/user", "/bff/api/messages", "/bff/inspector", "/bff/logout", "/static/js/bff.js"):
        assert network.body_of(path), f"no body read for {path}: {network.unread}"
    found = network.jwt_shaped()
    assert {value for _, value in found} <= logout_hints, found
    assert {where for where, _ in found} <= {f"body of {spa.base_url}/bff/logout"}, found


def test_bff_click_through(bff, settings):
    spa = bff
    spa.open("/?mode=bff")
    # ?mode=bff selects the mode, the first and recommended one, and leaves the address bar.
    assert spa.driver.current_url == spa.base_url + "/"
    assert spa.driver.find_element(By.ID, "mode-bff").is_selected()
    assert spa.remembered_mode() == "bff"
    first = spa.driver.find_element(By.CSS_SELECTOR, "#mode-switch input[type=radio]")
    assert first.get_attribute("id") == "mode-bff"
    label = spa.driver.find_element(By.CSS_SELECTOR, "label[for=mode-bff]").text
    assert "Backend for Frontend (recommended)" in label
    assert spa.driver.find_element(By.ID, "signed-out").is_displayed()
    spa.picture("spa_app-bff-signed-out.png")

    # Sign-in: a navigation to /bff/login, which sends the browser to the issuer as the BFF's client.
    spa.start_sign_in()
    request = dict(parse_qsl(urlsplit(spa.authorization_request_url()).query))
    assert request["client_id"] == settings.spa_bff_client_id
    spa.network.collect()
    spa.submit_credentials()
    spa.wait_ready_on_spa()
    spa.visible("profile")
    assert spa.driver.current_url == spa.base_url + "/"  # returnTo=/?mode=bff, the mode word wiped
    assert spa.driver.find_element(By.ID, "nav-status").text == "Signed in (Backend for Frontend)"
    profile = spa.driver.find_element(By.ID, "profile").text
    assert settings.demo_username in profile
    claims = json.loads(spa.driver.find_element(By.ID, "claims").get_attribute("textContent"))
    assert claims["sub"] and settings.demo_username in claims.values()
    assert not {"access_token", "id_token", "refresh_token"} & set(claims)
    assert not spa.driver.find_element(By.ID, "refresh-tokens").is_displayed()  # the server renews
    cookie = [c for c in spa.driver.get_cookies() if c["name"] == BFF_COOKIE][0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert_nothing_in_the_browser(spa)

    # The API through the BFF: the API's status and body, for the BFF's client.
    text = spa.call_api()
    assert "GET /bff/api/messages" in text and "HTTP 200" in text
    assert f"issued to client {settings.spa_bff_client_id}" in text
    assert not spa.driver.find_element(By.ID, "spa-error").is_displayed()
    spa.picture("spa_app-bff-profile.png", height=1000)

    # The inspector: the server's own steps for this session, never a token.
    # (Discovery only when this server worker had not read the issuer's metadata yet, and the
    # issuer's DPoP nonce round trip only when it had not been sent the nonce yet.)
    # The dev issuer offers PAR, so the BFF (PAR=auto) pushed the request first (RFC 9126).
    optional = {"Discovery", "The issuer asked for a DPoP nonce"}
    assert [title for title in spa.server_titles() if title not in optional] == [
        "Pushed authorization request (PAR)",
        "Authorization request",
        "Callback",
        "Token request (authorization code)",
        "ID token validation",
    ]
    inspector = spa.driver.find_element(By.ID, "inspector").text
    assert settings.spa_bff_redirect_uri in inspector
    assert "[redacted]" in inspector  # the client's credentials and the PKCE verifier
    assert not JWT_SHAPE.search(inspector)
    checks = spa.driver.find_elements(By.CSS_SELECTOR, "#inspector .checks li")
    assert {c.text.split()[0] for c in checks} >= {"signature", "iss", "aud", "exp", "nonce"}
    assert not spa.driver.find_elements(By.CSS_SELECTOR, "#inspector .check-bad, #inspector .step-bad")
    exchange = spa.driver.execute_script(
        "return Array.from(document.querySelectorAll('#inspector > li'))"
        ".find(li => li.querySelector('h3').textContent === 'Token request (authorization code)').id"
    )
    # The code exchange's DPoP proof, decoded, as the server recorded it (RFC 9449 §4.2).
    proof = spa.driver.find_element(By.CSS_SELECTOR, f"#{exchange} .dpop-proof").text
    assert "dpop+jwt" in proof and '"htm": "POST"' in proof
    spa.picture("spa_app-bff-inspector.png", top_id=exchange)  # the code exchange, the ID token checks

    # The access token expires: the BFF renews it, under the session's lock, before it calls.
    before = spa.stored_tokens()
    spa.expire_access_token()
    assert "Token request (refresh)" not in spa.server_titles()
    text = spa.call_api()
    assert "HTTP 200" in text
    after = spa.stored_tokens()
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # the dev issuer rotates it
    assert after["expires_at"] > time.time()
    # The inspector, re-read after the call, shows the server's refresh (RFC 6749 §6).
    assert spa.server_titles()[-2:] == ["Token request (refresh)", "ID token validation"]
    assert_nothing_in_the_browser(spa)

    # Sign-out: POST /bff/logout, then the issuer's logout, and back here.
    spa.driver.find_element(By.ID, "sign-out").click()
    spa.wait_ready_on_spa()
    notice = spa.visible("spa-notice")
    assert "signed out" in notice.text.lower()
    assert spa.driver.current_url == spa.base_url + "/"
    assert spa.driver.find_element(By.ID, "mode-bff").is_selected()
    assert spa.driver.find_element(By.ID, "nav-status").text == "Signed out"
    assert spa.driver.find_element(By.ID, "signed-out").is_displayed()
    assert spa.fetch_from_page("/bff/user") == 401
    assert spa.fetch_from_page("/bff/api/messages") == 401
    assert_nothing_in_the_browser(spa)

    # What the browser received: the logout URL's id_token_hint is the only JWT, and it opens no API.
    spa.network.collect()
    hints = set()
    for body in spa.network.body_of("/bff/logout"):
        logout_url = json.loads(body)["logout_url"]
        hint = dict(parse_qsl(urlsplit(logout_url).query)).get("id_token_hint")
        if hint:
            hints.add(hint)
            assert _claims(hint)["aud"] == settings.spa_bff_client_id and "scp" not in _claims(hint)
            api = requests.get(
                f"{settings.api_url}/api/messages", headers={"Authorization": f"Bearer {hint}"}, timeout=5
            )
            assert api.status_code == 401
    assert_no_token_was_received(spa, hints)

    # Signed out at the issuer too: the next sign-in shows its form again.
    spa.start_sign_in()


def test_reload_keeps_the_bff_session(bff, settings):
    """The session is the server's, named by the cookie: a reload finds it again (no token in the page)."""
    bff.sign_in_bff()
    bff.driver.refresh()
    bff.wait_ready()
    bff.visible("profile")
    assert settings.demo_username in bff.driver.find_element(By.ID, "profile").text
    assert "HTTP 200" in bff.call_api()
    assert_nothing_in_the_browser(bff)


def test_api_401_shows_signed_out(bff):
    """The server-side session ends (expired, deleted): the next API call answers 401, the page signs out."""
    bff.sign_in_bff()
    bff.delete_session()
    bff.driver.find_element(By.ID, "call-api").click()
    bff.visible("spa-error")
    assert "signed out" in bff.driver.find_element(By.ID, "spa-error-description").text
    assert "401" in bff.driver.find_element(By.ID, "spa-error-description").text
    assert bff.driver.find_element(By.ID, "signed-out").is_displayed()
    assert not bff.driver.find_element(By.ID, "signed-in").is_displayed()
    assert bff.driver.find_element(By.ID, "nav-status").text == "Signed out"
    assert not bff.driver.find_element(By.ID, "mode-bff").get_attribute("disabled")


def test_bff_mode_runs_under_the_csp_without_violations(bff):
    """Strict CSP and Trusted Types hold in BFF mode: sign-in, profile, API call, inspector."""
    bff.sign_in_bff()
    bff.call_api()
    bff.open_inspector()
    logs = [
        entry
        for entry in bff.driver.get_log("browser")
        if ("Content Security Policy" in entry["message"] or "TrustedHTML" in entry["message"])
        and "favicon" not in entry["message"]
    ]
    assert logs == []


def test_switching_to_bff_finds_an_existing_session(bff, settings):
    """Signed in to the BFF, the page opened in another mode: choosing BFF asks the server for the profile."""
    bff.sign_in_bff()
    bff.open("/?mode=pkce")
    assert bff.driver.find_element(By.ID, "signed-out").is_displayed()
    bff.choose_mode("bff")
    bff.visible("profile")
    assert settings.demo_username in bff.driver.find_element(By.ID, "profile").text


def test_bff_sign_in_from_127_0_0_1_lands_on_spa_base_url(bff, settings):
    """The session cookie and the redirect URI belong to SPA_BASE_URL's host: sign-in starts there."""
    local = SpaActions(bff.driver, settings, base_url=settings.spa_base_url.replace("localhost", "127.0.0.1"))
    local.open("/?mode=bff")
    local.start_sign_in()
    assert dict(parse_qsl(urlsplit(local.authorization_request_url()).query))["client_id"] == (
        settings.spa_bff_client_id
    )
    bff.submit_credentials()
    bff.wait_ready_on_spa()
    bff.visible("profile")
    assert bff.driver.current_url == bff.base_url + "/"
    assert bff.driver.find_element(By.ID, "nav-status").text == "Signed in (Backend for Frontend)"


def test_an_unreachable_bff_leaves_the_page_signed_in(bff, settings):
    """A failed call to /bff/api (here: blocked in the browser) says so; the server's session is untouched."""
    bff.sign_in_bff()
    bff.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/bff/api/*"]})
    try:
        bff.driver.find_element(By.ID, "call-api").click()
        assert bff.error_code() == "bff_unreachable"
        assert bff.driver.find_element(By.ID, "signed-in").is_displayed()
        assert bff.driver.find_element(By.ID, "nav-status").text == "Signed in (Backend for Frontend)"
    finally:
        bff.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    assert "HTTP 200" in bff.call_api()
    assert not bff.driver.find_element(By.ID, "spa-error").is_displayed()
