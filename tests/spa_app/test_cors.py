"""CORS: the SPA's origin, and only it, may call the API and the issuer's
token endpoint from browser JavaScript.

Checked twice: on the wire (the headers the servers send) and in Chromium
(the same script succeeds on the SPA's origin and is refused on another).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

FOREIGN_ORIGINS = ["https://evil.test", "http://localhost:1", "null"]


@pytest.fixture
def api_messages(resource_server, settings):
    return f"{settings.api_url}/api/messages"


@pytest.fixture
def token_endpoint(dev_issuer, settings):
    return requests.get(f"{settings.issuer}/.well-known/openid-configuration", timeout=5).json()[
        "token_endpoint"
    ]


def preflight(url, origin, method, headers):
    return requests.options(
        url,
        timeout=5,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


# -- on the wire --------------------------------------------------------------------------------


def test_api_allows_the_spa_origin(api_messages, settings):
    answer = preflight(api_messages, settings.spa_origin, "GET", "authorization")
    assert answer.status_code in (200, 204)
    assert answer.headers["Access-Control-Allow-Origin"] == settings.spa_origin
    assert "authorization" in answer.headers["Access-Control-Allow-Headers"].lower()
    refused = requests.get(
        api_messages, timeout=5, headers={"Origin": settings.spa_origin, "Authorization": "Bearer bogus"}
    )
    assert refused.status_code == 401
    # The SPA can read the answer, and the RFC 6750 challenge with it.
    assert refused.headers["Access-Control-Allow-Origin"] == settings.spa_origin
    assert "www-authenticate" in refused.headers.get("Access-Control-Expose-Headers", "").lower()


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS + ["SAME_HOST_OTHER_ORIGIN"])
def test_api_refuses_other_origins(api_messages, settings, origin):
    if origin == "SAME_HOST_OTHER_ORIGIN":
        # The SPA's own server under another name is another origin (RFC 6454).
        origin = settings.spa_origin.replace("localhost", "127.0.0.1")
    answer = preflight(api_messages, origin, "GET", "authorization")
    assert "Access-Control-Allow-Origin" not in answer.headers
    answer = requests.get(
        api_messages, timeout=5, headers={"Origin": origin, "Authorization": "Bearer bogus"}
    )
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_token_endpoint_answers_cors_for_the_spa_only(token_endpoint, settings):
    form = {
        "grant_type": "authorization_code",
        "code": "not-a-code",
        "client_id": settings.spa_client_id,
        "redirect_uri": settings.spa_redirect_uri,
        "code_verifier": "v" * 43,
    }
    mine = requests.post(token_endpoint, data=form, timeout=5, headers={"Origin": settings.spa_origin})
    assert mine.status_code == 400 and mine.json()["error"] == "invalid_grant"
    assert mine.headers["Access-Control-Allow-Origin"] == settings.spa_origin
    assert "Origin" in mine.headers.get("Vary", "")
    answer = preflight(token_endpoint, settings.spa_origin, "POST", "content-type")
    assert answer.headers.get("Access-Control-Allow-Origin") == settings.spa_origin
    for origin in FOREIGN_ORIGINS:
        other = requests.post(token_endpoint, data=form, timeout=5, headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in other.headers, origin
        other = preflight(token_endpoint, origin, "POST", "content-type")
        assert "Access-Control-Allow-Origin" not in other.headers, origin


# -- in the browser ---------------------------------------------------------------------------------

FETCH_BOTH = """
const [api, token, clientId, done] = arguments;
const outcome = p => p.then(r => 'HTTP ' + r.status, e => e.name);
Promise.all([
  outcome(fetch(api, {headers: {Authorization: 'Bearer bogus'}, credentials: 'omit'})),
  outcome(fetch(token, {method: 'POST', credentials: 'omit',
    body: new URLSearchParams({grant_type: 'refresh_token', refresh_token: 'bogus', client_id: clientId})})),
]).then(done);
"""


@pytest.mark.browser
def test_browser_enforces_cors(browser, spa_app, api_messages, token_endpoint, settings):
    """The same script: readable answers on the SPA's origin, refused elsewhere."""
    browser.get(f"{settings.spa_base_url}/healthz")
    assert browser.execute_async_script(FETCH_BOTH, api_messages, token_endpoint, settings.spa_client_id) == [
        "HTTP 401",
        "HTTP 400",
    ]
    port = urlsplit(settings.spa_base_url).port
    browser.get(f"http://127.0.0.1:{port}/healthz")  # same server, another origin
    assert browser.execute_async_script(FETCH_BOTH, api_messages, token_endpoint, settings.spa_client_id) == [
        "TypeError",
        "TypeError",
    ]
