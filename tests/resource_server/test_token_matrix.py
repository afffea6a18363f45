"""The resource server's token matrix: every accepted shape and every refusal, over real HTTP.

Each refusal asserts the exact status and the RFC 6750 §3 challenge
(``WWW-Authenticate: Bearer ... error="..."``), because that, not the body,
is what client libraries act on.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.support import free_port, gunicorn

from .conftest import API_AUDIENCE, SERVICE_CLIENT_ID, SERVICE_SCOPE, WEB_CLIENT_ID, api_env


def challenge(response: requests.Response) -> dict[str, str]:
    """The parameters of the ``WWW-Authenticate: Bearer`` challenge, as a dict.

    It comes first; a second one, ``DPoP``, offers the other scheme
    (``API_DPOP=optional``, RFC 9449 §7.1) and is checked in ``test_dpop.py``.
    """
    values = response.raw.headers.getlist("WWW-Authenticate")
    assert values and values[0].startswith("Bearer "), f"no Bearer challenge first: {values!r}"
    return dict(re.findall(r'(\w+)="([^"]*)"', values[0]))


def get(api, token: str | None = None, path: str = "/api/messages", **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(api.url + path, headers=headers, timeout=10, **kwargs)


def assert_refused(response: requests.Response, status: int, error: str | None) -> dict[str, str]:
    """Exact status, exact challenge error, and the same error in a JSON body."""
    assert response.status_code == status, response.text
    params = challenge(response)
    assert params["realm"] == API_AUDIENCE
    assert params.get("error") == error
    assert response.headers["Content-Type"].startswith("application/json")
    if error:
        assert response.json()["error"] == error
        assert params["error_description"]
    return params


# -- accepted ------------------------------------------------------------------------------------------------


def test_health_needs_no_token(api):
    response = requests.get(api.url + "/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_okta_shaped_token_is_accepted(api, test_issuer):
    """typ JWT, ``scp`` array, ``cid``: what an Okta custom authorization server issues."""
    token = test_issuer.mint(test_issuer.claims(sub="alice@example.com"))
    response = get(api, token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sub"] == "alice@example.com"
    assert body["client_id"] == WEB_CLIENT_ID
    assert body["scopes"] == ["openid", "profile"]
    assert any("alice@example.com" in message["text"] for message in body["messages"])


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
def test_rfc9068_token_is_accepted(api, test_issuer, typ):
    """typ at+jwt, space-separated ``scope``, ``client_id`` (RFC 9068 §2)."""
    token = test_issuer.mint(test_issuer.rfc9068_claims(scope=f"{SERVICE_SCOPE} other"), headers={"typ": typ})
    response = get(api, token, "/api/custom")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == SERVICE_CLIENT_ID
    assert body["scopes"] == [SERVICE_SCOPE, "other"]
    assert SERVICE_SCOPE in body["message"]


def test_token_without_typ_is_accepted(api, test_issuer):
    """``typ`` is optional (RFC 7519 §5.1); the audience is what identifies our tokens."""
    response = get(api, test_issuer.mint(headers={"typ": None}))
    assert response.status_code == 200, response.text


def test_audience_list_containing_ours_is_accepted(api, test_issuer):
    token = test_issuer.mint(test_issuer.claims(aud=["api://other", API_AUDIENCE]))
    assert get(api, token).status_code == 200


def test_bearer_scheme_is_case_insensitive(api, test_issuer):
    """RFC 7235 §2.1: auth schemes are case-insensitive."""
    response = get(api, headers={"Authorization": "bearer " + test_issuer.mint()})
    assert response.status_code == 200, response.text


def test_clock_skew_within_leeway_is_accepted(api, test_issuer):
    now = int(time.time())
    token = test_issuer.mint(test_issuer.claims(iat=now + 10, nbf=now + 10, exp=now - 10))
    assert get(api, token).status_code == 200


# -- scopes --------------------------------------------------------------------------------------------------


def test_custom_route_with_okta_scp(api, test_issuer):
    token = test_issuer.mint(
        test_issuer.claims(scp=[SERVICE_SCOPE], cid=SERVICE_CLIENT_ID, sub=SERVICE_CLIENT_ID)
    )
    response = get(api, token, "/api/custom")
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == SERVICE_CLIENT_ID


@pytest.mark.parametrize(
    "claims",
    [
        {"scp": ["openid", "profile"]},
        {"scp": [SERVICE_SCOPE + "X"]},
        {"scp": None, "scope": "openid customscope"},  # scopes are case-sensitive (RFC 6749 §3.3)
        {"scp": None},  # no scope claim at all
    ],
)
def test_custom_route_without_the_scope_is_403(api, test_issuer, claims):
    response = get(api, test_issuer.mint(test_issuer.claims(**claims)), "/api/custom")
    params = assert_refused(response, 403, "insufficient_scope")
    assert params["scope"] == SERVICE_SCOPE


@pytest.fixture(scope="module")
def multi_scope_api(test_issuer):
    """The resource server with a SERVICE_SCOPE that names two scopes."""
    service = gunicorn(
        "resource_server-multi-scope",
        "resource_server:create_app()",
        api_env(test_issuer, SERVICE_SCOPE="customScope other"),
        free_port(),
        workers=1,
        health_path="/healthz",
    ).start()
    yield service
    service.stop()


@pytest.mark.parametrize(
    "claims, granted",
    [
        ({"scp": ["customScope", "other"]}, True),
        ({"scp": ["other", "openid", "customScope"]}, True),  # order and extra scopes do not matter
        ({"scp": None, "scope": "other customScope"}, True),
        ({"scp": ["customScope"]}, False),  # one of the two is not enough
        ({"scp": ["other"]}, False),
    ],
)
def test_multi_scope_service_scope_needs_every_scope(multi_scope_api, test_issuer, claims, granted):
    """SERVICE_SCOPE is a space-separated list (RFC 6749 §3.3): the route needs each scope in it."""
    response = get(multi_scope_api, test_issuer.mint(test_issuer.claims(**claims)), "/api/custom")
    if granted:
        assert response.status_code == 200, response.text
    else:
        params = assert_refused(response, 403, "insufficient_scope")
        assert params["scope"] == "customScope other"  # RFC 6750 §3: the scopes needed, space-delimited


# -- no token / malformed requests ---------------------------------------------------------------------------


def test_no_token_is_401_without_error_code(api):
    """RFC 6750 §3.1: a request without credentials gets a challenge with no error code."""
    response = get(api)
    params = assert_refused(response, 401, None)
    assert set(params) == {"realm"}


def test_other_auth_scheme_is_401_without_error_code(api):
    response = get(api, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_refused(response, 401, None)


def test_token_in_query_string_is_refused(api, test_issuer):
    """RFC 6750 §2.3 / RFC 9700 §2.5: tokens in URLs leak through logs and Referer."""
    response = get(api, params={"access_token": test_issuer.mint()})
    assert_refused(response, 400, "invalid_request")


def test_token_in_query_string_is_refused_even_with_a_header(api, test_issuer):
    token = test_issuer.mint()
    response = get(api, token, params={"access_token": token})
    assert_refused(response, 400, "invalid_request")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", 'Bearer tok"en', "Bearer =abc"])
def test_malformed_authorization_header_is_400(api, header):
    assert_refused(get(api, headers={"Authorization": header}), 400, "invalid_request")


# -- invalid_token: signature and algorithm ------------------------------------------------------------------


def test_tampered_payload_is_refused(api, test_issuer):
    header, _, signature = test_issuer.mint().split(".")
    forged_claims = test_issuer.claims(sub="admin", scp=[SERVICE_SCOPE])
    forged = test_issuer.forge({}, forged_claims).split(".")[1]
    assert_refused(get(api, f"{header}.{forged}.{signature}", "/api/custom"), 401, "invalid_token")


def test_token_signed_by_another_key_with_our_kid_is_refused(api, test_issuer):
    token = test_issuer.mint(key=test_issuer.rogue_key)
    assert_refused(get(api, token), 401, "invalid_token")


def test_unknown_kid_is_refused(api, test_issuer):
    token = test_issuer.mint(key=test_issuer.rogue_key, kid="no-such-key")
    assert_refused(get(api, token), 401, "invalid_token")


def test_alg_none_is_refused(api, test_issuer):
    token = test_issuer.forge({"alg": "none", "typ": "JWT", "kid": test_issuer.kid}, test_issuer.claims())
    assert_refused(get(api, token), 401, "invalid_token")


def test_hmac_with_the_public_key_is_refused(api, test_issuer):
    """Algorithm confusion (RFC 8725 §2.1): HS256 keyed with the issuer's public key."""
    assert_refused(get(api, test_issuer.hs256_with_public_key(test_issuer.claims())), 401, "invalid_token")


