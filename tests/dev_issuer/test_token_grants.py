"""Password, client credentials (secret and private_key_jwt) and refresh tokens."""

import time
import uuid

import jwt
import requests

TIMEOUT = 10


def password_grant(issuer, scope="openid profile email offline_access", password=None):
    s = issuer.settings
    return requests.post(
        issuer.endpoint("token"),
        auth=(s.trusted_client_id, s.trusted_client_secret),
        timeout=TIMEOUT,
        data={
            "grant_type": "password",
            "username": s.demo_username,
            "password": password or s.demo_password,
            "scope": scope,
        },
    )


def test_password_grant_with_id_token(issuer):
    response = password_grant(issuer)
    assert response.status_code == 200, response.text
    body = response.json()
    s = issuer.settings
    assert issuer.verify(body["access_token"], s.api_audience)["cid"] == s.trusted_client_id
    id_claims = issuer.verify(body["id_token"], s.trusted_client_id)
    assert id_claims["preferred_username"] == s.demo_username and "at_hash" in id_claims
    assert body["refresh_token"]


def test_password_grant_without_openid_has_no_id_token(issuer):
    body = password_grant(issuer, scope="profile").json()
    assert "id_token" not in body and "refresh_token" not in body and body["access_token"]


def test_user_clients_cannot_get_the_service_scope(issuer):
    """SERVICE_SCOPE guards the API's service-only route: users' apps may not be granted it.

    RFC 9700 §2.3.
    """
    s = issuer.settings
    response = password_grant(issuer, scope=f"openid {s.service_scope}")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    url = issuer.authorize_url(s.web_client_id, s.web_redirect_uri, scope=f"openid {s.service_scope}")
    location = requests.get(url, allow_redirects=False, timeout=TIMEOUT).headers["Location"]
    assert "error=invalid_scope" in location and location.startswith(s.web_redirect_uri)


def test_password_grant_wrong_password(issuer):
    response = password_grant(issuer, password="nope")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_password_grant_off_unless_trusted_mode(second_issuer, issuer):
    response = password_grant(second_issuer)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    # ... and discovery says so up front, so a client can refuse before asking for a password.
    assert "password" not in second_issuer.metadata["grant_types_supported"]
    assert "password" in issuer.metadata["grant_types_supported"]


def test_client_credentials(issuer):
    s = issuer.settings
    response = issuer.client_credentials(scope=s.service_scope)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and "id_token" not in body
    claims = issuer.verify(body["access_token"], s.api_audience)
    assert claims["sub"] == s.service_client_id and claims["cid"] == s.service_client_id
    assert claims["scp"] == [s.service_scope] and "uid" not in claims


