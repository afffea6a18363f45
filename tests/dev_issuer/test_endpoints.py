"""Introspection, revocation, userinfo, RP-initiated logout and key rotation."""

import re

import jwt
import requests

from tests.issuer_helpers import pkce_pair

TIMEOUT = 10


def test_introspection(issuer):
    s = issuer.settings
    result = issuer.code_flow("web")
    info = issuer.introspect(result["access_token"])
    assert info["active"] is True and info["client_id"] == s.web_client_id
    assert info["username"] == s.demo_username and info["token_type"] == "Bearer"
    assert set(info["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    assert info["iss"] == issuer.url and info["aud"] == s.api_audience and info["exp"] > info["iat"]
    # Another client may not learn about this token (RFC 7662 §2.2).
    other = issuer.introspect(result["access_token"], auth=(s.trusted_client_id, s.trusted_client_secret))
    assert other == {"active": False}
    # Garbage and unauthenticated requests.
    assert issuer.introspect("not-a-token") == {"active": False}
    anonymous = requests.post(
        issuer.endpoint("introspect"), data={"token": result["access_token"]}, timeout=TIMEOUT
    )
    assert anonymous.status_code in (400, 401) and anonymous.json()["error"] == "invalid_client"


def test_revocation(issuer):
    s = issuer.settings
    result = issuer.code_flow("web")
    response = requests.post(
        issuer.endpoint("revoke"),
        data={"token": result["access_token"], "token_type_hint": "access_token"},
        auth=(s.web_client_id, s.web_client_secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert issuer.introspect(result["access_token"])["active"] is False
    assert issuer.introspect(result["refresh_token"])["active"] is True
    # Revoking the refresh token ends the whole grant (RFC 7009 §2.1).
    again = issuer.code_flow("spa")
    response = requests.post(
        issuer.endpoint("revoke"),
        data={"token": again["refresh_token"], "client_id": s.spa_client_id},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert issuer.introspect(again["refresh_token"], client_id=s.spa_client_id)["active"] is False
    assert issuer.introspect(again["access_token"], client_id=s.spa_client_id)["active"] is False
    # Unknown tokens: 200 all the same (RFC 7009 §2.2).
    unknown = requests.post(
        issuer.endpoint("revoke"),
        data={"token": "nothing"},
        auth=(s.web_client_id, s.web_client_secret),
        timeout=TIMEOUT,
    )
    assert unknown.status_code == 200


def test_userinfo(issuer):
    s = issuer.settings
    result = issuer.code_flow("web")
    response = requests.get(
        issuer.endpoint("userinfo"),
        headers={"Authorization": f"Bearer {result['access_token']}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["sub"] == issuer.verify(result["id_token"], s.web_client_id)["sub"]
    assert info["email"] == s.demo_username and info["name"]
    narrow = issuer.code_flow("web", scope="openid")
    info = requests.get(
        issuer.endpoint("userinfo"),
        headers={"Authorization": f"Bearer {narrow['access_token']}"},
        timeout=TIMEOUT,
    ).json()
    assert set(info) == {"sub"}
    missing = requests.get(issuer.endpoint("userinfo"), timeout=TIMEOUT)
    assert missing.status_code == 401
    forged = requests.get(
        issuer.endpoint("userinfo"), headers={"Authorization": "Bearer a.b.c"}, timeout=TIMEOUT
    )
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    service = issuer.client_credentials(scope=s.service_scope).json()["access_token"]
    no_openid = requests.get(
        issuer.endpoint("userinfo"), headers={"Authorization": f"Bearer {service}"}, timeout=TIMEOUT
    )
    assert no_openid.status_code == 403 and no_openid.json()["error"] == "insufficient_scope"


def test_logout_redirects_only_to_registered_uri_and_ends_sso(issuer):
    s = issuer.settings
    session = requests.Session()
    result = issuer.code_flow("web", session=session)
    bad = session.get(
        issuer.endpoint("logout"),
        allow_redirects=False,
        timeout=TIMEOUT,
        params={
            "id_token_hint": result["id_token"],
            "post_logout_redirect_uri": "http://evil.test/",
            "state": "s1",
        },
    )
    assert (
        bad.status_code == 200
        and "Location" not in bad.headers
        and 'id="logout-redirect-refused"' in bad.text
    )

    result = issuer.code_flow("web", session=session)
    good = session.get(
        issuer.endpoint("logout"),
        allow_redirects=False,
        timeout=TIMEOUT,
        params={
            "id_token_hint": result["id_token"],
            "post_logout_redirect_uri": s.web_post_logout_redirect_uri,
            "state": "s2",
        },
    )
    assert good.status_code == 302
    assert good.headers["Location"] == s.web_post_logout_redirect_uri + "?state=s2"
    # The SSO session is over: the next authorization shows the form again.
    _, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    assert 'id="sign-in-form"' in session.get(url, timeout=TIMEOUT).text
    # Another client's registered URI is not this client's.
    result = issuer.code_flow("web", session=session)
    cross = session.get(
        issuer.endpoint("logout"),
        allow_redirects=False,
        timeout=TIMEOUT,
        params={
            "id_token_hint": result["id_token"],
            "post_logout_redirect_uri": s.spa_post_logout_redirect_uri,
        },
    )
    assert cross.status_code == 200 and "Location" not in cross.headers


def test_logout_with_bad_hint_or_none(issuer):
    s = issuer.settings
    bad = requests.get(
        issuer.endpoint("logout"),
        allow_redirects=False,
        timeout=TIMEOUT,
        params={"id_token_hint": "a.b.c", "post_logout_redirect_uri": s.web_post_logout_redirect_uri},
    )
    assert bad.status_code == 400 and "Location" not in bad.headers
    # An ID token of another issuer (here: self-signed) is refused too.
    forged = jwt.encode({"iss": issuer.url, "aud": s.web_client_id, "sub": "x"}, "k" * 32, algorithm="HS256")
    assert (
        requests.get(
            issuer.endpoint("logout"),
            params={"id_token_hint": forged},
            allow_redirects=False,
            timeout=TIMEOUT,
        ).status_code
        == 400
    )
    confirm = requests.get(
        issuer.endpoint("logout"),
        allow_redirects=False,
        timeout=TIMEOUT,
        params={"post_logout_redirect_uri": s.web_post_logout_redirect_uri},
    )
    assert confirm.status_code == 200 and 'id="confirm-sign-out"' in confirm.text


def test_key_rotation_publishes_before_signing_and_keeps_old_key(second_issuer):
    issuer = second_issuer
    s = issuer.settings
    base = issuer.url.split("/oauth2")[0]
    old = issuer.code_flow("web")
    old_kid = jwt.get_unverified_header(old["access_token"])["kid"]
    published_before = {k["kid"] for k in issuer.jwks()["keys"]}

    session = requests.Session()
    page = session.get(base + "/admin/keys", timeout=TIMEOUT).text
    next_kid = re.search(r'id="key-next">([^<]+)<', page).group(1)
    assert next_kid in published_before and next_kid != old_kid
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    rotated = session.post(
        base + "/admin/keys/rotate",
        data={"csrf_token": csrf},
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["current"] == next_kid and old_kid in rotated.json()["retired"]

    new = issuer.code_flow("web")
    assert jwt.get_unverified_header(new["access_token"])["kid"] == next_kid
    assert jwt.get_unverified_header(new["id_token"])["kid"] == next_kid
    published_after = {k["kid"] for k in issuer.jwks()["keys"]}
    assert old_kid in published_after and rotated.json()["next"] in published_after
    # Tokens signed before the rotation still verify, and are still active.
    issuer.verify(old["access_token"], s.api_audience)
    assert issuer.introspect(old["access_token"])["active"] is True
    # Rotation needs the page's CSRF token.
    assert requests.post(base + "/admin/keys/rotate", timeout=TIMEOUT).status_code == 400
