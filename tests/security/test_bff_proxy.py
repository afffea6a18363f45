"""The backend-for-frontend's proxy and CSRF rule, against the scriptable test issuer and its counting API.

The SPA's server runs in-process (Flask's test client, real Redis) as in
``bff_driver``; ``API_URL`` is the test issuer, whose ``/api/messages``
records every request it gets, so a test can say exactly what reached the
API (path, headers) and script what the API answers.
"""

from __future__ import annotations

import pytest

from tests.fake_issuer import Reply

CSRF = {"X-CSRF": "1"}

#: One case per trick: the path as the browser sends it (never normalised by the test client).
TRICKS = {
    "dot_dot": "/bff/api/../../healthz",
    "dot_dot_after_a_name": "/bff/api/messages/../../oauth2/default/v1/keys",
    "single_dot": "/bff/api/./messages",
    "encoded_dot_dot": "/bff/api/%2e%2e/%2E%2E/healthz",
    "encoded_slash": "/bff/api/messages%2f..%2f..%2fhealthz",
    "encoded_backslash": "/bff/api/..%5c..%5chealthz",
    "backslash": "/bff/api/..\\..\\healthz",
    "double_encoding": "/bff/api/%252e%252e/healthz",
    "double_slash_host": "/bff/api//evil.test/api/messages",
    "absolute_url": "/bff/api/http://evil.test/api/messages",
    "userinfo": "/bff/api/@evil.test/api/messages",
    "scheme": "/bff/api/javascript:alert(1)",
    "null_byte": "/bff/api/messages%00",
    "trailing_empty_segment": "/bff/api/messages/",
}


@pytest.fixture
def signed_in(bff_driver):
    """The BFF driver with its browser signed in (the control that a sign-in works)."""
    assert bff_driver.sign_in().ok
    return bff_driver


def api_requests(issuer):
    return [r for r in issuer.requests if r.path.startswith("/api/") or r.endpoint == "unknown"]


def test_the_proxy_reaches_the_api(signed_in, issuer):
    answer = signed_in.client.get("/bff/api/messages?limit=2", headers=CSRF)
    assert answer.status_code == 200 and answer.json["messages"]
    (seen,) = api_requests(issuer)
    assert seen.path == "/api/messages" and seen.query == {"limit": "2"}
    assert seen.headers["Authorization"].removeprefix("Bearer ") in issuer.access_tokens


@pytest.mark.parametrize("trick", list(TRICKS))
def test_every_proxy_trick_is_refused(signed_in, issuer, trick):
    answer = signed_in.client.get(TRICKS[trick], headers=CSRF)
    assert answer.status_code in (400, 404), answer.status_code
    assert answer.is_json and answer.json["error"] in ("invalid_path", "not_found")
    assert "Traceback" not in answer.get_data(as_text=True)
    assert api_requests(issuer) == []  # nothing went anywhere


def test_only_a_fixed_set_of_headers_travels_on(signed_in, issuer):
    signed_in.client.set_cookie("other", "a-cookie-for-this-origin", domain="localhost")
    signed_in.client.get(
        "/bff/api/messages",
        headers={
            **CSRF,
            "Accept": "application/json",
            "Accept-Language": "de",
            "Authorization": "Bearer the-page-s-own-guess",
            "X-Forwarded-For": "203.0.113.9",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "hop-by-hop",
            "Proxy-Authorization": "Basic eDp5",
            "Host-Override": "evil.test",
        },
    )
    (seen,) = api_requests(issuer)
    names = {name.lower() for name in seen.headers}
    assert seen.headers["Accept-Language"] == "de" and seen.headers["Accept"] == "application/json"
    # The user's access token, never the page's; no cookie, no X-CSRF, nothing hop-by-hop or forwarded.
    assert seen.headers["Authorization"].removeprefix("Bearer ") in issuer.access_tokens
    for name in ("cookie", "x-csrf", "x-forwarded-for", "x-secret", "proxy-authorization", "host-override"):
        assert name not in names, name


def test_only_the_status_challenge_type_and_body_come_back(signed_in, issuer):
    issuer.script(
        "api",
        Reply(
            403,
            {"error": "insufficient_scope"},
            {
                "WWW-Authenticate": 'Bearer error="insufficient_scope", scope="customScope"',
                "Set-Cookie": "api=1; Path=/",
                "Access-Control-Allow-Origin": "*",
                "Location": "http://evil.test/",
                "Cache-Control": "public, max-age=3600",
            },
        ),
    )
    answer = signed_in.client.get("/bff/api/messages", headers=CSRF)
    assert answer.status_code == 403
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="customScope"'
    assert answer.json == {"error": "insufficient_scope"}
    for header in ("Access-Control-Allow-Origin", "Location"):
        assert header not in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"  # about one user: no cache keeps it
    assert "api=1" not in answer.headers.get("Set-Cookie", "")


