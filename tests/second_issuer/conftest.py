"""A second, independent OpenID Provider, and the suite's apps pointed at it.

The provider is panva's ``oidc-provider`` (``server.js`` here; ``make test``
installs it with ``npm ci``), run with Node on a free loopback port. The
resource server, the SPA's server (its backend-for-frontend) and the web app
run under gunicorn with their own Redis and are configured by environment
variables alone: nothing in them knows which issuer they talk to.

:func:`sign_in_at_provider` drives the provider's built-in sign-in and
consent pages (``devInteractions``: any login name, any password) with
``requests``, as a browser would.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.support import RedisServer, Service, free_port, gunicorn

HERE = Path(__file__).resolve().parent
TIMEOUT = 10

#: Registrations at the second issuer: deliberately not the suite's
#: defaults, so a test passes only if the apps read them from the environment.
BFF_CLIENT_ID = "second-issuer-bff"
BFF_CLIENT_SECRET = "second-issuer-bff-secret-for-tests-only"
WEB_CLIENT_ID = "second-issuer-web"
WEB_CLIENT_SECRET = "second-issuer-web-secret-for-tests-only"
API_AUDIENCE = "https://api.second-issuer.test"
NATIVE_CLIENT_ID = "second-issuer-native"  # native_sim device-login (RFC 8628)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def node_binary() -> str:
    """The ``node`` executable and the installed provider, or a clear failure saying how to get them."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: `make test` installs it (apt-get install nodejs npm)")
    if not (HERE / "node_modules" / "oidc-provider" / "package.json").is_file():
        pytest.fail("oidc-provider is not installed: run `make test`, or `npm ci` in tests/second_issuer")
    return node


@pytest.fixture(scope="module")
def second_stack(tmp_path_factory):
    """oidc-provider, a private Redis, the resource server, the SPA server and the web app.

    :return: the environment every process shares (``ISSUER`` is the
        provider's ``http://127.0.0.1:PORT``; the apps are on ``localhost``,
        another site for the browser, as in :mod:`tests.conftest`).
    """
    node = node_binary()
    ports = {name: free_port() for name in ("issuer", "api", "spa", "web")}
    env = {
        "ISSUER": f"http://127.0.0.1:{ports['issuer']}",
        "SPA_BASE_URL": f"http://localhost:{ports['spa']}",
        "WEB_BASE_URL": f"http://localhost:{ports['web']}",
        "API_URL": f"http://127.0.0.1:{ports['api']}",
        "API_AUDIENCE": API_AUDIENCE,
        "SPA_BFF_CLIENT_ID": BFF_CLIENT_ID,
        "SPA_BFF_CLIENT_SECRET": BFF_CLIENT_SECRET,
        "WEB_CLIENT_ID": WEB_CLIENT_ID,
        "WEB_CLIENT_SECRET": WEB_CLIENT_SECRET,
        "NATIVE_CLIENT_ID": NATIVE_CLIENT_ID,
        # Access tokens live just over the clients' 30-second renewal margin
        # (common.tokens.TokenSet.expired): a test sees a renewal within seconds.
        "ACCESS_TOKEN_TTL": "33",
    }
    redis = RedisServer(tmp_path_factory.mktemp("second-issuer-redis"))
    env["REDIS_URL"] = redis.url
    provider = Service(
        "second_issuer",
        [node, str(HERE / "server.js")],
        {**env, "PORT": str(ports["issuer"])},
        ports["issuer"],
        health_path="/.well-known/openid-configuration",
    )
    parts = [
        gunicorn(
            f"second-{name}", f"{name}:create_app()", env, ports[port], workers=2, health_path="/healthz"
        )
        for name, port in (("resource_server", "api"), ("spa_app", "spa"), ("web_app", "web"))
    ]
    started = []
    try:
        for part in (redis, provider, *parts):
            part.start()
            started.append(part)
        yield env
    finally:
        for part in reversed(started):
            part.stop()


def sign_in_at_provider(http: requests.Session, authorization_url: str, login: str) -> str:
    """Sign in at oidc-provider's own pages and consent; return the redirect aimed at the client.

    Follows the authorization request to the login form, posts any login
    name with any password (``devInteractions``), posts the consent form,
    and stops at the first redirect that leaves the provider.
    """
    provider = _origin(authorization_url)
    response = http.get(authorization_url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(12):
        location = response.headers.get("Location")
        if response.is_redirect and location:
            target = urljoin(response.url, location)
            if _origin(target) != provider:
                return target
            response = http.get(target, allow_redirects=False, timeout=TIMEOUT)
            continue
        assert response.status_code == 200, f"{response.status_code} at {response.url}: {response.text[:800]}"
        form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', response.text)
        prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
        assert form and prompt, f"no sign-in or consent form at {response.url}: {response.text[:800]}"
        fields = {"prompt": prompt.group(1)}
        if prompt.group(1) == "login":
            fields.update(login=login, password="any password will do")
        action = urljoin(response.url, html.unescape(form.group(1)))
        response = http.post(action, data=fields, allow_redirects=False, timeout=TIMEOUT)
    raise AssertionError("the provider never redirected back to the client")


def confirm_logout_at_provider(http: requests.Session, logout_url: str) -> str:
    """Open the RP-initiated logout URL, say "Yes, sign me out"; return where the provider sends us."""
    page = http.get(logout_url, allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200, f"{page.status_code}: {page.text[:800]}"
    form = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
    assert form and xsrf, page.text[:800]
    answer = http.post(
        urljoin(page.url, html.unescape(form.group(1))),
        data={"xsrf": xsrf.group(1), "logout": "yes"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert answer.is_redirect, f"{answer.status_code}: {answer.text[:800]}"
    return urljoin(answer.url, answer.headers["Location"])
