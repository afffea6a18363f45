"""The hostile-issuer layer: every client app against a misbehaving OpenID Provider.

One scriptable test issuer (``tests/fake_issuer.py``: real HTTP on a free
loopback port, its own keys) is shared by a module's tests and put back to
its compliant defaults before each test.  Each app is driven the way a
person (or a shell script) drives it, through one small *driver* with the
same interface:

* ``web_app`` — the app in-process (Flask's test client) with its sessions
  in a private database of the real ``redis_server``; the browser's part (the
  redirect to the issuer and back) is done with ``requests``;
* ``native_sim`` — ``python -m native_sim login --no-browser`` as a real
  subprocess; the printed authorization URL is followed with ``requests``
  and the issuer's redirect delivered to the real loopback listener;
* ``service_app`` — ``python -m service_app call`` as a real subprocess;
* ``spa_app`` — the SPA under gunicorn, clicked in the shared Chromium.

``API_URL`` points at the test issuer's counting ``api`` endpoint, so
``issuer.count("api")`` says whether any app called the API.

``driver.sign_in()`` returns an :class:`Outcome`: whether the sign-in
succeeded, the error code and text the user saw, and whether any token was
kept anywhere (Redis session, token file, the SPA's memory or storage).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import redis
import requests

from common.session import load_stored_session
from tests.fake_issuer import FakeIssuer
from tests.security.fault_fixtures import fault_suite  # noqa: F401 (a fixture of test_faults.py)
from tests.support import ROOT, free_port, gunicorn

#: A description that tries to run script wherever it is shown.
PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

#: The Redis database the in-process web app keeps its sessions in (its own,
#: so that "no key holds a token" speaks about this app only).
WEB_REDIS_DB = 7
BFF_REDIS_DB = 8

NATIVE_CLIENT_ID = "public-client"  # registered at the test issuer without a secret
SPA_CLIENT_ID = "public-client"


@dataclass
class Outcome:
    """What one sign-in (or service call) ended with."""

    ok: bool
    error: str | None  # the error code shown (None on success)
    text: str  # everything the user saw: page text, terminal output
    stored: bool  # a token was kept somewhere
    raw: str = ""  # the raw page (HTML) or output, for escaping checks


# -- the shared issuer ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_issuer_server():
    """One test issuer per module (the SPA under gunicorn must know its address)."""
    issuer = FakeIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def issuer(hostile_issuer_server):
    """The module's test issuer, compliant and with zeroed counters at the start of each test."""
    hostile_issuer_server.restore()
    yield hostile_issuer_server
    hostile_issuer_server.restore()


# -- web_app --------------------------------------------------------------------------


