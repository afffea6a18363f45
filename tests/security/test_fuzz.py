"""Property-based tests: arbitrary query strings and form bodies at every callback and API route.

Hypothesis generates parameter names (the ones each route reads, mixed with
random ones), values (any Unicode, control characters, very long strings,
hostile URLs) and raw, possibly malformed, query strings and bodies.  The
property is the same everywhere: **the answer is never a 5xx and never
shows a stack trace**.  A 5xx a user can trigger is a bug: it hides the
real problem from them and fills the log.

The apps run in-process (Flask's test client, fast) against the real Redis
and, where a route calls out (the web app's token request, the resource
server's JWKS), the real dev issuer and resource server of the test session.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.config import load_settings
from tests.web_app.conftest import make_client

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Values an attacker would try first, mixed into the random ones.
HOSTILE = st.sampled_from(
    [
        "",
        " ",
        "null",
        "None",
        "0",
        "-1",
        "1e999",
        "[]",
        "{}",
        "true",
        "%",
        "%00",
        "\x00",
        "\r\n",
        "é",
        "\u202e",
        "//evil.test",
        "https://evil.test/",
        "/\\evil.test",
        "javascript:alert(1)",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "../../etc/passwd",
        "a" * 5000,
        "eyJhbGciOiJub25lIn0.e30.",
        "Bearer",
        "S256",
        "plain",
    ]
)
VALUES = st.one_of(HOSTILE, st.text(max_size=300))

#: Every parameter the routes below read, plus a few that mean something elsewhere.
KNOWN_NAMES = [
    "code",
    "state",
    "error",
    "error_description",
    "error_uri",
    "iss",
    "next",
    "session_state",
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "nonce",
    "prompt",
    "max_age",
    "code_challenge",
    "code_challenge_method",
    "code_verifier",
    "grant_type",
    "refresh_token",
    "username",
    "password",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "token",
    "token_type_hint",
    "id_token_hint",
    "post_logout_redirect_uri",
    "login_hint",
    "request",
    "request_uri",
    "csrf_token",
    "access_token",
    "id_token",
    "confirm",
    "audience",
]
NAMES = st.one_of(st.sampled_from(KNOWN_NAMES), st.text(max_size=30))
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=12)


@st.composite
def query_strings(draw) -> str:
    """A query string: well-formed pairs (repeated names allowed), or arbitrary bytes.

    The bytes are percent-encoded except for ``%&=+;`` and friends, as an
    HTTP client must send them (no spaces or line breaks in a request
    line), which still leaves malformed escapes (``%zz``, ``%``), invalid
    UTF-8 (``%ff``) and empty or repeated names.
    """
    if draw(st.integers(0, 4)) == 0:
        return quote(draw(st.binary(max_size=400)), safe="%&=+;/?:@!$'()*,~")
    return urlencode(draw(PAIRS))


@st.composite
def form_bodies(draw) -> tuple[bytes, str]:
    """``(body, content type)``: a form, or raw bytes claiming some content type."""
    content_type = draw(
        st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=latin-1",
                "application/json",
                "multipart/form-data",
                "multipart/form-data; boundary=x",
                "text/plain",
                "",
            ]
        )
    )
    if draw(st.booleans()):
        return urlencode(draw(PAIRS)).encode(), content_type
    return draw(st.binary(max_size=600)), content_type


AUTHORIZATION = st.one_of(
    st.none(),
    HOSTILE,
    st.text(max_size=200),
    st.builds(lambda s: "Bearer " + s, st.text(max_size=200)),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=100)),
    st.builds(lambda a, b: "Basic " + base64.b64encode(f"{a}:{b}".encode()).decode(), NAMES, VALUES),
)


def latin1(value: str | None) -> str | None:
    """A header value as a client could really send it: Latin-1 octets (RFC 9110 §5.5)."""
    if value is None:
        return None
    # No line breaks or NUL in a header: HTTP/1.1 framing makes them impossible to send.
    return value.encode("utf-8", "replace").decode("latin-1").translate({0: None, 10: None, 13: None})


def assert_no_server_error(response, what: str) -> None:
    body = response.get_data(as_text=True)
    response.close()
    assert response.status_code < 500, f"{what}: HTTP {response.status_code}\n{body[:1500]}"
    assert "Traceback" not in body, what


# -- apps in-process ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_app_client(suite_env, dev_issuer, resource_server):
    from web_app import create_app

    # PAR=off: test_web_app_callback reads the real state off the plain authorization URL.
    return make_client(create_app({**suite_env, "HTTP_TIMEOUT": "3", "TESTING": True, "PAR": "off"}))


@pytest.fixture(scope="module")
def spa_client(suite_env):
    from spa_app import create_app

    return create_app({**suite_env, "TESTING": True}).test_client()


@pytest.fixture(scope="module")
def service_client(suite_env, dev_issuer, resource_server):
    from service_app import create_app

    return create_app({**suite_env, "TESTING": True}).test_client()


@pytest.fixture(scope="module")
def api_client(suite_env, dev_issuer):
    from resource_server import create_app

    return create_app({**suite_env, "TESTING": True}).test_client()


@pytest.fixture(scope="module")
def issuer_client(suite_env):
    from dev_issuer import create_app

    app = create_app({**suite_env, "TESTING": True})
    issuer = urlsplit(suite_env["ISSUER"])
    return app.test_client(), f"{issuer.scheme}://{issuer.netloc}", issuer.path


# -- web app ----------------------------------------------------------------------------------


@FUZZ
@given(query=query_strings(), with_real_state=st.booleans())
def test_web_app_callback(web_app_client, query, with_real_state):
    """The redirect URI, with and without a sign-in in flight (and its real ``state``)."""
    if with_real_state:
        started = web_app_client.get("/login")
        state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
        query = query + "&" + urlencode({"state": state})
    assert_no_server_error(web_app_client.get("/authorization-code/callback", query_string=query), "callback")


@FUZZ
@given(path=st.sampled_from(["/", "/login", "/profile", "/inspector"]), query=query_strings())
def test_web_app_pages(web_app_client, path, query):
    assert_no_server_error(web_app_client.get(path, query_string=query), path)


@FUZZ
@given(path=st.sampled_from(["/logout", "/call-api"]), body=form_bodies())
def test_web_app_forms(web_app_client, path, body):
    data, content_type = body
    response = web_app_client.post(
        path, data=data, headers={"Content-Type": content_type} if content_type else {}
    )
    assert_no_server_error(response, path)


# -- SPA, service app ---------------------------------------------------------------------------


@FUZZ
@given(path=st.sampled_from(["/", "/login/callback", "/config.json"]), query=query_strings())
def test_spa_routes(spa_client, path, query):
    assert_no_server_error(spa_client.get(path, query_string=query), path)


@FUZZ
@given(query=query_strings(), body=form_bodies())
def test_service_app_routes(service_client, query, body):
    assert_no_server_error(service_client.get("/", query_string=query), "/")
    data, content_type = body
    response = service_client.post(
        "/call", data=data, headers={"Content-Type": content_type} if content_type else {}
    )
    assert_no_server_error(response, "/call")


# -- resource server -------------------------------------------------------------------------------


@FUZZ
@given(
    path=st.sampled_from(["/api/messages", "/api/custom"]),
    query=query_strings(),
    authorization=AUTHORIZATION,
    origin=st.one_of(st.none(), HOSTILE),
    method=st.sampled_from(["GET", "OPTIONS", "POST"]),
)
def test_resource_server_api(api_client, path, query, authorization, origin, method):
    headers = {}
    if authorization is not None:
        headers["Authorization"] = latin1(authorization)
    if origin is not None:
        headers["Origin"] = latin1(origin)
        headers["Access-Control-Request-Method"] = "GET"
    assert_no_server_error(api_client.open(path, method=method, query_string=query, headers=headers), path)


# -- dev issuer ------------------------------------------------------------------------------------------


@FUZZ
@given(query=query_strings(), method=st.sampled_from(["GET", "POST"]), registered=st.booleans())
def test_issuer_authorize(issuer_client, suite_env, query, method, registered):
    """The authorization endpoint, sometimes with a registered client and redirect URI."""
    client, base, prefix = issuer_client
    if registered:
        query += "&" + urlencode(
            {
                "client_id": load_settings(suite_env).web_client_id,
                "redirect_uri": suite_env["WEB_BASE_URL"] + "/authorization-code/callback",
            }
        )
    if method == "GET":
        response = client.get(prefix + "/v1/authorize", query_string=query, base_url=base)
    else:
        response = client.post(
            prefix + "/v1/authorize",
            data=query,
            content_type="application/x-www-form-urlencoded",
            base_url=base,
        )
    assert_no_server_error(response, "authorize")


@FUZZ
@given(
    endpoint=st.sampled_from(["token", "introspect", "revoke", "userinfo"]),
    body=form_bodies(),
    authorization=AUTHORIZATION,
    real_client=st.booleans(),
)
def test_issuer_token_endpoints(issuer_client, suite_env, endpoint, body, authorization, real_client):
    """Token, introspection, revocation, userinfo; half the time as the real web client.

    With the client's real credentials the request gets past client
    authentication, into the grant and endpoint code.
    """
    client, base, prefix = issuer_client
    data, content_type = body
    headers = {"Content-Type": content_type} if content_type else {}
    if real_client:
        settings = load_settings(suite_env)
        authorization = (
            "Basic "
            + base64.b64encode(f"{settings.web_client_id}:{settings.web_client_secret}".encode()).decode()
        )
    if authorization is not None:
        headers["Authorization"] = latin1(authorization)
    response = client.post(f"{prefix}/v1/{endpoint}", data=data, headers=headers, base_url=base)
    assert_no_server_error(response, endpoint)


@FUZZ
@given(query=query_strings(), body=form_bodies())
def test_issuer_sign_in_and_logout(issuer_client, query, body):
    client, base, prefix = issuer_client
    assert_no_server_error(client.get("/signin", query_string=query, base_url=base), "GET /signin")
    assert_no_server_error(client.get(prefix + "/v1/logout", query_string=query, base_url=base), "GET logout")
    data, content_type = body
    headers = {"Content-Type": content_type} if content_type else {}
    assert_no_server_error(client.post("/signin", data=data, headers=headers, base_url=base), "POST /signin")
    assert_no_server_error(
        client.post(prefix + "/v1/logout", data=data, headers=headers, base_url=base), "POST logout"
    )