def test_unpinned_algorithm_is_refused(api, test_issuer):
    """Correctly signed with the issuer's own key, but RS512 is not on our list (RFC 8725 §3.1)."""
    assert_refused(get(api, test_issuer.mint(alg="RS512")), 401, "invalid_token")


@pytest.mark.parametrize("header_name", ["jku", "x5u"])
def test_key_url_headers_are_ignored(api, test_issuer, header_name):
    """A token that names its own key set must not make us fetch it (RFC 8725 §3.10)."""
    url = f"{test_issuer.base}/attacker/{header_name}.json"
    token = test_issuer.mint(key=test_issuer.rogue_key, kid="attacker-key", headers={header_name: url})
    assert_refused(get(api, token), 401, "invalid_token")
    assert test_issuer.count(f"/attacker/{header_name}.json") == 0


def test_embedded_jwk_header_is_ignored(api, test_issuer):
    from .conftest import _public_jwk

    embedded = _public_jwk(test_issuer.rogue_key, "attacker-key")
    token = test_issuer.mint(key=test_issuer.rogue_key, kid="attacker-key", headers={"jwk": embedded})
    assert_refused(get(api, token), 401, "invalid_token")


@pytest.mark.parametrize("token", ["opaque-token-value", "a.b", "a.b.c.d.e", "eyJ.eyJ.sig"])
def test_not_a_signed_jwt_is_refused(api, token):
    assert_refused(get(api, token), 401, "invalid_token")


