"""The web app and the SPA's BFF with pushed authorization requests (RFC 9126), against a real dev issuer.

A private stack: Redis (its own database), a dev issuer that requires PAR
of the web app and of the BFF (``DEV_ISSUER_REQUIRE_PAR``), and the apps
under gunicorn, each started with the ``PAR`` value its test needs on the
port the issuer has registered.  The web sign-in with ``PAR=on`` runs in
Chromium; the rest speaks HTTP with ``requests``, as a browser would.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from common.config import load_settings
from tests.issuer_helpers import sign_in_and_get_redirect
from tests.support import free_port, gunicorn, screenshot_dir
from tests.web_app.conftest import demo_user

TIMEOUT = 10


@pytest.fixture(scope="module")
def par_stack(suite_env, redis_server):
    """The stack's shared environment, with its dev issuer running (the apps start per test)."""
    ports = {name: free_port() for name in ("issuer", "web", "spa")}
    env = {
        **suite_env,
        "ISSUER": f"http://127.0.0.1:{ports['issuer']}/oauth2/default",
        "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/4",
        "WEB_BASE_URL": f"http://localhost:{ports['web']}",
        "SPA_BASE_URL": f"http://localhost:{ports['spa']}",
    }
    settings = load_settings(env)
    env["DEV_ISSUER_REQUIRE_PAR"] = f"{settings.web_client_id},{settings.spa_bff_client_id}"
    issuer = gunicorn(
        "par-dev_issuer", "dev_issuer:create_app()", env, ports["issuer"], workers=2, health_path="/healthz"
    ).start()
    yield {**env, "ports": ports}
    issuer.stop()


@contextmanager
def running(stack: dict, app: str, par: str):
    """``web_app`` or ``spa_app`` under gunicorn with ``PAR=par``, on its registered port."""
    env = {k: v for k, v in stack.items() if k != "ports"}
    port = stack["ports"]["web" if app == "web_app" else "spa"]
    service = gunicorn(
        f"par-{app}-{par}",
        f"{app}:create_app()",
        {**env, "PAR": par},
        port,
        workers=2,
        health_path="/healthz",
    ).start()
    try:
        yield env["WEB_BASE_URL" if app == "web_app" else "SPA_BASE_URL"]
    finally:
        service.stop()


def page_error(response: requests.Response) -> tuple[str, str]:
    """``(error code, description)`` of an app's shared error page."""
    assert "text/html" in response.headers.get("Content-Type", ""), response.text[:500]
    code = re.search(r'id="error-code">([^<]*)<', response.text).group(1)
    return code, unescape(re.search(r'id="error-description">([^<]*)<', response.text).group(1))


def _wait_for(browser, element_id: str, timeout: float = 20):
    return WebDriverWait(browser, timeout).until(EC.presence_of_element_located((By.ID, element_id)))


@pytest.mark.browser
def test_web_sign_in_with_par_on_sends_the_browser_with_client_id_and_request_uri_only(browser, par_stack):
    username, password = demo_user(par_stack)
    with running(par_stack, "web_app", "on") as base:
        browser.get(base + "/login")
        _wait_for(browser, "sign-in-form")
        # The browser is at the issuer: its address names the authorization request it came with.
        at_issuer = urlsplit(browser.current_url)
        assert f"{at_issuer.scheme}://{at_issuer.netloc}" == par_stack["ISSUER"].rsplit("/oauth2", 1)[0]
        authorization = urlsplit(parse_qs(at_issuer.query)["next"][0])
        assert authorization.path.endswith("/v1/authorize")
        query = parse_qs(authorization.query)
        assert set(query) == {"client_id", "request_uri"}
        assert query["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")
        for secretive in ("state=", "nonce=", "code_challenge", "redirect_uri", "scope="):
            assert secretive not in browser.current_url

        browser.find_element(By.ID, "username").send_keys(username)
        browser.find_element(By.ID, "password").send_keys(password)
        browser.find_element(By.ID, "sign-in").click()
        assert username in _wait_for(browser, "claims").text

        # The inspector shows the push (its parameters and the issuer's answer) and the short URL.
        browser.get(base + "/inspector")
        inspector = _wait_for(browser, "inspector").text
        assert "Pushed authorization request (PAR)" in inspector and "request_uri" in inspector
        assert "with client_id and request_uri only" in inspector and "code_challenge_method" in inspector
        _screenshot(browser)