def test_client_credentials_refuses_openid_and_unknown_scopes(issuer):
    response = issuer.client_credentials(scope="openid")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    response = issuer.client_credentials(scope="somethingElse")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_client_credentials_wrong_secret(issuer):
    s = issuer.settings
    response = requests.post(
        issuer.endpoint("token"),
        auth=(s.service_client_id, "wrong"),
        timeout=TIMEOUT,
        data={"grant_type": "client_credentials", "scope": s.service_scope},
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_client_credentials_not_for_user_clients(issuer):
    s = issuer.settings
    response = requests.post(
        issuer.endpoint("token"),
        auth=(s.web_client_id, s.web_client_secret),
        timeout=TIMEOUT,
        data={"grant_type": "client_credentials", "scope": s.service_scope},
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def assertion(issuer, key_pem, **overrides):
    s = issuer.settings
    now = int(time.time())
    claims = {
        "iss": s.service_client_id,
        "sub": s.service_client_id,
        "aud": issuer.endpoint("token"),
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key_pem.read_bytes(), algorithm="RS256")


def private_key_jwt(issuer, client_assertion):
    return requests.post(
        issuer.endpoint("token"),
        timeout=TIMEOUT,
        data={
            "grant_type": "client_credentials",
            "scope": issuer.settings.service_scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        },
    )


def test_private_key_jwt_and_replayed_assertion(second_issuer, service_key_pem):
    signed = assertion(second_issuer, service_key_pem)
    first = private_key_jwt(second_issuer, signed)
    assert first.status_code == 200, first.text
    claims = second_issuer.verify(first.json()["access_token"], second_issuer.settings.api_audience)
    assert claims["cid"] == second_issuer.settings.service_client_id
    replay = private_key_jwt(second_issuer, signed)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"


def test_private_key_jwt_refuses_bad_assertions(second_issuer, service_key_pem, tmp_path):
    s = second_issuer.settings
    wrong_aud = private_key_jwt(
        second_issuer, assertion(second_issuer, service_key_pem, aud="http://other.test/token")
    )
    assert wrong_aud.json()["error"] == "invalid_client"
    expired = private_key_jwt(
        second_issuer, assertion(second_issuer, service_key_pem, exp=int(time.time()) - 600)
    )
    assert expired.json()["error"] == "invalid_client"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = tmp_path / "other.pem"
    other.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    forged = private_key_jwt(second_issuer, assertion(second_issuer, other))
    assert forged.json()["error"] == "invalid_client"
    # With a key configured, the shared secret is no longer accepted.
    secret = requests.post(
        second_issuer.endpoint("token"),
        auth=(s.service_client_id, s.service_client_secret),
        data={"grant_type": "client_credentials"},
        timeout=TIMEOUT,
    )
    assert secret.status_code == 401


def test_private_key_jwt_refuses_long_lived_assertions(second_issuer, service_key_pem):
    """RFC 7523 §3 items 4-7: exp at most minutes ahead, iat present and recent.

    So a jti is remembered long enough.
    """
    now = int(time.time())
    cases = {
        "exp in 30 days": {"exp": now + 30 * 86400},
        "exp in 10 minutes": {"exp": now + 600},
        "no iat": {"iat": None},
        "iat 10 minutes ago": {"iat": now - 600, "exp": now + 60},
        "iat in the future": {"iat": now + 600, "exp": now + 120},
        "iat not a number": {"iat": "now"},
    }
    for name, overrides in cases.items():
        signed = assertion(second_issuer, service_key_pem, **overrides)
        response = private_key_jwt(second_issuer, signed)
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client", (
            name,
            response.text,
        )
    # Within the bounds (5 minutes, as common/keys.py's assertions): accepted.
    assert (
        private_key_jwt(second_issuer, assertion(second_issuer, service_key_pem, exp=now + 290)).status_code
        == 200
    )


def refresh(issuer, refresh_token, client="web"):
    s = issuer.settings
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if client == "web":
        return requests.post(
            issuer.endpoint("token"), data=data, auth=(s.web_client_id, s.web_client_secret), timeout=TIMEOUT
        )
    return requests.post(
        issuer.endpoint("token"), data={**data, "client_id": s.spa_client_id}, timeout=TIMEOUT
    )


def test_refresh_rotation_and_reuse_detection(issuer):
    s = issuer.settings
    first = issuer.code_flow("spa")
    second = refresh(issuer, first["refresh_token"], "spa")
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        issuer.verify(second["id_token"], s.spa_client_id)["auth_time"]
        == issuer.verify(first["id_token"], s.spa_client_id)["auth_time"]
    )
    assert issuer.introspect(first["refresh_token"], client_id=s.spa_client_id)["active"] is False
    third = refresh(issuer, second["refresh_token"], "spa").json()
    assert issuer.introspect(third["access_token"], client_id=s.spa_client_id)["active"] is True
    # The first (rotated) refresh token comes back: someone else has it.
    reuse = refresh(issuer, first["refresh_token"], "spa")
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is gone, including the newest tokens.
    assert refresh(issuer, third["refresh_token"], "spa").status_code == 400
    assert issuer.introspect(third["access_token"], client_id=s.spa_client_id)["active"] is False
    assert issuer.introspect(first["access_token"], client_id=s.spa_client_id)["active"] is False


def test_refresh_token_bound_to_client(issuer):
    first = issuer.code_flow("web")
    stolen = refresh(issuer, first["refresh_token"], "spa")
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert refresh(issuer, first["refresh_token"], "web").status_code == 200


def test_no_refresh_token_without_offline_access(issuer):
    result = issuer.code_flow("web", scope="openid profile")
    assert "refresh_token" not in result and result["id_token"]
