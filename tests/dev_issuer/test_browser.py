"""The dev issuer's pages as a person sees them, in Chromium."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from common.config import load_settings
from tests.support import screenshot_dir

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()


def test_applications_page_lists_every_client_with_its_redirect_uris(browser, dev_issuer, suite_env):
    settings = load_settings(suite_env)
    browser.get(f"{settings.issuer_base_url}/admin/apps")
    wait = WebDriverWait(browser, 10)
    for kind in ("web", "spa", "native", "trusted", "service"):
        wait.until(EC.visibility_of_element_located((By.ID, f"app-{kind}")))
    assert settings.web_redirect_uri in browser.find_element(By.ID, "app-web").text
    assert settings.spa_redirect_uri in browser.find_element(By.ID, "app-spa").text
    assert "127.0.0.1" in browser.find_element(By.ID, "app-native").text
    assert "client_credentials" in browser.find_element(By.ID, "app-service").text
    assert browser.find_element(By.ID, "trusted-origin").text == settings.spa_origin
    # No secret is ever shown, only ids.
    assert settings.web_client_secret not in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "dev_issuer-apps.png"))


# -- the sign-in form and the Back button --------------------------------------------------------------


def _sign_in_form_or_error_page(browser):
    """Wait until the page is either the issuer's sign-in form or Chromium's own error page."""

    def settled(driver):
        if driver.find_elements(By.ID, "sign-in-form"):
            return "form"
        if "ERR_CACHE_MISS" in driver.page_source or "neterror" in driver.page_source:
            return "browser error page"
        return False

    return WebDriverWait(browser, 10).until(settled)


def _submit(browser, username: str, password: str) -> None:
    """Fill the issuer's form (ids ``username``, ``password``, ``sign-in``) and submit it."""
    field = WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.ID, "username")))
    field.clear()
    field.send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()


def test_back_after_failed_sign_ins_shows_the_form_not_confirm_form_resubmission(
    browser, dev_issuer, suite_env
):
    """Post/redirect/get: each failure ends on a GET of the form, so Back never resubmits a POST."""
    settings = load_settings(suite_env)
    browser.get(f"{settings.issuer_base_url}/signin?next=/admin/apps")
    for attempt in ("wrong-1", "wrong-2"):
        _submit(browser, settings.demo_username, attempt)
        error = WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "sign-in-error")))
        assert "wrong password" in error.text
        # The error keeps next: the form still goes on to the Applications page.
        assert browser.find_element(By.NAME, "next").get_attribute("value") == "/admin/apps"
    browser.back()
    assert _sign_in_form_or_error_page(browser) == "form"
    # And the form still works from there.
    _submit(browser, settings.demo_username, settings.demo_password)
    WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "app-web")))


def test_back_to_the_form_after_signing_in_goes_on_without_the_password_form(browser, dev_issuer, suite_env):
    """With a live issuer session, the form is skipped: Back lands where ``next`` says."""
    settings = load_settings(suite_env)
    browser.get(f"{settings.issuer_base_url}/signin?next=/admin/apps")
    _submit(browser, settings.demo_username, settings.demo_password)
    WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "app-web")))
    browser.back()
    WebDriverWait(browser, 10).until(
        lambda d: d.current_url.endswith("/admin/apps") and d.find_elements(By.ID, "app-web")
    )
    assert not browser.find_elements(By.ID, "sign-in-form")


def test_back_from_the_web_apps_profile_never_shows_the_issuers_password_form(browser, web_app, suite_env):
    """The issue's path: sign in to the web app, press Back; the issuer sends the browser on to the app."""
    settings = load_settings(suite_env)
    browser.get(settings.web_base_url + "/")
    WebDriverWait(browser, 10).until(EC.element_to_be_clickable((By.ID, "sign-in"))).click()
    _submit(browser, settings.demo_username, settings.demo_password)
    WebDriverWait(browser, 15).until(EC.presence_of_element_located((By.ID, "profile")))
    browser.back()
    # Redirected on: authorize, then the web app's callback (which, for a
    # reused state, is the web app's business); never the password form.
    WebDriverWait(browser, 15).until(lambda d: d.current_url.startswith(settings.web_base_url))
    assert not browser.find_elements(By.ID, "sign-in-form")
