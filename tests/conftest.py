"""Fixtures that start the real parts of the suite on free loopback ports.

Nothing here is a stand-in: Redis is a real ``redis-server``, the issuer
and the apps run under gunicorn with several workers and talk over HTTP.
Each fixture stops what it started by PID.

``suite_env`` is the one environment every process of a test session
shares, exactly as ``make run`` shares one ``.env``: the issuer registers
its clients from the same variables the apps read.
"""

from __future__ import annotations

import os

import pytest

from common.config import DEFAULTS
from tests.support import RedisServer, free_port, gunicorn

# Tests never read the developer's .env or environment by accident: every
# contract variable is set to its development default in this process's
# environment (which beats .env in common/config.py and is inherited by
# every process a fixture starts); fixtures then override what they need
# through ``suite_env`` and ``test_config``.
os.environ.update(DEFAULTS)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real Redis server for the whole test session."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ports():
    """One free port per component."""
    return {name: free_port() for name in ("issuer", "web", "spa", "native", "service", "api")}


@pytest.fixture(scope="session")
def suite_env(redis_server, ports):
    """The environment (contract variables) shared by every process.

    The issuer is addressed as ``127.0.0.1`` and the apps as ``localhost``,
    so that, as in production, issuer and apps are different sites for the
    browser and never share cookies.
    """
    return {
        "ISSUER": f"http://127.0.0.1:{ports['issuer']}/oauth2/default",
        "REDIS_URL": redis_server.url,
        "WEB_BASE_URL": f"http://localhost:{ports['web']}",
        "SPA_BASE_URL": f"http://localhost:{ports['spa']}",
        "NATIVE_REDIRECT_PORT": str(ports["native"]),
        "SERVICE_BASE_URL": f"http://localhost:{ports['service']}",
        "API_URL": f"http://127.0.0.1:{ports['api']}",
        "TRUSTED_MODE": "true",
        # More users for tests that sign several people in at once.
        "DEV_ISSUER_EXTRA_USERS": ",".join(f"user{i}@example.test:Dev-Only-Pass-{i}" for i in range(5)),
    }


@pytest.fixture(scope="session")
def dev_issuer(suite_env, ports):
    """The development issuer under gunicorn with two workers."""
    service = gunicorn(
        "dev_issuer",
        "dev_issuer:create_app()",
        suite_env,
        ports["issuer"],
        workers=2,
        health_path="/oauth2/default/.well-known/openid-configuration",
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def issuer_url(dev_issuer, suite_env):
    """The configured issuer identifier of the running dev issuer."""
    return suite_env["ISSUER"]


@pytest.fixture(scope="session")
def resource_server(suite_env, ports, dev_issuer):
    """The resource server (API) under gunicorn."""
    service = gunicorn(
        "resource_server",
        "resource_server:create_app()",
        suite_env,
        ports["api"],
        workers=2,
        health_path="/healthz",
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def web_app(suite_env, ports, dev_issuer, resource_server):
    """The server-side web app under gunicorn with four workers."""
    service = gunicorn(
        "web_app", "web_app:create_app()", suite_env, ports["web"], workers=4, health_path="/healthz"
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def spa_app(suite_env, ports, dev_issuer, resource_server):
    """The single-page app's server (static files and settings) under gunicorn."""
    service = gunicorn(
        "spa_app", "spa_app:create_app()", suite_env, ports["spa"], workers=2, health_path="/healthz"
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def service_app(suite_env, ports, dev_issuer, resource_server):
    """The service app's status page under gunicorn."""
    service = gunicorn(
        "service_app",
        "service_app:create_app()",
        suite_env,
        ports["service"],
        workers=2,
        health_path="/healthz",
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def _chromium_session(tmp_path_factory):
    """One headless Chromium for the test session (starting one costs seconds)."""
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
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_chromium_session):
    """The shared Chromium, with every cookie and storage cleared before each test.

    ``Network.clearBrowserCookies`` clears the cookies of every site (the
    issuer's as well as the apps'), which Selenium's ``delete_all_cookies``
    would do only for the page currently open.
    """
    driver = _chromium_session
    # A fresh tab per test, the previous ones closed: nothing a test's page
    # left running (timers, held requests, extra tabs) reaches the next test.
    old_handles = driver.window_handles
    driver.switch_to.new_window("tab")
    for handle in old_handles:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"})
    driver.get("about:blank")
    yield driver
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


@pytest.fixture
def fake_issuer():
    """A scriptable OpenID Provider on a free loopback port (``tests/fake_issuer.py``).

    Real HTTP, its own keys; each test scripts the answers it needs
    (errors, hangs, hostile tokens) and reads ``fake_issuer.counts``.
    """
    from tests.fake_issuer import FakeIssuer

    issuer = FakeIssuer().start()
    yield issuer
    issuer.stop()
