"""Fixtures and browser actions for the single-page app's tests.

The browser tests click through the SPA as a person would: the SPA's page
(``spa_app`` under gunicorn), the real dev issuer's sign-in page and the
real resource server, all in one headless Chromium.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from common.config import load_settings
from tests.support import gunicorn

WAIT = 20

#: The sessionStorage key of the chosen flow (spa_app/static/js/app.js).
MODE_KEY = "spa_app.mode"


@pytest.fixture(scope="session")
def settings(suite_env):
    """The settings every process of the test session shares."""
    return load_settings(suite_env)


@pytest.fixture
def spa(browser, spa_app, dev_issuer, resource_server, settings):
    """A :class:`SpaActions` on a clean browser, the whole stack running."""
    return SpaActions(browser, settings)


class SpaActions:
    """What a person does with the SPA, and what a test reads back from it."""

    def __init__(self, driver, settings, base_url=None):
        self.driver = driver
        self.settings = settings
        self.base_url = base_url or settings.spa_base_url

    # -- waiting --------------------------------------------------------------------

    def wait(self, condition, timeout=WAIT):
        try:
            return WebDriverWait(self.driver, timeout).until(condition)
        except TimeoutException:
            # Say where the browser was stuck: far more useful than a bare timeout.
            body = self.driver.execute_script("return document.body ? document.body.innerText : ''")[:1500]
            raise AssertionError(f"timed out at {self.driver.current_url}\n{body}") from None

    def visible(self, element_id, timeout=WAIT):
        return self.wait(EC.visibility_of_element_located((By.ID, element_id)), timeout)

    def wait_ready(self):
        """Wait until app.js has finished starting up (and any callback)."""
        self.wait(
            lambda d: d.execute_script("return document.body && document.body.dataset.ready === 'true'")
        )

    # -- actions ------------------------------------------------------------------------

    def open(self, path="/"):
        self.driver.get(self.base_url + path)
        self.wait_ready()

    def choose_mode(self, mode):
        self.driver.find_element(By.ID, f"mode-{mode}").click()
        assert self.driver.find_element(By.ID, f"mode-{mode}").is_selected()

    def start_sign_in(self):
        """Click "Sign in" and wait for the issuer's sign-in form."""
        self.driver.find_element(By.ID, "sign-in").click()
        self.visible("username")
        assert urlsplit(self.driver.current_url).netloc == urlsplit(self.settings.issuer).netloc

    def submit_credentials(self):
        """Fill in the issuer's sign-in form as the demo user."""
        self.driver.find_element(By.ID, "username").send_keys(self.settings.demo_username)
        self.driver.find_element(By.ID, "password").send_keys(self.settings.demo_password)
        self.driver.find_element(By.ID, "sign-in").click()

    def sign_in(self, mode):
        """The whole sign-in: open, choose the mode, sign in at the issuer, see the profile."""
        self.open()
        self.choose_mode(mode)
        self.start_sign_in()
        self.submit_credentials()
        self.wait_ready_on_spa()
        self.visible("profile")

    def wait_ready_on_spa(self):
        self.wait(
            lambda d: (
                urlsplit(d.current_url).netloc == urlsplit(self.base_url).netloc
                and d.execute_script("return document.body.dataset.ready === 'true'")
            )
        )

    def authorization_request_url(self):
        """The authorization request the browser is at: the URL itself, or the
        sign-in page's ``next`` (issuers show their sign-in form first)."""
        parts = urlsplit(self.driver.current_url)
        query = dict(parse_qsl(parts.query))
        if "state" not in query and "next" in query:
            inner = urlsplit(query["next"])
            return urlunsplit(parts._replace(path=inner.path, query=inner.query))
        return self.driver.current_url

    def authorization_request(self):
        """The parameters of the authorization request the browser is at."""
        query = dict(parse_qsl(urlsplit(self.authorization_request_url()).query))
        assert "state" in query, f"not an authorization request: {self.driver.current_url}"
        return query

    def resubmit_authorization_request(self, **changes):
        """At the issuer: change parameters of the pending authorization request and send it again.

        Simulates an attacker (or a broken issuer) altering the request, so
        that the answer comes back with, e.g., a state or nonce this tab
        did not send.
        """
        parts = urlsplit(self.authorization_request_url())
        query = {**dict(parse_qsl(parts.query)), **changes}
        self.driver.get(urlunsplit(parts._replace(query=urlencode(query))))
        self.visible("username")
        return query

    # -- reading back ---------------------------------------------------------------------

    def error_code(self):
        self.visible("spa-error")
        return self.driver.find_element(By.ID, "spa-error-code").text

    def storage(self):
        """Everything this origin keeps in the browser besides memory.

        Except the chosen flow (``spa_app.mode``: "bff", "pkce" or "implicit", kept
        across a reload), which :meth:`remembered_mode` reads.
        """
        stored = json.loads(
            self.driver.execute_script(
                "return JSON.stringify({local: {...localStorage}, session: {...sessionStorage},"
                " cookies: document.cookie})"
            )
        )
        mode = stored["session"].pop(MODE_KEY, None)
        assert mode in (None, "bff", "pkce", "implicit"), mode  # a word, never a secret
        return stored

    def remembered_mode(self):
        """The flow the page keeps across a reload (sessionStorage), or None."""
        return self.driver.execute_script(f"return sessionStorage.getItem('{MODE_KEY}')")

    def open_inspector(self):
        """Unfold the flow inspector (it starts folded), as a person clicks its title."""
        self.driver.execute_script("document.getElementById('inspector-details').open = true")

    def assert_no_tokens(self):
        """No token anywhere: not on screen as a profile, not in any storage."""
        assert not self.driver.find_element(By.ID, "signed-in").is_displayed()
        assert self.driver.find_element(By.ID, "signed-out").is_displayed()
        stored = self.storage()
        assert stored["local"] == {}
        assert stored["cookies"] == ""
        # sessionStorage may hold nothing but a *pending* request's transient values.
        for key, value in stored["session"].items():
            assert key == "spa_app.pending_authorization", key
            assert "eyJ" not in value and "access_token" not in value

    def inspector_steps(self):
        """[(title, text)] of the inspector's steps, read in one go (the list re-renders)."""
        self.open_inspector()
        return [
            tuple(step)
            for step in self.driver.execute_script(
                "return Array.from(document.querySelectorAll('#inspector > li'),"
                " li => [li.querySelector('h3').textContent, li.innerText])"
            )
        ]

    def inspector_titles(self):
        return [title for title, _ in self.inspector_steps()]

    def screenshot(self, path):
        """The page from the top to a little past the API result (profile, API
        answer and the first steps of the flow inspector), for the README."""
        import base64

        self.driver.execute_script("window.scrollTo(0, 0)")
        bottom = self.driver.execute_script(
            "const r = document.getElementById('api-result').getBoundingClientRect();"
            "return Math.min(document.documentElement.scrollHeight, r.bottom + window.scrollY + 520);"
        )
        width = self.driver.execute_script("return document.documentElement.clientWidth")
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": bottom, "scale": 1},
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def short_lived_stack(redis_server, tmp_path_factory):
    """A second issuer, API and SPA whose access tokens live 3 seconds.

    For what only time shows: the SPA renewing its tokens by itself with
    the rotating refresh token, and the API refusing an expired token.
    Its own Redis database, so it shares nothing with the main stack.
    """
    from tests.support import free_port

    ports = {name: free_port() for name in ("issuer", "api", "spa")}
    env = {
        "ISSUER": f"http://127.0.0.1:{ports['issuer']}/oauth2/default",
        "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/3",
        "SPA_BASE_URL": f"http://localhost:{ports['spa']}",
        "API_URL": f"http://127.0.0.1:{ports['api']}",
        "DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "3",
        "CLOCK_LEEWAY": "0",
    }
    services = []
    try:
        services.append(
            gunicorn(
                "dev_issuer-short",
                "dev_issuer:create_app()",
                env,
                ports["issuer"],
                workers=2,
                health_path="/oauth2/default/.well-known/openid-configuration",
            ).start()
        )
        services.append(
            gunicorn(
                "resource_server-short",
                "resource_server:create_app()",
                env,
                ports["api"],
                workers=1,
                health_path="/healthz",
            ).start()
        )
        services.append(
            gunicorn(
                "spa_app-short", "spa_app:create_app()", env, ports["spa"], workers=1, health_path="/healthz"
            ).start()
        )
        yield load_settings(env)
    finally:
        for service in reversed(services):
            service.stop()


