"""The status page under gunicorn (two workers) against the secret stack, and in Chromium."""

from __future__ import annotations

import re

import pytest
import redis
import requests

from tests.support import free_port, gunicorn

SECRET = "dev-service-app-secret-do-not-use-in-production"


@pytest.fixture(scope="module")
def status_page(secret_stack):
    """The service app's page with two workers: they must share one cached token."""
    port = free_port()
    env = {**secret_stack.env, "SERVICE_BASE_URL": f"http://localhost:{port}"}
    service = gunicorn(
        "service_app-status", "service_app:create_app()", env, port, workers=2, health_path="/healthz"
    ).start()
    yield f"http://localhost:{port}"
    service.stop()


def press_button(http: requests.Session, base: str) -> str:
    page = http.get(base + "/", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = http.post(base + "/call", data={"csrf_token": csrf}, timeout=30)
    assert answer.status_code == 200 and answer.url == base + "/"
    return answer.text


def forget_cached_token(stack) -> None:
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    for key in client.scan_iter("service_app:token:*"):
        client.delete(key)
    client.close()


def test_workers_share_one_token_and_count_its_calls(status_page, secret_stack, secret_proxy):
    forget_cached_token(secret_stack)
    http = requests.Session()
    # A new connection for each request, so that both workers take part.
    http.headers["Connection"] = "close"
    for _ in range(6):
        page = press_button(http, status_page)
    # Six presses within one token lifetime, served by two processes: one token request.
    assert secret_proxy.token_requests == 1
    assert re.search(r'id="calls-made">(\d+)<', page).group(1) == "6"
    assert 'id="api-status">200<' in page and "Access granted" in page
    # Readable times: "59 min 59 s" and UTC dates, not "3599 s" or bare epoch numbers.
    assert re.search(r'id="time-left">(\d+ h )?(\d+ min ?)?(\d+ s)?<', page), page
    assert not re.search(r'id="time-left">\d{3,} s<', page)
    assert re.search(r'id="expires-at">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC<', page)
    claims = re.search(r'id="token-claims".*?</table>', page, re.S).group(0)
    assert "customScope" in claims
    assert re.search(r"<code>exp</code>.*?\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", claims, re.S), claims
    assert SECRET not in page


@pytest.mark.browser
def test_a_person_clicks_call_the_api_now(status_page, browser, secret_proxy):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(status_page + "/")
    WebDriverWait(browser, 10).until(ec.element_to_be_clickable((By.ID, "call-api"))).click()
    status = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "api-status")))
    assert status.text == "200"
    assert browser.find_element(By.ID, "inspector").find_elements(By.CSS_SELECTOR, "[id^=step-]")
    assert int(browser.find_element(By.ID, "calls-made").text) >= 1
    assert SECRET not in browser.page_source
