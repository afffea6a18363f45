"""Implicit flow (legacy, SPA only): fragment and form_post responses."""

import html
import re

import requests

from tests.dev_issuer.conftest import half_hash
from tests.issuer_helpers import callback_params, sign_in, sign_in_and_get_redirect

TIMEOUT = 10


def implicit_url(issuer, response_type, **params):
    s = issuer.settings
    return issuer.authorize_url(
        s.spa_client_id,
        s.spa_redirect_uri,
        response_type=response_type,
        scope="openid profile email",
        **params,
    )


def test_token_in_fragment(issuer):
    s = issuer.settings
    location = sign_in_and_get_redirect(
        requests.Session(), implicit_url(issuer, "token"), s.demo_username, s.demo_password
    )
    assert location.startswith(s.spa_redirect_uri + "#") and "?" not in location
    params = callback_params(location)
    assert params["token_type"] == "Bearer" and "refresh_token" not in params and params["iss"] == issuer.url
    claims = issuer.verify(params["access_token"], s.api_audience)
    assert claims["cid"] == s.spa_client_id


def test_id_token_token_in_fragment(issuer):
    s = issuer.settings
    url = implicit_url(issuer, "id_token token", nonce="implicit-nonce-1x")
    params = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )
    id_claims = issuer.verify(params["id_token"], s.spa_client_id)
    assert id_claims["nonce"] == "implicit-nonce-1x"
    assert id_claims["at_hash"] == half_hash(params["access_token"])
    issuer.verify(params["access_token"], s.api_audience)


def test_id_token_only_form_post(issuer):
    s = issuer.settings
    url = implicit_url(issuer, "id_token", nonce="implicit-nonce-2x", response_mode="form_post")
    response = sign_in(requests.Session(), url, s.demo_username, s.demo_password)
    assert response.status_code == 200 and 'id="form-post"' in response.text
    assert f'action="{s.spa_redirect_uri}"' in response.text
    fields = {k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', response.text)}
    assert "access_token" not in fields and fields["iss"] == issuer.url and fields["state"].startswith("st-")
    assert issuer.verify(fields["id_token"], s.spa_client_id)["nonce"] == "implicit-nonce-2x"
    csp = response.headers["Content-Security-Policy"]
    assert f"form-action {s.spa_origin}" in csp and "script-src 'self'" in csp


def test_nonce_required_for_openid_implicit(issuer):
    url = implicit_url(issuer, "id_token token", nonce=None).replace("&nonce=", "&x=")
    response = requests.get(url.split("&x=")[0], allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302
    assert callback_params(response.headers["Location"])["error"] == "invalid_request"


def test_response_mode_query_refused_for_tokens(issuer):
    response = requests.get(
        implicit_url(issuer, "token", response_mode="query"), allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "#" in location and "access_token" not in location
    assert callback_params(location)["error"] == "invalid_request"


def test_implicit_not_allowed_for_the_web_app(issuer):
    s = issuer.settings
    url = issuer.authorize_url(s.web_client_id, s.web_redirect_uri, response_type="token")
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert "access_token" not in response.headers.get("Location", "")
    assert response.status_code in (302, 400)