class WebAppDriver:
    """The web app in-process against the test issuer, sessions in real Redis."""

    name = "web_app"
    login_path = "/login"
    landing_path = "/profile"
    key_prefix = b"web_app:session:"

    def __init__(self, issuer: FakeIssuer, redis_url: str):
        from tests.web_app.conftest import make_client
        from web_app import create_app

        self.issuer = issuer
        self.client_id = issuer.client_id
        self.app = create_app(
            {
                "ISSUER": issuer.issuer,
                "REDIS_URL": redis_url,
                "WEB_BASE_URL": "http://localhost:5001",
                "WEB_CLIENT_ID": issuer.client_id,
                "WEB_CLIENT_SECRET": issuer.client_secret,
                "API_URL": issuer.base_url,
                "HTTP_TIMEOUT": "1",
                "TESTING": True,
            }
        )
        self.make_client = lambda: make_client(self.app)
        self.client = self.make_client()
        self.redis = redis.Redis.from_url(redis_url)
        self.redis.flushdb()

    def start(self, client=None) -> tuple[object, str | None]:
        """``GET /login``: ``(response, authorization URL or None)``."""
        response = (client or self.client).get(self.login_path)
        return response, response.headers.get("Location") if response.status_code == 302 else None

    def at_issuer(self, authorization_url: str) -> str:
        """Follow the authorization URL as the browser would; the callback path and query."""
        response = requests.get(authorization_url, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text
        parts = urlsplit(response.headers["Location"])
        return f"{parts.path}?{parts.query}"

    def callback(self, path_and_query: str, client=None) -> Outcome:
        return self.outcome((client or self.client).get(path_and_query), client)

    def sign_in(self) -> Outcome:
        response, authorization_url = self.start()
        if authorization_url is None:
            return self.outcome(response)
        return self.callback(self.at_issuer(authorization_url))

    def outcome(self, response, client=None) -> Outcome:
        from tests.web_app.conftest import element_text

        html = response.get_data(as_text=True)
        ok = response.status_code == 302 and urlsplit(response.headers["Location"]).path == self.landing_path
        error = None if ok else element_text(html, "error-code")
        text = " ".join(
            filter(None, [element_text(html, "error-description"), element_text(html, "error-hint")])
        )
        return Outcome(ok, error, text, self.tokens_stored(client), html)

    def tokens_stored(self, client=None) -> bool:
        """Does the browser's session hold tokens?  Without ``client`` (the only browser of
        the test): does *any* key in the app's Redis database hold a token?"""
        if client is None:
            secrets = [t for t in (*self.issuer.access_tokens, *self.issuer.issued_id_tokens)]
            for key in self.redis.scan_iter():
                value = self.redis.get(key) or b""
                if key.startswith(self.key_prefix):
                    # Sessions are stored compressed: look inside.
                    value = json.dumps(load_stored_session(value)).encode()
                if b'"tokens"' in value or any(s.encode() in value for s in secrets):
                    return True
        cookie = (client or self.client).get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        if cookie is not None:
            return "tokens" in load_stored_session(self.redis.get(self.key_prefix + cookie.value.encode()))
        return False


@pytest.fixture
def web_driver(issuer, redis_server):
    return WebAppDriver(issuer, redis_server.url.rsplit("/", 1)[0] + f"/{WEB_REDIS_DB}")


class BffDriver(WebAppDriver):
    """The SPA's backend for frontend in-process against the test issuer, driven like the web app.

    The same confidential client at the test issuer; the sign-in starts at
    ``/bff/login`` and ends on the SPA's page in BFF mode.
    """

    name = "spa_bff"
    login_path = "/bff/login"
    landing_path = "/"
    key_prefix = b"spa_app:session:"

    def __init__(self, issuer: FakeIssuer, redis_url: str, *, api_url: str | None = None):
        from spa_app import create_app

        self.issuer = issuer
        self.client_id = issuer.client_id
        self.app = create_app(
            {
                "ISSUER": issuer.issuer,
                "REDIS_URL": redis_url,
                "SPA_BASE_URL": "http://localhost:5002",
                "SPA_BFF_CLIENT_ID": issuer.client_id,
                "SPA_BFF_CLIENT_SECRET": issuer.client_secret,
                "API_URL": api_url or issuer.base_url,
                "HTTP_TIMEOUT": "1",
                "TESTING": True,
            }
        )
        self.make_client = self._new_client
        self.client = self.make_client()
        self.redis = redis.Redis.from_url(redis_url)
        self.redis.flushdb()

    def _new_client(self):
        """A browser of its own: Flask's test client addressing the app as ``SPA_BASE_URL``."""
        from flask.testing import FlaskClient

        class SpaBaseUrlClient(FlaskClient):
            def open(self, *args, **kwargs):
                kwargs.setdefault("base_url", "http://localhost:5002")
                return super().open(*args, **kwargs)

        self.app.test_client_class = SpaBaseUrlClient
        return self.app.test_client()


@pytest.fixture
def bff_driver(issuer, redis_server):
    return BffDriver(issuer, redis_server.url.rsplit("/", 1)[0] + f"/{BFF_REDIS_DB}")


# -- native_sim ---------------------------------------------------------------------------


class NativeDriver:
    """``python -m native_sim login --no-browser`` against the test issuer."""

    name = "native_sim"

    def __init__(self, issuer: FakeIssuer, token_dir: Path):
        self.issuer = issuer
        self.client_id = NATIVE_CLIENT_ID
        self.token_dir = token_dir
        self.env = {
            "ISSUER": issuer.issuer,
            "NATIVE_CLIENT_ID": NATIVE_CLIENT_ID,
            "NATIVE_REDIRECT_PORT": "0",
            "NATIVE_TOKEN_DIR": str(token_dir),
            "XDG_CONFIG_HOME": str(token_dir.parent / "xdg-config"),
            "API_URL": issuer.base_url,
            "HTTP_TIMEOUT": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.runs = []
        self.loopback_page = ""

    def start(self, *extra: str):
        from tests.native_sim.conftest import LoginRun, cli_env

        run = LoginRun(cli_env({}, self.token_dir, **self.env), *extra)
        self.runs.append(run)
        return run

    def sign_in(self, wait: float = 3) -> Outcome:
        """The whole sign-in; ``wait`` bounds how long the CLI waits for a callback it accepts."""
        run = self.start("--timeout", str(wait))
        try:
            authorization_url = run.authorization_url(timeout=15)
        except AssertionError:
            return self.finish(run)  # it failed before it printed a URL (discovery)
        response = requests.get(authorization_url, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text
        # The issuer's redirect, delivered to the loopback listener as the browser would.
        page = requests.get(response.headers["Location"], allow_redirects=False, timeout=10)
        self.loopback_page = page.text
        return self.finish(run)

    def finish(self, run) -> Outcome:
        code, out, err = run.finish(timeout=30)
        error = None
        if code != 0:
            # "native_sim: <error code>: <description> <hint>" (or a sentence, for its own errors)
            lines = [
                ln[len("native_sim: ") :]
                for ln in err.splitlines()
                if ln.startswith("native_sim: ") and not ln.startswith("native_sim: warning:")
            ]
            first = lines[-1].split(":")[0] if lines else ""
            error = first if re.fullmatch(r"[a-z_]+", first) else f"exit {code}"
        return Outcome(
            code == 0, error, out + "\n" + err, self.tokens_stored(), out + err + self.loopback_page
        )

    def tokens_stored(self) -> bool:
        return self.token_dir.exists() and any(p.is_file() for p in self.token_dir.rglob("*"))

    def stop(self):
        for run in self.runs:
            run.stop()


@pytest.fixture
def native_driver(issuer, tmp_path):
    driver = NativeDriver(issuer, tmp_path / "native-tokens")
    yield driver
    driver.stop()


# -- service_app ------------------------------------------------------------------------------


class ServiceDriver:
    """``python -m service_app call`` against the test issuer (Client Credentials)."""

    name = "service_app"

    def __init__(self, issuer: FakeIssuer):
        self.issuer = issuer
        self.client_id = issuer.client_id
        self.env = {
            "ISSUER": issuer.issuer,
            "SERVICE_CLIENT_ID": issuer.client_id,
            "SERVICE_CLIENT_SECRET": issuer.client_secret,
            "SERVICE_PRIVATE_KEY": "",
            "API_URL": issuer.base_url,
            "HTTP_TIMEOUT": "1",
        }

    def sign_in(self) -> Outcome:
        import os

        result = subprocess.run(
            [sys.executable, "-m", "service_app", "call"],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        error = None
        if result.returncode != 0:
            line = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
            error = line[-1].split(":")[1].strip() if line else f"exit {result.returncode}"
        # The token lives in the process's memory only, and the process has ended.
        return Outcome(
            result.returncode == 0, error, result.stdout + result.stderr, False, result.stdout + result.stderr
        )


@pytest.fixture
def service_driver(issuer):
    return ServiceDriver(issuer)


# -- spa_app ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spa_against_issuer(hostile_issuer_server, redis_server):
    """The SPA's server under gunicorn, configured for the module's test issuer."""
    port = free_port()
    base = f"http://localhost:{port}"
    env = {
        "ISSUER": hostile_issuer_server.issuer,
        "SPA_BASE_URL": base,
        "SPA_CLIENT_ID": SPA_CLIENT_ID,
        "API_URL": hostile_issuer_server.base_url,
        "REDIS_URL": redis_server.url,
        "HTTP_TIMEOUT": "2",
    }
    service = gunicorn(
        "spa_app-hostile", "spa_app:create_app()", env, port, workers=2, health_path="/healthz"
    ).start()
    hostile_issuer_server.cors_origins.add(base)  # the SPA reads discovery, JWKS and tokens by fetch()
    yield base
    service.stop()


class SpaDriver:
    """The SPA in Chromium: click "Sign in", let the issuer redirect back, read the page."""

    name = "spa_app"

    def __init__(self, issuer: FakeIssuer, browser, base_url: str):
        from tests.spa_app.conftest import SpaActions

        self.issuer = issuer
        self.client_id = SPA_CLIENT_ID
        self.base_url = base_url
        self.spa = SpaActions(browser, settings=None, base_url=base_url)
        self.driver = browser

    def open(self, mode: str = "pkce"):
        self.spa.open("/")
        self.spa.choose_mode(mode)

    def sign_in(self, mode: str = "pkce") -> Outcome:
        from selenium.webdriver.common.by import By

        self.open(mode)
        self.driver.execute_script("window.__before = true")
        self.driver.find_element(By.ID, "sign-in").click()
        return self.settle()

    def settle(self) -> Outcome:
        """Wait for the page that the click (or a navigation) led to, and read it."""
        from selenium.webdriver.common.by import By

        def settled(d):
            return d.execute_script(
                "return document.body && document.body.dataset.ready === 'true' && "
                "(window.__before !== true || !document.getElementById('spa-error').hidden) && "
                "(!document.getElementById('spa-error').hidden"
                " || !document.getElementById('signed-in').hidden)"
            )

        self.spa.wait(settled)
        error_box = self.driver.find_element(By.ID, "spa-error")
        error = self.driver.find_element(By.ID, "spa-error-code").text if error_box.is_displayed() else None
        text = error_box.text if error else ""
        ok = error is None and self.driver.find_element(By.ID, "signed-in").is_displayed()
        return Outcome(ok, error, text, self.tokens_stored(), self.driver.page_source)

    def tokens_stored(self) -> bool:
        from selenium.webdriver.common.by import By

        if self.driver.find_element(By.ID, "signed-in").is_displayed():
            return True  # tokens in memory: the profile is shown
        stored = self.spa.storage()
        blob = json.dumps(stored)
        return bool(stored["local"]) or stored["cookies"] != "" or "eyJ" in blob or "access_token" in blob


@pytest.fixture
def spa_driver(issuer, browser, spa_against_issuer):
    return SpaDriver(issuer, browser, spa_against_issuer)


# -- parametrisation helper ------------------------------------------------------------------------


@pytest.fixture
def driver(request):
    """The driver named by the test's ``app`` parameter."""
    return request.getfixturevalue(f"{request.param}_driver")


def callback_params(location: str) -> dict:
    """The query parameters of a URL (an authorization request or a callback)."""
    return dict(parse_qsl(urlsplit(location).query))