def test_a_401_after_renewal_signs_out_of_the_bff(signed_in, issuer):
    issuer.script(
        "api", Reply(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    )
    tokens_before = issuer.count("token")
    answer = signed_in.client.get("/bff/api/messages", headers=CSRF)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert issuer.count("token") == tokens_before + 1  # one renewal, then the retry was refused too
    assert issuer.count("api") == 2
    assert not signed_in.tokens_stored()
    assert signed_in.client.get("/bff/user", headers=CSRF).status_code == 401


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(lambda i: i.hang("api", 3), id="api_hangs"),
        pytest.param(lambda i: i.script("api", Reply(200, b"x" * (2 * 1024 * 1024))), id="answer_too_large"),
    ],
)
def test_a_slow_or_huge_answer_is_a_502(signed_in, issuer, script):
    script(issuer)
    answer = signed_in.client.get("/bff/api/messages", headers=CSRF)
    assert answer.status_code == 502 and answer.json["error"] == "api_unreachable"
    assert signed_in.tokens_stored()  # still signed in: the API's trouble is not the user's


def test_an_unreachable_api_is_a_502(issuer, redis_server):
    from tests.security.conftest import BFF_REDIS_DB, BffDriver
    from tests.support import free_port

    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{BFF_REDIS_DB}"
    driver = BffDriver(issuer, redis_url, api_url=f"http://127.0.0.1:{free_port()}")
    assert driver.sign_in().ok
    answer = driver.client.get("/bff/api/messages", headers=CSRF)
    assert answer.status_code == 502 and answer.json["error"] == "api_unreachable"


def test_a_request_body_is_bounded(signed_in, issuer):
    answer = signed_in.client.post(
        "/bff/api/messages", data=b"x" * (65 * 1024), headers={**CSRF, "Content-Type": "text/plain"}
    )
    assert answer.status_code == 413 and answer.is_json
    assert api_requests(issuer) == []


# -- CSRF: X-CSRF: 1 or 403, before anything else --------------------------------------------

PROTECTED = [
    ("GET", "/bff/user"),
    ("GET", "/bff/inspector"),
    ("POST", "/bff/logout"),
    ("GET", "/bff/api/messages"),
    ("POST", "/bff/api/messages"),
    ("DELETE", "/bff/api/messages"),
    ("OPTIONS", "/bff/api/messages"),  # a CORS preflight is never granted
]


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no_header"),
        pytest.param({"X-CSRF": "0"}, id="wrong_value"),
        pytest.param({"Origin": "http://evil.test"}, id="foreign_origin"),
        pytest.param({"X-CSRF": "1", "Origin": "http://evil.test"}, id="header_from_a_foreign_origin"),
    ],
)
def test_without_x_csrf_every_protected_route_is_refused(signed_in, issuer, method, path, headers):
    answer = signed_in.client.open(path, method=method, headers=headers)
    assert answer.status_code == 403 and answer.json["error"] == "csrf_refused"
    assert not any(name.startswith("Access-Control-Allow") for name in answer.headers.keys())
    assert "Set-Cookie" not in answer.headers
    assert api_requests(issuer) == [] and issuer.count("revoke") == 0
    assert signed_in.tokens_stored()  # nothing was done: still signed in


def test_refused_before_the_session_store_is_touched(issuer):
    """Redis is unreachable: without X-CSRF still a 403 (it never got that far); with it, a 503."""
    from spa_app import create_app
    from tests.support import free_port

    app = create_app(
        {
            "ISSUER": issuer.issuer,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "SPA_BASE_URL": "http://localhost:5002",
            "TESTING": True,
        }
    )
    client = app.test_client()
    client.set_cookie("spa_bff_session", "a-session-id", domain="localhost")
    for method, path in PROTECTED:
        assert client.open(path, method=method).status_code == 403, path
    assert client.get("/bff/user", headers=CSRF).status_code == 503
    # The in-browser modes' routes never need Redis either.
    for path in ("/", "/config.json", "/healthz", "/login/callback"):
        assert client.get(path).status_code == 200, path


# -- the cookie on https ----------------------------------------------------------------------------


def test_on_https_the_cookie_is_host_prefixed_and_secure(issuer, redis_server):
    """RFC 6265bis §4.1.3.2: ``__Host-``, ``Secure``, ``Path=/``, no ``Domain``; HttpOnly and Lax too."""
    from spa_app import create_app

    app = create_app(
        {
            "ISSUER": issuer.issuer,
            "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/8",
            "SPA_BASE_URL": "https://spa.example.test",
            "SPA_BFF_CLIENT_ID": issuer.client_id,
            "SPA_BFF_CLIENT_SECRET": issuer.client_secret,
            "TESTING": True,
        }
    )
    response = app.test_client().get("/bff/login", base_url="https://spa.example.test")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-spa_bff_session=")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(attributes)
    assert not any(part.startswith("domain=") for part in attributes)


def test_without_redis_url_the_page_works_and_the_bff_says_why():
    """``flask --app spa_app run`` without REDIS_URL: the in-browser modes work; /bff/* is a clear 503."""
    from spa_app import create_app

    client = create_app({"REDIS_URL": "", "TESTING": True}).test_client()
    assert client.get("/").status_code == 200 and client.get("/config.json").status_code == 200
    answer = client.get("/bff/user", headers=CSRF)
    assert answer.status_code == 503 and answer.json["error"] == "bff_unavailable"
    assert client.get("/bff/user").status_code == 403  # the CSRF rule still comes first
