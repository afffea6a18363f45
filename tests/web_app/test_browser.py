"""A person in Chromium: sign in, profile, call the API, inspector, sign out."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from common.config import load_settings
from tests.support import screenshot_dir
from tests.web_app.conftest import demo_user

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()


def _wait_for(browser, element_id: str, timeout: float = 15):
    return WebDriverWait(browser, timeout).until(EC.presence_of_element_located((By.ID, element_id)))


def _fill_issuer_sign_in(browser, username: str, password: str) -> None:
    """Type the credentials into the issuer's sign-in form and submit it."""
    password_field = WebDriverWait(browser, 15).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]"))
    )
    form = password_field.find_element(By.XPATH, "./ancestor::form")
    username_field = form.find_element(By.CSS_SELECTOR, "input[type=email], input[type=text]")
    username_field.clear()
    username_field.send_keys(username)
    password_field.send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()


def _shoot(browser, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, max(900, min(int(height) + 40, 2400)))
    browser.save_screenshot(str(SCREENSHOTS / f"web_app-{name}.png"))
    browser.set_window_size(1280, 900)


def test_click_through_the_whole_flow(browser, web_app, suite_env):
    base = suite_env["WEB_BASE_URL"]
    username, password = demo_user(suite_env)

    browser.get(base + "/")
    _wait_for(browser, "sign-in")
    _shoot(browser, "home")
    browser.find_element(By.ID, "sign-in").click()

    # At the issuer: its own sign-in page, on its own origin.
    _fill_issuer_sign_in(browser, username, password)

    claims = _wait_for(browser, "claims")
    assert username in claims.text
    assert _wait_for(browser, "profile").is_displayed()
    _shoot(browser, "profile")

    browser.find_element(By.ID, "call-api").click()
    result = _wait_for(browser, "api-result")
    body = json.loads(result.text)
    assert body["messages"] and body["sub"]
    _shoot(browser, "api")

    browser.find_element(By.ID, "inspector-link").click()
    inspector = _wait_for(browser, "inspector")
    assert "Authorization request" in inspector.text and "Call the API" in inspector.text
    assert load_settings(suite_env).web_client_secret not in browser.page_source
    # DPoP (DPOP=auto finds it at the dev issuer): the code exchange and the API call each show
    # their proof decoded, with the checks a server runs on it; the API call's carries ath.
    proofs = browser.find_elements(By.CSS_SELECTOR, "#inspector .dpop-proof")
    assert len(proofs) >= 2 and all("dpop+jwt" in proof.text for proof in proofs)
    api_step = browser.find_elements(By.CSS_SELECTOR, "#inspector .inspector-step")[-1]
    assert "ath" in api_step.find_element(By.CSS_SELECTOR, ".dpop-proof").text
    browser.set_window_size(1280, 2000)
    browser.execute_script("arguments[0].scrollIntoView()", api_step)
    api_step.screenshot(str(SCREENSHOTS / "web_app-dpop-proof.png"))
    browser.set_window_size(1280, 900)
    _shoot(browser, "inspector")

    # Session cookie only, and JavaScript cannot read it (HttpOnly).
    assert browser.execute_script("return document.cookie") == ""

    browser.find_element(By.ID, "sign-out").click()
    _wait_for(browser, "sign-in")
    assert "signed out, here and at the issuer" in browser.page_source

    # Signed out at the issuer as well: signing in again asks for the password.
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 15).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]"))
    )
    assert not browser.current_url.startswith(base)


def test_error_page_in_the_browser(browser, web_app, suite_env):
    browser.get(
        suite_env["WEB_BASE_URL"] + "/authorization-code/callback?error=access_denied"
        "&error_description=%3Cb%3EUser+cancelled%3C%2Fb%3E&state=nope"
    )
    code = _wait_for(browser, "error-code")
    assert code.text in {"state_missing", "state_mismatch", "access_denied"}
    assert browser.find_elements(By.TAG_NAME, "b") == []
    _shoot(browser, "error")
    _wait_for(browser, "try-again").click()
    _wait_for(browser, "sign-in")
