"""``make run-https``: the suite behind nginx on https, signed in with Chromium (README, "Deploying").

Everything is real: the launcher with ``--https`` generates the CA and the
leaf, renders ``deploy/nginx/`` and runs Debian's nginx in front of
gunicorn servers that listen on their ``*_BIND`` addresses; the apps reach
the issuer and the API through nginx, trusting the CA through
``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import functools
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from common.config import DEFAULTS

TIMEOUT = 15


def _wait_for(browser, element_id: str):
    return WebDriverWait(browser, TIMEOUT).until(EC.presence_of_element_located((By.ID, element_id)))


def _sign_in_at_issuer(browser, username: str, password: str) -> None:
    field = WebDriverWait(browser, TIMEOUT).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]"))
    )
    form = field.find_element(By.XPATH, "./ancestor::form")
    form.find_element(By.CSS_SELECTOR, "input[type=email], input[type=text]").send_keys(username)
    field.send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()


def _assert_host_cookie(cookies: list[dict], name: str) -> None:
    """One ``__Host-`` cookie ``name``: Secure, HttpOnly, Path=/, host-only (no Domain)."""
    found = [cookie for cookie in cookies if cookie["name"] == name]
    assert len(found) == 1, cookies
    cookie = found[0]
    assert cookie["secure"] is True and cookie["httpOnly"] is True and cookie["path"] == "/", cookie
    assert not cookie["domain"].startswith("."), cookie  # host-only: set without Domain
    assert cookie["sameSite"] == "Lax", cookie


@pytest.mark.browser
def test_sign_in_through_the_tls_proxy_in_chromium(https_suite, tls_browser):
    """Sign-in, profile and API call at https URLs; the session cookies are __Host- and Secure."""
    browser, web, issuer = tls_browser, https_suite.url("web"), https_suite.url("issuer")
    browser.get(web + "/")
    _wait_for(browser, "sign-in").click()
    # At the issuer, through nginx, on https.
    WebDriverWait(browser, TIMEOUT).until(lambda b: b.current_url.startswith(issuer + "/"))
    _sign_in_at_issuer(browser, DEFAULTS["DEMO_USERNAME"], DEFAULTS["DEMO_PASSWORD"])
    assert DEFAULTS["DEMO_USERNAME"] in _wait_for(browser, "claims").text
    assert browser.current_url.startswith(web + "/")
    _assert_host_cookie(browser.get_cookies(), "__Host-web_app_session")

    # The web app called the API at its https URL, through nginx, trusting the CA.
    _wait_for(browser, "call-api").click()
    body = json.loads(_wait_for(browser, "api-result").text)
    assert body["messages"] and body["sub"]

    # The issuer's own sign-in session: __Host- and Secure as well.
    browser.get(issuer + "/")
    _assert_host_cookie(browser.get_cookies(), "__Host-dev_issuer_session")
    assert not [c for c in browser.get_cookies() if not c["name"].startswith("__Host-")]


def test_public_urls_are_https_and_hsts_is_on(https_suite):
    """The metadata and the redirect_uri follow the public URLs; every component sends HSTS."""
    # Our CA only (per request: requests lets REQUESTS_CA_BUNDLE beat a session's verify).
    http = requests.Session()
    http.request = functools.partial(http.request, verify=https_suite.ca)
    web, issuer = https_suite.url("web"), https_suite.url("issuer")
    metadata = http.get(issuer + "/oauth2/default/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert metadata["issuer"] == https_suite.env["ISSUER"]
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "end_session_endpoint"):
        assert metadata[name].startswith(issuer + "/oauth2/default/"), (name, metadata[name])

    start = http.get(web + "/login", allow_redirects=False, timeout=TIMEOUT)
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["redirect_uri"] == [web + "/authorization-code/callback"]
    assert start.headers["Location"].startswith(metadata["authorization_endpoint"] + "?")
    for name in ("issuer", "web", "spa", "service", "api"):
        answer = http.get(https_suite.url(name) + "/healthz", timeout=TIMEOUT)
        assert answer.status_code == 200, name
        assert answer.headers["Strict-Transport-Security"] == "max-age=300", name
    assert (
        "__Host-web_app_session=" in start.headers["Set-Cookie"] and "Secure" in start.headers["Set-Cookie"]
    )


def test_the_servers_listen_on_their_bind_addresses_and_refuse_a_foreign_host(https_suite):
    """Each server answers at its *_BIND address (plain http, for nginx); other host names get 400."""
    web_bind = f"http://127.0.0.1:{https_suite.bind['web']}"
    assert requests.get(web_bind + "/healthz", timeout=TIMEOUT).status_code == 200
    refused = requests.get(web_bind + "/", headers={"Host": "evil.test"}, timeout=TIMEOUT)
    assert refused.status_code == 400 and "invalid_host" in refused.text
    # Through nginx too: a forged Host reaches the app as it was sent, and is refused there.
    via_proxy = requests.get(
        https_suite.url("web") + "/", headers={"Host": "evil.test"}, verify=https_suite.ca, timeout=TIMEOUT
    )
    assert via_proxy.status_code == 400 and "invalid_host" in via_proxy.text
    # Nothing listens on the public ports but nginx: the servers kept their bind addresses.
    assert https_suite.public["web"] != https_suite.bind["web"]
