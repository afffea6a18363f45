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
