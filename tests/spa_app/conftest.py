"""Fixtures and browser actions for the single-page app's tests.

The browser tests click through the SPA as a person would: the SPA's page
(``spa_app`` under gunicorn), the real dev issuer's sign-in page and the
real resource server, all in one headless Chromium.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from selenium.common.exceptions import TimeoutException
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

        Except the chosen flow (``spa_app.mode``: "pkce" or "implicit", kept
        across a reload), which :meth:`remembered_mode` reads.
        """
        stored = json.loads(
            self.driver.execute_script(
                "return JSON.stringify({local: {...localStorage}, session: {...sessionStorage},"
                " cookies: document.cookie})"
            )
        )
        mode = stored["session"].pop(MODE_KEY, None)
        assert mode in (None, "pkce", "implicit"), mode  # a word, never a secret
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
