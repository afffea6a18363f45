"""The SPA as a first-time user meets it: the host-name move, the chosen flow, the folded
inspector, and each click's result brought into view (Chromium)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By

from tests.spa_app.conftest import SpaActions

pytestmark = pytest.mark.browser


def _in_view(driver, element_id: str) -> bool:
    """True when the element's top edge is inside the viewport."""
    return driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.height > 0 && r.top >= 0 && r.top < window.innerHeight;",
        element_id,
    )


def test_sign_in_opened_on_127_0_0_1_carries_the_click_and_the_mode(spa, settings):
    """One click on 127.0.0.1: the page moves to SPA_BASE_URL and on to the issuer, in the chosen flow."""
    local = SpaActions(spa.driver, settings, base_url=settings.spa_base_url.replace("localhost", "127.0.0.1"))
    assert urlsplit(local.base_url).hostname == "127.0.0.1"
    local.open()
    local.choose_mode("implicit")
    local.start_sign_in()  # one click, and we are at the issuer's form
    request = local.authorization_request()
    assert request["response_type"] == "id_token token"
    assert request["redirect_uri"] == settings.spa_redirect_uri
    spa.submit_credentials()
    spa.wait_ready_on_spa()
    spa.visible("profile")
    assert "Implicit" in spa.driver.find_element(By.ID, "nav-status").text
    assert spa.driver.current_url == spa.base_url + "/"  # the carried ?mode=&signin= left the address bar


def test_the_chosen_mode_survives_a_reload(spa):
    spa.open()
    spa.choose_mode("implicit")
    spa.driver.refresh()
    spa.wait_ready()
    assert spa.driver.find_element(By.ID, "mode-implicit").is_selected()
    assert spa.remembered_mode() == "implicit"
    spa.choose_mode("pkce")
    spa.driver.refresh()
    spa.wait_ready()
    assert spa.driver.find_element(By.ID, "mode-pkce").is_selected()


def test_the_inspector_stays_folded_until_asked_for(spa):
    spa.sign_in("pkce")
    details = spa.driver.find_element(By.ID, "inspector-details")
    assert details.get_attribute("open") is None
    assert not spa.driver.find_element(By.ID, "inspector").is_displayed()
    count = spa.driver.find_element(By.ID, "inspector-count").text
    assert count.startswith("(") and "steps)" in count, count
    spa.driver.find_element(By.CSS_SELECTOR, "#inspector-details > summary").click()
    assert spa.driver.find_element(By.ID, "inspector").is_displayed()


def test_each_clicks_result_is_scrolled_into_view(spa):
    size = spa.driver.get_window_size()
    spa.driver.set_window_size(900, 420)  # a small screen: the answer lands below the buttons
    try:
        spa.sign_in("pkce")
        spa.driver.find_element(By.ID, "call-api").click()
        spa.visible("api-result")
        spa.wait(lambda d: _in_view(d, "api-result"))
        spa.driver.execute_script("window.scrollTo(0, 0)")
        spa.driver.find_element(By.ID, "refresh-tokens").click()
        spa.visible("spa-notice")
        spa.wait(lambda d: _in_view(d, "spa-notice"))
    finally:
        spa.driver.set_window_size(size["width"], size["height"])
