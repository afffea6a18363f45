"""Introspection mode (RFC 7662): opaque tokens, checked by asking the issuer."""

from __future__ import annotations

import base64
import time
import uuid

import pytest

from .conftest import (
    API_AUDIENCE,
    INTROSPECTION_CLIENT_ID,
    INTROSPECTION_CLIENT_SECRET,
    SERVICE_CLIENT_ID,
    SERVICE_SCOPE,
)
from .test_token_matrix import assert_refused, get


def active_answer(test_issuer, **overrides) -> dict:
    now = int(time.time())
    answer = {
        "active": True,
        "token_type": "Bearer",
        "scope": f"{SERVICE_SCOPE} extra",
        "client_id": SERVICE_CLIENT_ID,
        "sub": SERVICE_CLIENT_ID,
        "iss": test_issuer.issuer,
        "aud": API_AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    answer.update(overrides)
    return {k: v for k, v in answer.items() if v is not None}


def opaque_token(test_issuer, **overrides) -> str:
    """A fresh opaque token the test issuer will call active with ``overrides``."""
    token = "opaque." + uuid.uuid4().hex
    test_issuer.active_tokens[token] = active_answer(test_issuer, **overrides)
    return token


def introspections(test_issuer) -> int:
    return test_issuer.count(test_issuer.introspection_path)


def test_active_opaque_token_is_accepted(introspecting_api, test_issuer):
    token = opaque_token(test_issuer)
    response = get(introspecting_api, token, "/api/custom")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == SERVICE_CLIENT_ID
    assert body["scopes"] == [SERVICE_SCOPE, "extra"]
    # The resource server authenticated itself with Basic (RFC 7662 §2.1).
    expected = base64.b64encode(f"{INTROSPECTION_CLIENT_ID}:{INTROSPECTION_CLIENT_SECRET}".encode()).decode()
    assert test_issuer.introspection_auth[-1] == f"Basic {expected}"


def test_unknown_token_is_inactive(introspecting_api, test_issuer):
    assert_refused(get(introspecting_api, "opaque." + uuid.uuid4().hex), 401, "invalid_token")


def test_active_token_without_the_scope_is_403(introspecting_api, test_issuer):
    token = opaque_token(test_issuer, scope="openid profile")
    assert_refused(get(introspecting_api, token, "/api/custom"), 403, "insufficient_scope")
    assert get(introspecting_api, token, "/api/messages").status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "api://other"}, id="foreign-audience"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"iss": "http://127.0.0.1:1/oauth2/default"}, id="foreign-issuer"),
        pytest.param({"token_type": "urn:ietf:params:oauth:token-type:id_token"}, id="id-token"),
        pytest.param({"sub": None}, id="no-subject"),
    ],
)
def test_active_but_not_for_us_is_refused(introspecting_api, test_issuer, overrides):
    assert_refused(get(introspecting_api, opaque_token(test_issuer, **overrides)), 401, "invalid_token")


def test_positive_answers_are_cached(introspecting_api, test_issuer):
    token = opaque_token(test_issuer)
    before = introspections(test_issuer)
    for _ in range(5):
        assert get(introspecting_api, token).status_code == 200
    assert introspections(test_issuer) - before == 1


def test_cache_never_outlives_the_token(introspecting_api, test_issuer):
    """A token expiring in 2 s is asked about again after 2 s; by then the issuer says inactive."""
    token = opaque_token(test_issuer, exp=int(time.time()) + 2)
    before = introspections(test_issuer)
    assert get(introspecting_api, token).status_code == 200
    test_issuer.active_tokens[token] = {"active": False}
    time.sleep(2.5)
    assert_refused(get(introspecting_api, token), 401, "invalid_token")
    assert introspections(test_issuer) - before == 2


def test_negative_answers_are_not_cached(introspecting_api, test_issuer):
    token = "opaque." + uuid.uuid4().hex
    assert_refused(get(introspecting_api, token), 401, "invalid_token")
    test_issuer.active_tokens[token] = active_answer(test_issuer)
    assert get(introspecting_api, token).status_code == 200


def test_token_in_query_is_refused_without_asking_the_issuer(introspecting_api, test_issuer):
    before = introspections(test_issuer)
    response = get(introspecting_api, params={"access_token": opaque_token(test_issuer)})
    assert_refused(response, 400, "invalid_request")
    assert introspections(test_issuer) == before


def test_malformed_introspection_answer_is_an_issuer_fault(introspecting_api, test_issuer):
    """``"active": "true"`` is not RFC 7662: a 502 from us, not a verdict on the caller's token."""
    response = get(introspecting_api, opaque_token(test_issuer, active="true"))
    assert response.status_code == 502
    assert "WWW-Authenticate" not in response.headers
    assert response.json()["error"] == "token_error"
