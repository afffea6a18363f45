"""The web app against an independent OpenID Provider (oidc-provider), by environment variables alone.

The baseline for the BFF's test beside it: the same provider, the same
registration shape (a confidential client with ``client_secret_basic``,
PKCE, RS256 ID tokens, JWT access tokens for ``API_AUDIENCE``).
"""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import requests

from tests.second_issuer.conftest import WEB_CLIENT_ID, confirm_logout_at_provider, sign_in_at_provider


def _element_text(page: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no element {element_id!r} on the page"
    return unescape(re.sub(r"<[^>]+>", "", match.group(2))).strip()


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no csrf_token on the page"
    return match.group(1)


def test_web_app_signs_in_calls_the_api_and_signs_out(second_stack):
    """Sign in at oidc-provider, see the ID token's claims, call the API with its JWT, sign out there."""
    base = second_stack["WEB_BASE_URL"]
    http = requests.Session()
    login = http.get(base + "/login", allow_redirects=False, timeout=10)
    assert login.status_code == 302
    authorization = urlsplit(login.headers["Location"])
    assert f"{authorization.scheme}://{authorization.netloc}" == second_stack["ISSUER"]
    query = parse_qs(authorization.query)
    # Pushed (PAR=auto; the provider requires it of this client): client_id and request_uri only.
    assert query["client_id"] == [WEB_CLIENT_ID] and set(query) == {"client_id", "request_uri"}

    callback = sign_in_at_provider(http, login.headers["Location"], "alice")
    assert urlsplit(callback).path == "/authorization-code/callback"
    profile = http.get(callback, timeout=10)
    assert profile.status_code == 200 and urlsplit(profile.url).path == "/profile", profile.text[:2000]
    assert "alice@example.test" in _element_text(profile.text, "claims")

    answer = http.post(base + "/call-api", data={"csrf_token": _csrf(profile.text)}, timeout=10)
    assert answer.status_code == 200, answer.text[:2000]
    result = json.loads(_element_text(answer.text, "api-result"))
    assert result["sub"] == "alice" and result["client_id"] == WEB_CLIENT_ID

    signed_out = http.post(
        base + "/logout", data={"csrf_token": _csrf(answer.text)}, allow_redirects=False, timeout=10
    )
    assert signed_out.is_redirect
    logout_url = signed_out.headers["Location"]
    assert logout_url.startswith(second_stack["ISSUER"] + "/session/end?"), logout_url
    back = urlsplit(confirm_logout_at_provider(http, logout_url))
    assert f"{back.scheme}://{back.netloc}{back.path}" == base + "/"
