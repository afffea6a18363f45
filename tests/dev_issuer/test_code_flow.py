"""Authorization code flow: PKCE, codes, redirect URIs, SSO and prompt."""

import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.dev_issuer.conftest import half_hash
from tests.issuer_helpers import callback_params, pkce_pair, sign_in, sign_in_and_get_redirect

TIMEOUT = 10


def check_access_token(issuer, token, client_id, scopes):
    claims = issuer.verify(token, issuer.settings.api_audience)
    assert claims["ver"] == 1 and claims["jti"] and claims["cid"] == client_id
    assert claims["scp"] == scopes
    assert claims["sub"] == issuer.settings.demo_username and claims["uid"].startswith("00u")
    assert jwt_header(token)["typ"] == "JWT"
    return claims


def jwt_header(token):
    import jwt

    return jwt.get_unverified_header(token)


@pytest.mark.parametrize("client", ["web", "spa", "native"])
def test_code_flow_end_to_end(issuer, client):
    result = issuer.code_flow(client)
    s = issuer.settings
    client_id = {"web": s.web_client_id, "spa": s.spa_client_id, "native": s.native_client_id}[client]
    assert result["_callback"]["iss"] == issuer.url  # RFC 9207
    assert result["_callback"]["state"].startswith("st-")
    assert result["token_type"] == "Bearer" and result["refresh_token"]
    check_access_token(
        issuer, result["access_token"], client_id, ["openid", "profile", "email", "offline_access"]
    )
    id_claims = issuer.verify(result["id_token"], client_id)
    assert id_claims["nonce"] == result["_nonce"]
    assert id_claims["at_hash"] == half_hash(result["access_token"])
    assert id_claims["auth_time"] <= time.time() and id_claims["email"] == s.demo_username
    assert id_claims["name"] and id_claims["given_name"] and id_claims["family_name"]


