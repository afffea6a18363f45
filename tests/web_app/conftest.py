"""Fixtures for the web app: the app in-process, and a second, private suite.

``app`` / ``client`` build the web app in-process (Flask's test client)
against the scriptable test issuer and the real Redis: fast, and able to
make the issuer misbehave.  The integration tests use the real dev issuer.

``short_suite`` is a private Redis + dev issuer + resource server + web app
whose access tokens live two seconds, for the tests that refresh tokens,
restart the web app or pause Redis without disturbing anybody else.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient

from tests.issuer_helpers import sign_in_and_get_redirect
from tests.support import RedisServer, WebStack

# -- helpers ----------------------------------------------------------------------


def extra_users(env: dict) -> list[tuple[str, str]]:
    """The (username, password) pairs of ``DEV_ISSUER_EXTRA_USERS``."""
    pairs = [item.split(":", 1) for item in env.get("DEV_ISSUER_EXTRA_USERS", "").split(",") if item]
    return [(user, password) for user, password in pairs]


def demo_user(env: dict) -> tuple[str, str]:
    """The seeded demo user (``DEMO_USERNAME`` / ``DEMO_PASSWORD`` defaults)."""
    from common.config import load_settings

    settings = load_settings(env)
    return settings.demo_username, settings.demo_password


def start_sign_in(http: requests.Session, web_base_url: str, next_path: str | None = None) -> str:
    """``GET /login`` on the web app; return the authorization URL it redirects to."""
    response = http.get(
        web_base_url + "/login", params={"next": next_path} if next_path else None, allow_redirects=False
    )
    assert response.status_code == 302, response.text[:2000]
    return response.headers["Location"]


def at_issuer(http: requests.Session, authorization_url: str, username: str, password: str) -> str:
    """Sign in at the issuer's form; return the redirect to the web app's callback."""
    location = sign_in_and_get_redirect(http, authorization_url, username, password)
    assert urlsplit(location).path == "/authorization-code/callback", location
    return location


def sign_in(
    http: requests.Session, web_base_url: str, username: str, password: str, next_path: str | None = None
) -> requests.Response:
    """Sign in through the real issuer as a browser would; return the landing page.

    ``GET /login`` on the web app, the issuer's sign-in form, then the
    callback, following redirects to wherever the web app sends us.
    """
    authorization_url = start_sign_in(http, web_base_url, next_path)
    return http.get(at_issuer(http, authorization_url, username, password))


def element_text(html: str, element_id: str) -> str | None:
    """The text inside the element with ``id`` (first tag level only), or ``None``."""
    match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', html, re.S)
    return unescape(re.sub(r"<[^>]+>", "", match.group(2))).strip() if match else None


def form_csrf(html: str) -> str:
    """The anti-CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token on the page"
    return match.group(1)


# -- in-process app ------------------------------------------------------------------


@pytest.fixture
def app(suite_env, fake_issuer):
    """The web app built in-process against the scriptable test issuer and the real Redis.

    The test issuer (``tests/fake_issuer.py``) is compliant unless a test
    scripts it otherwise, so these tests hold for any compliant issuer.
    """
    from web_app import create_app

    return create_app(
        {
            **suite_env,
            "ISSUER": fake_issuer.issuer,
            "WEB_CLIENT_ID": fake_issuer.client_id,
            "WEB_CLIENT_SECRET": fake_issuer.client_secret,
            "API_URL": fake_issuer.base_url,  # its counting /api/messages stands in for the API
            "HTTP_TIMEOUT": "2",
            "TESTING": True,
        }
    )


class BaseUrlClient(FlaskClient):
    """Flask's test client, addressing the app by its configured ``WEB_BASE_URL``.

    (The plain client says ``Host: localhost``, which the app rightly
    redirects to its configured host before a sign-in.)
    """

    def open(self, *args, **kwargs):
        if args and isinstance(args[0], str):
            kwargs.setdefault("base_url", self.application.config["SETTINGS"].web_base_url)
        return super().open(*args, **kwargs)


def make_client(app) -> BaseUrlClient:
    """A :class:`BaseUrlClient` for ``app``."""
    app.test_client_class = BaseUrlClient
    return app.test_client()


@pytest.fixture
def client(app):
    """A test client that addresses the app by its configured host (``WEB_BASE_URL``)."""
    return make_client(app)


# -- a private suite with short-lived access tokens -------------------------------------


@pytest.fixture(scope="module")
def short_suite(tmp_path_factory):
    """A private suite whose access tokens expire after two seconds, so every
    API call needs a refresh."""
    directory = tmp_path_factory.mktemp("short-suite")
    suite = WebStack(
        "short",
        RedisServer(directory / "redis"),
        {"DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "2", "CLOCK_LEEWAY": "0"},
    ).start()
    yield suite
    suite.stop()