# -- invalid_token: claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"iss": "http://127.0.0.1:1/oauth2/default"}, id="foreign-issuer"),
        pytest.param({"iss": None}, id="no-issuer"),
        pytest.param({"aud": "api://other"}, id="foreign-audience"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"exp": "tomorrow"}, id="expiry-not-a-number"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not-yet-valid"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued-in-the-future"),
        pytest.param({"sub": None}, id="no-subject"),
        pytest.param({"scp": 'a,b"c'}, id="malformed-scp"),
        pytest.param({"scp": [1, 2]}, id="scp-not-strings"),
        pytest.param({"cid": 42}, id="cid-not-a-string"),
    ],
)
def test_bad_claims_are_refused(api, test_issuer, overrides):
    assert_refused(get(api, test_issuer.mint(test_issuer.claims(**overrides))), 401, "invalid_token")


def test_issuer_with_trailing_slash_is_a_different_issuer(api, test_issuer):
    """``iss`` is compared exactly (OIDC Core 3.1.3.7 step 2): no normalisation."""
    token = test_issuer.mint(test_issuer.claims(iss=test_issuer.issuer + "/"))
    assert_refused(get(api, token), 401, "invalid_token")


# -- an ID token is not an access token ----------------------------------------------------------------------


def id_token_claims(test_issuer, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "iss": test_issuer.issuer,
        "sub": "00u1",
        "aud": WEB_CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "auth_time": now - 5,
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "amr": ["pwd"],
        "name": "Test User",
        "email": "testuser1@example.com",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_id_token_for_a_client_is_refused(api, test_issuer):
    """The usual case: an app sends its ID token; ``aud`` is its client id, not the API."""
    assert_refused(get(api, test_issuer.mint(id_token_claims(test_issuer))), 401, "invalid_token")


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="at_hash"),
        pytest.param({"at_hash": None, "c_hash": "LDktKdoQak3Pk0cnXxCltA"}, id="c_hash"),
        pytest.param({"at_hash": None}, id="nonce-without-scopes"),
    ],
)
def test_id_token_with_the_api_audience_is_still_refused(api, test_issuer, overrides):
    """Defence in depth for an ``API_AUDIENCE`` that was set to a client id by mistake."""
    token = test_issuer.mint(id_token_claims(test_issuer, aud=API_AUDIENCE, **overrides))
    assert_refused(get(api, token), 401, "invalid_token")