def test_client_secret_post_works_for_the_web_app(issuer):
    s = issuer.settings
    verifier, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    code = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )["code"]
    response = requests.post(
        issuer.endpoint("token"),
        timeout=TIMEOUT,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": s.web_redirect_uri,
            "code_verifier": verifier,
            "client_id": s.web_client_id,
            "client_secret": s.web_client_secret,
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"


def test_native_loopback_redirect_may_use_any_port(issuer):
    other = issuer.settings.native_redirect_uri(54321)
    result = issuer.code_flow("native", redirect_uri=other)
    assert result["access_token"]


def error_callback(issuer, client_id, redirect_uri, **params):
    url = issuer.authorize_url(client_id, redirect_uri, **params)
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(redirect_uri)
    return callback_params(location)


def test_pkce_required_for_public_clients(issuer):
    s = issuer.settings
    params = error_callback(issuer, s.spa_client_id, s.spa_redirect_uri)
    assert params["error"] == "invalid_request" and "PKCE" in params["error_description"]
    assert params["iss"] == issuer.url and params["state"].startswith("st-")


@pytest.mark.parametrize("method", ["plain", None])
def test_pkce_plain_or_missing_method_refused(issuer, method):
    s = issuer.settings
    verifier, _ = pkce_pair()
    params = error_callback(
        issuer,
        s.native_client_id,
        s.native_redirect_uri(),
        code_challenge=verifier,
        code_challenge_method=method,
    )
    assert params["error"] == "invalid_request" and "S256" in params["error_description"]


def test_wrong_code_verifier_refused(issuer):
    s = issuer.settings
    _, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.spa_client_id, s.spa_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    code = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )["code"]
    other_verifier, _ = pkce_pair()
    response = issuer.redeem("spa", code, s.spa_redirect_uri, other_verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    missing = issuer.redeem("spa", code, s.spa_redirect_uri, None)
    assert missing.status_code == 400


def test_code_is_bound_to_redirect_uri_and_client(issuer):
    s = issuer.settings
    verifier, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    code = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )["code"]
    # Another client cannot redeem it.
    stolen = requests.post(
        issuer.endpoint("token"),
        timeout=TIMEOUT,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": s.web_redirect_uri,
            "code_verifier": verifier,
            "client_id": s.spa_client_id,
        },
    )
    assert stolen.status_code == 400 and stolen.json()["error"] in {"invalid_grant", "invalid_client"}
    url = issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    code = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )["code"]
    wrong = issuer.redeem("web", code, s.web_redirect_uri + "x", verifier)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_code_replay_refused_and_its_tokens_revoked(issuer):
    first = issuer.code_flow("web")
    assert issuer.introspect(first["access_token"])["active"] is True
    replay = issuer.redeem("web", first["_code"], first["_redirect_uri"], first["_verifier"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert issuer.introspect(first["access_token"])["active"] is False
    assert issuer.introspect(first["refresh_token"])["active"] is False
    s = issuer.settings
    refreshed = requests.post(
        issuer.endpoint("token"),
        auth=(s.web_client_id, s.web_client_secret),
        timeout=TIMEOUT,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_code_expires(second_issuer):
    issuer = second_issuer
    s = issuer.settings
    assert s.dev_issuer_code_lifetime == 2
    verifier, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    code = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )["code"]
    time.sleep(3)
    response = issuer.redeem("web", code, s.web_redirect_uri, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def mismatches(s):
    web = s.web_redirect_uri
    parts = urlsplit(web)
    return {
        "trailing slash": web + "/",
        "case": web.replace("callback", "Callback"),
        "extra query": web + "?x=1",
        "other port": f"{parts.scheme}://{parts.hostname}:{(parts.port or 80) + 1}{parts.path}",
        "https vs http": web.replace("http://", "https://", 1),
        "other host": "http://evil.test/authorization-code/callback",
    }


@pytest.mark.parametrize(
    "variant", ["trailing slash", "case", "extra query", "other port", "https vs http", "other host"]
)
def test_redirect_uri_mismatch_shown_on_issuer_never_redirected(issuer, variant):
    s = issuer.settings
    bad = mismatches(s)[variant]
    _, challenge = pkce_pair()
    url = issuer.authorize_url(s.web_client_id, bad, code_challenge=challenge, code_challenge_method="S256")
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri" in response.text and 'id="error-code"' in response.text
    # Signed in or not, still no redirect.
    session = requests.Session()
    signed_in = sign_in(session, url, s.demo_username, s.demo_password)
    assert not signed_in.is_redirect and signed_in.status_code == 400


def test_native_port_rule_only_for_loopback_ip(issuer):
    s = issuer.settings
    _, challenge = pkce_pair()
    for bad in (
        f"http://localhost:{s.native_redirect_port}/callback",
        "http://127.0.0.1:5/other",
        f"https://127.0.0.1:{s.native_redirect_port}/callback",
    ):
        url = issuer.authorize_url(
            s.native_client_id, bad, code_challenge=challenge, code_challenge_method="S256"
        )
        response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 400 and "Location" not in response.headers, bad


@pytest.mark.parametrize("port", ["５００３", "٥٠٠٣", "5００3"])
def test_non_ascii_digits_in_a_loopback_port_are_refused_on_the_issuer(issuer, port):
    """A loopback port is ASCII digits only (RFC 3986 §3.2.3, RFC 8252 §7.3).

    Python's ``\\d`` and ``int()`` accept full-width and Arabic-Indic digits;
    such a redirect URI was taken as registered and, once signed in, the
    issuer answered a bare 500.  It is shown on the issuer, never redirected,
    signed in or not.
    """
    s = issuer.settings
    _, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.native_client_id,
        f"http://127.0.0.1:{port}/callback",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 400 and "Location" not in response.headers
    assert 'id="error-code"' in response.text and "ASCII" in response.text
    signed_in = sign_in(requests.Session(), url, s.demo_username, s.demo_password)
    assert signed_in.status_code == 400 and "Location" not in signed_in.headers
    assert 'id="error-code"' in signed_in.text


def test_unknown_client_shown_on_issuer(issuer):
    url = issuer.authorize_url("no-such-client", "http://evil.test/cb")
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 400 and "Location" not in response.headers
    assert "invalid_client" in response.text


def test_error_page_escapes_input(issuer):
    s = issuer.settings
    url = issuer.authorize_url(s.web_client_id, s.web_redirect_uri + "<script>alert(1)</script>")
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 400 and "<script>alert(1)" not in response.text


def test_sso_session_prompt_login_and_prompt_none(issuer):
    s = issuer.settings
    session = requests.Session()
    issuer.code_flow("web", session=session)
    _, challenge = pkce_pair()
    # Signed in at the issuer: the next request skips the form.
    again = requests.Request(
        "GET",
        issuer.authorize_url(
            s.spa_client_id, s.spa_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
        ),
    )
    response = session.get(again.url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302 and "code=" in response.headers["Location"]
    # prompt=login forces the form.
    forced = session.get(
        issuer.authorize_url(
            s.spa_client_id,
            s.spa_redirect_uri,
            code_challenge=challenge,
            code_challenge_method="S256",
            prompt="login",
        ),
        allow_redirects=True,
        timeout=TIMEOUT,
    )
    assert 'id="sign-in-form"' in forced.text
    # prompt=none without a session: login_required, sent to the client.
    params = error_callback(
        issuer,
        s.spa_client_id,
        s.spa_redirect_uri,
        code_challenge=challenge,
        code_challenge_method="S256",
        prompt="none",
    )
    assert params["error"] == "login_required" and params["iss"] == issuer.url


def test_wrong_password_shows_error_and_no_session(issuer):
    s = issuer.settings
    _, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    session = requests.Session()
    response = sign_in(session, url, s.demo_username, "wrong-password")
    # The form again (after post/redirect/get), with the error.
    assert response.status_code == 200 and 'id="sign-in-error"' in response.text
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    # No SSO session: the authorization request still asks for the password.
    assert 'id="sign-in-form"' in session.get(url, timeout=TIMEOUT).text


def test_sign_in_form_requires_csrf_token(issuer):
    base = issuer.url.split("/oauth2")[0]
    s = issuer.settings
    response = requests.post(
        base + "/signin",
        data={"username": s.demo_username, "password": s.demo_password},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400 and not response.is_redirect


@pytest.mark.parametrize(
    "param, error", [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")]
)
def test_request_objects_refused_not_ignored(issuer, param, error):
    """A request object could override the plain parameters: refuse it.

    OpenID Connect Core 6.1, 6.2, 3.1.2.6.
    """
    s = issuer.settings
    _, challenge = pkce_pair()
    value = (
        "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."
        if param == "request"
        else "https://rp.example.test/r/1"
    )
    params = error_callback(
        issuer,
        s.spa_client_id,
        s.spa_redirect_uri,
        code_challenge=challenge,
        code_challenge_method="S256",
        **{param: value},
    )
    assert params["error"] == error and params["iss"] == issuer.url and params["state"].startswith("st-")
    assert issuer.metadata["request_parameter_supported"] is False
    assert issuer.metadata["request_uri_parameter_supported"] is False


def test_max_age_forces_a_fresh_sign_in_and_auth_time_is_in_the_id_token(issuer):
    """max_age bounds the SSO session's age; the ID token then carries auth_time.

    OpenID Connect Core 3.1.2.1, 2.
    """
    s = issuer.settings
    session = requests.Session()
    first = issuer.code_flow("web", session=session)
    signed_in_at = issuer.verify(first["id_token"], s.web_client_id)["auth_time"]
    time.sleep(2.1)
    _, challenge = pkce_pair()
    # The session is younger than an hour: reused, same auth_time.
    recent = session.get(
        issuer.authorize_url(
            s.spa_client_id,
            s.spa_redirect_uri,
            code_challenge=challenge,
            code_challenge_method="S256",
            max_age="3600",
        ),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert recent.status_code == 302 and "code=" in recent.headers["Location"]
    # Older than one second: the sign-in form comes back ...
    verifier, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.web_client_id,
        s.web_redirect_uri,
        code_challenge=challenge,
        code_challenge_method="S256",
        max_age="1",
    )
    assert 'id="sign-in-form"' in session.get(url, timeout=TIMEOUT).text
    # ... with prompt=none that is login_required, not a silent old session.
    params = callback_params(
        session.get(url + "&prompt=none", allow_redirects=False, timeout=TIMEOUT).headers["Location"]
    )
    assert params["error"] == "login_required"
    # Signing in again, in the same SSO session, gives a later auth_time.
    code = callback_params(sign_in_and_get_redirect(session, url, s.demo_username, s.demo_password))["code"]
    fresh = issuer.redeem("web", code, s.web_redirect_uri, verifier)
    assert fresh.status_code == 200, fresh.text
    assert issuer.verify(fresh.json()["id_token"], s.web_client_id)["auth_time"] > signed_in_at


@pytest.mark.parametrize("max_age", ["-1", "soon", "1.5", ""])
def test_malformed_max_age_refused(issuer, max_age):
    s = issuer.settings
    _, challenge = pkce_pair()
    params = error_callback(
        issuer,
        s.spa_client_id,
        s.spa_redirect_uri,
        code_challenge=challenge,
        code_challenge_method="S256",
        max_age=max_age,
    )
    assert params["error"] == "invalid_request" and "max_age" in params["error_description"]
