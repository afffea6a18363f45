"""The status page with Flask's test client (issuer unreachable: no issuer needed)."""

from __future__ import annotations

import re

import pytest

from service_app import create_app

SECRET = "a-test-secret-that-must-never-be-shown"


@pytest.fixture
def app(redis_server):
    return create_app(
        {
            "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/7",
            "ISSUER": "http://issuer.test/oauth2/default",
            "API_URL": "http://api.test",
            "SERVICE_CLIENT_SECRET": SECRET,
            "HTTP_TIMEOUT": "0.5",
            "TESTING": True,
        }
    )


@pytest.fixture
def client(app):
    # A fresh Redis store per test: no token left over from another test.
    app.config["SESSION_REDIS"].flushdb()
    # No real pauses between retries of the unreachable issuer.
    app.extensions["service_client"].cache.backoff.sleep = lambda seconds: None
    return app.test_client()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_healthz_needs_no_session(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_status_page_has_its_stable_ids(client):
    html = client.get("/").get_data(as_text=True)
    for element_id in ("call-api", "token-claims", "time-left", "calls-made", "api-result", "inspector"):
        assert f'id="{element_id}"' in html
    assert SECRET not in html


def test_the_button_requires_the_csrf_token(client):
    client.get("/")
    response = client.post("/call", data={"csrf_token": "forged"})
    assert response.status_code == 400


def test_an_unreachable_issuer_is_shown_on_the_page_not_a_500(client):
    html = client.get("/").get_data(as_text=True)
    response = client.post("/call", data={"csrf_token": csrf_of(html)})
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert 'id="api-error">issuer_unreachable<' in page
    assert 'id="step-' in page  # the inspector recorded the failed steps
    assert SECRET not in page


def test_the_empty_inspector_says_what_starts_it_here(client):
    """The service has no user: its empty inspector points at the button, not at a sign-in."""
    html = client.get("/").get_data(as_text=True)
    empty = re.search(r'id="inspector-empty">(.*?)</p>', html, re.S).group(1)
    assert "Press Call the API now" in empty and "Sign in" not in empty


@pytest.mark.parametrize(
    "seconds, text",
    [
        (3599, "59 min 59 s"),
        (3600, "1 h"),
        (3660, "1 h 1 min"),
        (65, "1 min 5 s"),
        (120, "2 min"),
        (7, "7 s"),
    ],
)
def test_durations_are_readable(seconds, text):
    from common.display import format_duration

    assert format_duration(seconds) == text
    assert format_duration(-5) == "0 s" and format_duration(float("nan")) == "unknown"
