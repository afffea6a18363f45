"""Discovery, JWKS, CORS and the issuer's own pages."""

import requests

TIMEOUT = 10


def test_openid_configuration_fields(issuer):
    meta = issuer.metadata
    assert meta["issuer"] == issuer.url
    for name in ("authorize", "token", "keys", "userinfo", "introspect", "revoke", "logout"):
        assert f"{issuer.url}/v1/{name}" in meta.values()
    assert meta["jwks_uri"] == f"{issuer.url}/v1/keys"
    assert meta["end_session_endpoint"] == f"{issuer.url}/v1/logout"
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    assert {"openid", "profile", "email", "offline_access", issuer.settings.service_scope} <= set(
        meta["scopes_supported"]
    )
    assert {"authorization_code", "implicit", "refresh_token", "password", "client_credentials"} <= set(
        meta["grant_types_supported"]
    )
    assert set(meta["response_modes_supported"]) == {"query", "fragment", "form_post"}
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]


def test_oauth_authorization_server_metadata(issuer):
    meta = requests.get(f"{issuer.url}/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    assert meta["issuer"] == issuer.url
    assert meta["token_endpoint"] == issuer.metadata["token_endpoint"]
    assert meta["revocation_endpoint"] and meta["introspection_endpoint"]


def test_jwks_publishes_public_rsa_keys_only(issuer):
    keys = issuer.jwks()["keys"]
    assert len(keys) >= 2  # the signing key and the next one, published ahead
    for key in keys:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_cors_only_for_the_spa_origin(issuer):
    spa = issuer.settings.spa_origin
    for url in (
        issuer.endpoint("keys"),
        issuer.metadata["jwks_uri"],
        f"{issuer.url}/.well-known/openid-configuration",
    ):
        ok = requests.get(url, headers={"Origin": spa}, timeout=TIMEOUT)
        assert ok.headers["Access-Control-Allow-Origin"] == spa
        other = requests.get(url, headers={"Origin": "http://evil.test"}, timeout=TIMEOUT)
        assert "Access-Control-Allow-Origin" not in other.headers
    for name in ("token", "userinfo", "revoke"):
        preflight = requests.options(
            issuer.endpoint(name),
            timeout=TIMEOUT,
            headers={
                "Origin": spa,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["Access-Control-Allow-Origin"] == spa
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert preflight.headers["Access-Control-Allow-Origin"] != "*"
    # Not opened to browsers: the authorization and introspection endpoints.
    introspect = requests.options(issuer.endpoint("introspect"), headers={"Origin": spa}, timeout=TIMEOUT)
    assert "Access-Control-Allow-Origin" not in introspect.headers


def test_healthz(issuer):
    response = requests.get(issuer.url.split("/oauth2")[0] + "/healthz", timeout=TIMEOUT)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_applications_page_lists_every_client(issuer):
    base = issuer.url.split("/oauth2")[0]
    home = requests.get(base + "/", timeout=TIMEOUT)
    assert 'href="/admin/apps"' in home.text
    page = requests.get(base + "/admin/apps", timeout=TIMEOUT).text
    s = issuer.settings
    for kind, client_id in (
        ("web", s.web_client_id),
        ("spa", s.spa_client_id),
        ("spa-bff", s.spa_bff_client_id),
        ("native", s.native_client_id),
        ("trusted", s.trusted_client_id),
        ("service", s.service_client_id),
    ):
        assert f'id="app-{kind}"' in page
        assert client_id in page
    for uri in (
        s.web_redirect_uri,
        s.web_post_logout_redirect_uri,
        s.spa_redirect_uri,
        s.native_redirect_uri(),
    ):
        assert uri in page
    assert "client_secret_basic" in page and "authorization_code" in page and "client_credentials" in page
    # Secrets are never shown.
    assert s.web_client_secret not in page and s.service_client_secret not in page