# -- the Backend-for-Frontend mode: a browser whose network traffic the test reads ---------------

#: A JWT (RFC 7519 §3): three base64url segments, the first a JSON object ("eyJ" is '{"').
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@pytest.fixture(scope="session")
def _chromium_with_network_log(tmp_path_factory):
    """A headless Chromium of its own whose DevTools network events the test can read.

    ChromeDriver's performance log (``goog:loggingPrefs``) carries the
    DevTools protocol's ``Network.*`` events, which must be asked for when
    the browser starts; the shared browser of ``tests/conftest.py`` does not.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-network-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=ChromeService("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def network_browser(_chromium_with_network_log):
    """That browser on a fresh tab, every cookie and storage cleared, recording network traffic."""
    driver = _chromium_with_network_log
    old_handles = driver.window_handles
    driver.switch_to.new_window("tab")
    for handle in old_handles:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"})
    # Bodies kept outside the page's renderer, so that they survive the
    # cross-site navigations of a sign-in (to the issuer and back).
    driver.execute_cdp_cmd(
        "Network.configureDurableMessages",
        {"maxTotalBufferSize": 100_000_000, "maxResourceBufferSize": 10_000_000},
    )
    driver.execute_cdp_cmd("Network.enable", {})
    driver.get("about:blank")
    driver.get_log("performance")  # what earlier tabs left in the log
    driver.get_log("browser")
    yield driver
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


class NetworkLog:
    """Every response the browser received, read through the DevTools protocol.

    :meth:`collect` drains ChromeDriver's performance log and fetches the
    body of each finished response (``Network.getResponseBody``); headers
    come with ``Network.responseReceived`` and, for redirects, with the
    next ``Network.requestWillBeSent`` (``redirectResponse``).
    """

    def __init__(self, driver):
        self.driver = driver
        self.responses: dict[str, dict] = {}  # requestId -> {url, status, headers, type}
        self.redirects: list[dict] = []  # {url, status, headers}
        self.bodies: dict[str, str] = {}  # requestId -> body text
        self.unread: dict[str, str] = {}  # requestId -> why its body could not be read

    def collect(self) -> "NetworkLog":
        finished = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.responseReceived":
                response = params["response"]
                self.responses[params["requestId"]] = {
                    "url": response["url"],
                    "status": response["status"],
                    "headers": response.get("headers", {}),
                    "type": params.get("type"),
                }
            elif method == "Network.requestWillBeSent" and params.get("redirectResponse"):
                redirect = params["redirectResponse"]
                self.redirects.append(
                    {
                        "url": redirect["url"],
                        "status": redirect["status"],
                        "headers": redirect.get("headers", {}),
                    }
                )
            elif method == "Network.loadingFinished":
                finished.append(params["requestId"])
        for request_id in finished:
            if request_id in self.bodies:
                continue
            try:
                answer = self.driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})
            except WebDriverException as error:
                self.unread[request_id] = error.msg
                continue
            body = answer["body"]
            if answer.get("base64Encoded"):
                body = base64.b64decode(body).decode("latin-1")
            self.bodies[request_id] = body
        return self

    def urls(self) -> list[str]:
        return [r["url"] for r in self.responses.values()]

    def body_of(self, path: str) -> list[str]:
        """The bodies of every response whose URL's path is ``path``."""
        return [
            self.bodies[rid]
            for rid, r in self.responses.items()
            if urlsplit(r["url"]).path == path and rid in self.bodies
        ]

    def jwt_shaped(self) -> list[tuple[str, str]]:
        """(where, value) of every JWT-shaped value in a response body or header."""
        found = []
        for rid, body in self.bodies.items():
            url = self.responses.get(rid, {}).get("url", rid)
            found += [(f"body of {url}", m) for m in JWT_SHAPE.findall(body)]
        for response in [*self.responses.values(), *self.redirects]:
            for name, value in response["headers"].items():
                found += [(f"{name} of {response['url']}", m) for m in JWT_SHAPE.findall(str(value))]
        return found