@pytest.mark.parametrize("typ", ["logout+jwt", "dpop+jwt", "secevent+jwt", "JWE"])
def test_other_explicit_token_types_are_refused(api, test_issuer, typ):
    assert_refused(get(api, test_issuer.mint(headers={"typ": typ})), 401, "invalid_token")


def test_auth_time_alone_does_not_make_an_id_token(api, test_issuer):
    """RFC 9068 §2.2.1 allows ``auth_time``/``acr``/``amr`` in access tokens."""
    token = test_issuer.mint(test_issuer.claims(auth_time=int(time.time()) - 60, acr="1", amr=["pwd"]))
    assert get(api, token).status_code == 200


# -- size ----------------------------------------------------------------------------------------------------


def test_oversized_token_is_refused_before_verification(api, test_issuer):
    """Just over our 8192-character limit: refused by the app itself."""
    token = test_issuer.mint(test_issuer.claims(padding="x" * 9000))
    assert len(token) > 8192
    assert_refused(get(api, token), 401, "invalid_token")


def test_megabyte_token_is_refused_fast(api):
    """A 1 MB header never reaches the app: gunicorn's header limit refuses it at once."""
    token = "eyJ" + "A" * (1024 * 1024)
    started = time.monotonic()
    try:
        response = get(api, token)
    except requests.ConnectionError:
        response = None  # the server closed the connection while we were still sending: refused too
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    if response is not None:
        assert response.status_code in (400, 401, 431)
    # ... and the server is none the worse for it.
    assert requests.get(api.url + "/healthz", timeout=5).status_code == 200


# -- every answer is JSON, cacheable answers are not ---------------------------------------------------------


def test_unknown_route_answers_json(api):
    response = requests.get(api.url + "/nothing-here", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_refusals_are_not_cacheable(api, test_issuer):
    response = get(api, "opaque")
    assert response.headers["Cache-Control"] == "no-store"


def test_remembered_token_is_refused_once_it_expires(api, test_issuer):
    """The verified-token cache never outlives ``exp`` + leeway (the API runs with CLOCK_LEEWAY=30)."""
    token = test_issuer.mint(test_issuer.claims(exp=int(time.time()) - 28))
    for _ in range(4):  # reaches (and fills the cache of) both workers, most likely
        assert get(api, token).status_code == 200
    time.sleep(3)
    for _ in range(4):
        assert_refused(get(api, token), 401, "invalid_token")


def test_token_content_cannot_inject_into_the_challenge(api, test_issuer):
    """Error descriptions quote parts of the token; quotes and backslashes must not break the header."""
    token = test_issuer.mint(headers={"typ": 'x", error="none\\'})
    response = get(api, token)
    params = assert_refused(response, 401, "invalid_token")
    for value in response.raw.headers.getlist("WWW-Authenticate"):  # Bearer, then DPoP
        assert value.count('error="') == 1, value
    assert '"' not in params["error_description"]


def test_answers_are_not_stored_by_caches(api, test_issuer):
    assert get(api, test_issuer.mint()).headers["Cache-Control"] == "no-store"
