"""The SPA's server side: the page, its headers and its public settings.

No processes here: Flask's test client is enough to check what the server
promises the browser (a strict CSP, no referrer, no secrets, no inline
code).
"""

from __future__ import annotations

import re

import pytest

from spa_app import create_app
from tests.support import addressed_client

ISSUER = "https://issuer.test/oauth2/default"
API = "https://api.test"


@pytest.fixture
def client():
    app = create_app(
        {
            "TESTING": True,
            "ISSUER": ISSUER,
            "API_URL": API,
            "SPA_BASE_URL": "https://spa.test",
            "SPA_CLIENT_ID": "spa-client-123",
        }
    )
    return addressed_client(app)


def csp_of(response):
    """The Content-Security-Policy as {directive: [sources]}."""
    policy = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


@pytest.mark.parametrize("path", ["/", "/login/callback", "/login/callback?code=abc&state=xyz"])
def test_page_and_callback_serve_the_app(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'src="/static/js/app.js"' in html
    for element_id in (
        "mode-pkce",
        "mode-implicit",
        "sign-in",
        "sign-out",
        "profile",
        "claims",
        "call-api",
        "api-result",
        "spa-error",
        "inspector",
    ):
        assert f'id="{element_id}"' in html, element_id
    assert "Implicit (legacy, deprecated — RFC 9700 §2.1.2)" in html
    # The callback carried a code: nobody may cache that page.
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers  # no server session at all


def test_no_inline_script_or_style(client):
    html = client.get("/").get_data(as_text=True)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts, "the page loads its module"
    for attributes, body in scripts:
        assert "src=" in attributes and body.strip() == ""
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


def test_strict_content_security_policy(client):
    response = client.get("/")
    csp = csp_of(response)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'", "https://issuer.test", API]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["require-trusted-types-for"] == ["'script'"]
    assert not any("'unsafe-inline'" in s or "'unsafe-eval'" in s for s in sum(csp.values(), []))
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_static_modules_are_served_with_the_same_policy(client):
    for path in (
        "/static/js/app.js",
        "/static/js/oidc.js",
        "/static/js/inspector.js",
        "/static/css/spa.css",
        "/_common/static/style.css",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "javascript" in client.get("/static/js/oidc.js").content_type


def test_config_json_has_settings_and_no_secrets(client):
    response = client.get("/config.json")
    assert response.status_code == 200
    config = response.get_json()
    assert config["issuer"] == ISSUER
    assert config["client_id"] == "spa-client-123"
    assert config["redirect_uri"] == "https://spa.test/login/callback"
    assert config["post_logout_redirect_uri"] == "https://spa.test/"
    assert config["api_url"] == f"{API}/api/messages"
    assert (
        "openid" in config["scopes"]["pkce"].split() and "offline_access" in config["scopes"]["pkce"].split()
    )
    assert "offline_access" not in config["scopes"]["implicit"].split()  # Implicit never gets a refresh token
    text = response.get_data(as_text=True).lower()
    assert "secret" not in text and "password" not in text


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_path_is_a_clean_404(client):
    response = client.get("/nope", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "Traceback" not in response.get_data(as_text=True)
