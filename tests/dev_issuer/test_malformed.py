"""Malformed requests to every endpoint get an OAuth error, never a 500."""

import base64

import pytest
import requests

TIMEOUT = 10

BAD_BASIC = "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()

CASES = [
    # (endpoint, method, kwargs)
    ("token", "POST", {"data": {}}),
    ("token", "GET", {}),
    ("token", "POST", {"data": {"grant_type": "nonsense"}}),
    (
        "token",
        "POST",
        {"data": {"grant_type": "authorization_code"}, "headers": {"Authorization": BAD_BASIC}},
    ),
    (
        "token",
        "POST",
        {"data": {"grant_type": "authorization_code"}, "headers": {"Authorization": "Basic %%%"}},
    ),
    (
        "token",
        "POST",
        {"data": {"grant_type": "authorization_code", "client_id": "dev-spa-app", "code": "x" * 5000}},
    ),
    (
        "token",
        "POST",
        {"data": {"grant_type": "refresh_token", "client_id": "dev-spa-app", "refresh_token": "\x00"}},
    ),
    (
        "token",
        "POST",
        {"data": {"grant_type": "password", "username": "a"}, "auth": ("dev-trusted-app", "wrong")},
    ),
    (
        "token",
        "POST",
        {
            "data": {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "not.a.jwt",
            }
        },
    ),
    (
        "token",
        "POST",
        {
            "data": {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "e30.e30.e30",
            }
        },
    ),
    ("token", "POST", {"json": {"grant_type": "client_credentials"}}),
    (
        "token",
        "POST",
        {"data": b"\xff\xfe=\xff", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    ),
    ("introspect", "POST", {"data": {}}),
    ("introspect", "GET", {}),
    ("introspect", "POST", {"data": {"token": "x"}, "headers": {"Authorization": BAD_BASIC}}),
    ("revoke", "POST", {"data": {}}),
    ("revoke", "POST", {"data": {"token": "x", "token_type_hint": "weird", "client_id": "dev-spa-app"}}),
    ("userinfo", "GET", {"headers": {"Authorization": "Bearer"}}),
    ("userinfo", "GET", {"headers": {"Authorization": "Bearer " + "a" * 3000}}),
    ("userinfo", "POST", {"headers": {"Authorization": "Basic abc"}}),
    ("authorize", "GET", {}),
    ("authorize", "GET", {"params": {"response_type": "code"}}),
    ("authorize", "GET", {"params": {"response_type": "weird", "client_id": "dev-web-app"}}),
    (
        "authorize",
        "GET",
        {"params": [("client_id", "dev-web-app"), ("client_id", "dev-spa-app"), ("response_type", "code")]},
    ),
    (
        "authorize",
        "GET",
        {"params": {"response_type": "code", "client_id": "dev-web-app", "redirect_uri": "\x00:\\\\"}},
    ),
    ("authorize", "POST", {"data": {"response_type": "id_token", "client_id": "dev-spa-app"}}),
    ("logout", "GET", {"params": {"id_token_hint": "e30.e30.e30"}}),
    ("logout", "GET", {"params": {"id_token_hint": "\x00", "client_id": "nobody"}}),
    ("logout", "POST", {"data": {"confirm": "yes"}}),
    ("keys", "POST", {}),
]


@pytest.mark.parametrize("endpoint,method,kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_malformed_requests_answer_oauth_errors(issuer, endpoint, method, kwargs):
    response = requests.request(
        method, issuer.endpoint(endpoint), allow_redirects=False, timeout=TIMEOUT, **kwargs
    )
    assert response.status_code < 500, response.text[:500]
    if response.is_redirect:
        assert "error=" in response.headers["Location"]
    elif response.headers.get("Content-Type", "").startswith("application/json"):
        assert "error" in response.json()
    else:
        assert 'id="error-code"' in response.text or 'id="confirm-sign-out"' in response.text


def test_sign_in_page_handles_junk(issuer):
    base = issuer.url.split("/oauth2")[0]
    for next_url in ("//evil.test/", "http://evil.test/", "/\\evil.test", "x" * 3000):
        response = requests.get(base + "/signin", params={"next": next_url}, timeout=TIMEOUT)
        assert response.status_code == 200 and "evil.test" not in response.text
