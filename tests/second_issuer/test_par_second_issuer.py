"""The web app pushes its authorization request (RFC 9126) to an independent provider, by environment alone.

oidc-provider advertises ``pushed_authorization_request_endpoint`` and
requires pushed requests of the web app's registration
(``require_pushed_authorization_requests`` in ``server.js``), so the
sign-in below succeeds only if the web app, left at ``PAR=auto``, found
the endpoint in the metadata, pushed every parameter with
``client_secret_basic`` and sent the browser with ``client_id`` and
``request_uri`` alone.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from tests.second_issuer.conftest import WEB_CLIENT_ID, sign_in_at_provider


def test_the_web_app_pushes_and_signs_in_at_oidc_provider(second_stack):
    base = second_stack["WEB_BASE_URL"]
    metadata = requests.get(second_stack["ISSUER"] + "/.well-known/openid-configuration", timeout=10).json()
    assert metadata["pushed_authorization_request_endpoint"].startswith(second_stack["ISSUER"])
    http = requests.Session()
    login = http.get(base + "/login", allow_redirects=False, timeout=10)
    assert login.status_code == 302, login.text[:2000]
    query = parse_qs(urlsplit(login.headers["Location"]).query)
    assert set(query) == {"client_id", "request_uri"} and query["client_id"] == [WEB_CLIENT_ID]
    assert query["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")

    callback = sign_in_at_provider(http, login.headers["Location"], "carol")
    assert urlsplit(callback).path == "/authorization-code/callback" and "code=" in callback
    profile = http.get(callback, timeout=10)
    assert profile.status_code == 200 and urlsplit(profile.url).path == "/profile", profile.text[:2000]
    assert "carol@example.test" in profile.text

    # The provider uses a request_uri once (RFC 9126 §4): the same URL again yields no code.
    again = http.get(login.headers["Location"], allow_redirects=False, timeout=10)
    assert "code=" not in again.headers.get("Location", "")
