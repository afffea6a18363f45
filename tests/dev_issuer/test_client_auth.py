"""One client authentication per request (RFC 6749 §2.3), at every endpoint that authenticates clients.

A request that carries two (Basic and ``client_secret``, Basic and a client
assertion, Basic for one client and another client's ``client_id``) is
ambiguous: the issuer must not try them in turn until one passes, it answers
``400 invalid_request`` (§5.2) and issues, revokes or reveals nothing.
"""

import base64
import time

import jwt
import pytest
import requests

TIMEOUT = 10

WRONG = "not-the-secret"


def refresh(issuer, refresh_token, auth=None, **data):
    """A refresh-token request with the given Basic credentials and body."""
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token, **data}
    return requests.post(issuer.endpoint("token"), data=body, auth=auth, timeout=TIMEOUT)


def assert_invalid_request(response):
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request", response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert "access_token" not in response.json() and "active" not in response.json()


def test_wrong_basic_secret_plus_correct_client_secret_post_gets_no_tokens(issuer):
    s = issuer.settings
    tokens = issuer.code_flow("web")
    response = refresh(
        issuer,
        tokens["refresh_token"],
        auth=(s.web_client_id, WRONG),
        client_id=s.web_client_id,
        client_secret=s.web_client_secret,
    )
    assert_invalid_request(response)
    assert "client_secret_basic and client_secret_post" in response.json()["error_description"]
    # The refresh token was not spent: one correct method still works.
    alone = refresh(issuer, tokens["refresh_token"], auth=(s.web_client_id, s.web_client_secret))
    assert alone.status_code == 200, alone.text


@pytest.mark.parametrize("basic_secret", ["wrong", "right"])
def test_basic_for_one_client_with_another_clients_client_id_gets_no_tokens(issuer, basic_secret):
    s = issuer.settings
    spa = issuer.code_flow("spa")
    secret = s.web_client_secret if basic_secret == "right" else WRONG
    response = refresh(
        issuer, spa["refresh_token"], auth=(s.web_client_id, secret), client_id=s.spa_client_id
    )
    assert_invalid_request(response)
    assert "Basic" in response.json()["error_description"]
    assert issuer.introspect(spa["refresh_token"], client_id=s.spa_client_id)["active"] is True


def test_basic_with_its_own_client_id_in_the_body_still_works(issuer):
    """The control case: a body ``client_id`` that repeats the Basic one authenticates nothing more."""
    s = issuer.settings
    tokens = issuer.code_flow("web")
    response = refresh(
        issuer,
        tokens["refresh_token"],
        auth=(s.web_client_id, s.web_client_secret),
        client_id=s.web_client_id,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("endpoint", ["introspect", "revoke"])
def test_introspection_and_revocation_refuse_two_methods(issuer, endpoint):
    s = issuer.settings
    tokens = issuer.code_flow("web")
    response = requests.post(
        issuer.endpoint(endpoint),
        data={
            "token": tokens["access_token"],
            "client_id": s.web_client_id,
            "client_secret": s.web_client_secret,
        },
        auth=(s.web_client_id, WRONG),
        timeout=TIMEOUT,
    )
    assert_invalid_request(response)
    other_client = requests.post(
        issuer.endpoint(endpoint),
        data={"token": tokens["access_token"], "client_id": s.spa_client_id},
        auth=(s.web_client_id, WRONG),
        timeout=TIMEOUT,
    )
    assert_invalid_request(other_client)
    # Neither request revoked the token.
    assert issuer.introspect(tokens["access_token"])["active"] is True


def test_client_assertion_plus_basic_gets_no_tokens(second_issuer, service_key_pem):
    """``private_key_jwt`` and a Basic header in one request: refused, although the assertion is valid."""
    s = second_issuer.settings
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": s.service_client_id,
            "sub": s.service_client_id,
            "aud": second_issuer.endpoint("token"),
            "iat": now,
            "exp": now + 60,
            "jti": f"both-{time.monotonic_ns()}",
        },
        service_key_pem.read_bytes(),
        algorithm="RS256",
    )
    response = requests.post(
        second_issuer.endpoint("token"),
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        auth=(s.service_client_id, WRONG),
        timeout=TIMEOUT,
    )
    assert_invalid_request(response)
    assert "private_key_jwt" in response.json()["error_description"]


@pytest.mark.parametrize("spacing", ["\t", " \t", "  "])
def test_basic_spelled_with_other_whitespace_still_counts_as_basic(issuer, spacing):
    """Authlib splits the scheme off at any whitespace, so the mixed-methods check must too."""
    s = issuer.settings
    tokens = issuer.code_flow("web")
    wrong = base64.b64encode(f"{s.web_client_id}:{WRONG}".encode()).decode()
    body = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": s.web_client_id,
        "client_secret": s.web_client_secret,
    }
    response = requests.post(
        issuer.endpoint("token"),
        data=body,
        headers={"Authorization": f"Basic{spacing}{wrong}"},
        timeout=TIMEOUT,
    )
    assert_invalid_request(response)


def test_undecodable_basic_after_a_tab_is_a_clear_401_not_a_500(issuer):
    undecodable = base64.b64encode(b"\xff\xfe:\xff").decode()
    response = requests.post(
        issuer.endpoint("token"),
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic\t {undecodable}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