def _screenshot(browser) -> None:
    """The inspector's push (``par-inspector.png``; into docs/screenshots with UPDATE_SCREENSHOTS=1)."""
    directory = screenshot_dir()
    directory.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 1400)
    step = browser.find_element(By.XPATH, "//li[contains(., 'Pushed authorization request (PAR)')]")
    browser.execute_script("arguments[0].scrollIntoView(true);", step)
    browser.save_screenshot(str(directory / "par-inspector.png"))
    browser.set_window_size(1280, 900)


def test_web_sign_in_with_par_off_fails_with_a_clear_error_page_when_the_issuer_requires_it(par_stack):
    http = requests.Session()
    with running(par_stack, "web_app", "off") as base:
        login = http.get(base + "/login", allow_redirects=False, timeout=TIMEOUT)
        query = parse_qs(urlsplit(login.headers["Location"]).query)
        assert "code_challenge" in query and "request_uri" not in query  # not pushed
        # The issuer refuses before anyone types a password, back to the app (RFC 9126 §5).
        refused = http.get(login.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
        assert refused.status_code == 302 and refused.headers["Location"].startswith(base)
        page = http.get(refused.headers["Location"], timeout=TIMEOUT)
        assert page.status_code == 400
        code, description = page_error(page)
        assert code == "invalid_request" and "must push its authorization requests" in description
        assert "tokens" not in http.cookies.get_dict().get("web_session", "")


def test_bff_signs_in_with_par_auto_and_fails_clearly_with_par_off(par_stack):
    username, password = demo_user(par_stack)
    with running(par_stack, "spa_app", "auto") as base:
        http = requests.Session()
        login = http.get(base + "/bff/login", allow_redirects=False, timeout=TIMEOUT)
        assert set(parse_qs(urlsplit(login.headers["Location"]).query)) == {"client_id", "request_uri"}
        callback = sign_in_and_get_redirect(http, login.headers["Location"], username, password)
        assert urlsplit(callback).path == "/bff/callback"
        http.get(callback, timeout=TIMEOUT)
        user = http.get(base + "/bff/user", headers={"X-CSRF": "1"}, timeout=TIMEOUT)
        assert user.status_code == 200 and user.json()["sub"], user.text
    with running(par_stack, "spa_app", "off") as base:
        http = requests.Session()
        login = http.get(base + "/bff/login", allow_redirects=False, timeout=TIMEOUT)
        refused = http.get(login.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
        assert refused.status_code == 302 and urlsplit(refused.headers["Location"]).path == "/bff/callback"
        page = http.get(refused.headers["Location"], timeout=TIMEOUT)
        code, description = page_error(page)
        assert page.status_code == 400 and code == "invalid_request"
        assert "must push its authorization requests" in description
        assert http.get(base + "/bff/user", headers={"X-CSRF": "1"}, timeout=TIMEOUT).status_code == 401


def test_par_off_at_an_issuer_that_requires_par_fails_at_once_with_one_clear_page(suite_env, fake_issuer):
    """``require_pushed_authorization_requests`` and ``PAR=off``: the error is shown before any redirect."""
    from web_app import create_app

    fake_issuer.discovery_overrides.update(
        {
            "pushed_authorization_request_endpoint": fake_issuer.url("par"),
            "require_pushed_authorization_requests": True,
        }
    )
    app = create_app(
        {
            **suite_env,
            "ISSUER": fake_issuer.issuer,
            "WEB_CLIENT_ID": fake_issuer.client_id,
            "WEB_CLIENT_SECRET": fake_issuer.client_secret,
            "PAR": "off",
            "TESTING": True,
        }
    )
    page = app.test_client().get("/login", base_url=suite_env["WEB_BASE_URL"])
    assert page.status_code == 502 and fake_issuer.count("authorize") == fake_issuer.count("par") == 0
    text = page.get_data(as_text=True)
    assert 'id="error-code">par_required<' in text and "PAR=off" in text and "Set PAR=auto" in text
