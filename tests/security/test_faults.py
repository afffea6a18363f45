"""Faults: Redis stopped, the issuer stopped mid sign-in, a worker killed, two tabs, double clicks.

Each test runs against ``fault_suite`` (``tests/security/fault_fixtures.py``):
real processes of its own, so that stopping and killing them disturbs
nobody else.  The property every test holds the apps to: a fault gives a
clear page (never a 500, never a stack trace), and nobody who was signed
in loses their sign-in because of it.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
import redis
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.security.fault_fixtures import signed_in_users, worker_pids
from tests.support import THREADS
from tests.web_app.conftest import at_issuer, element_text, form_csrf, sign_in, start_sign_in

COOKIE = "web_app_session"


def assert_clear_error_page(response: requests.Response, statuses: set[int]) -> str:
    """The shared error page, with one of ``statuses``; return its error code."""
    assert response.status_code in statuses, (response.status_code, response.text[:1000])
    assert "Traceback" not in response.text
    code = element_text(response.text, "error-code")
    assert code and code != "server_error", response.text[:1000]
    assert 'id="try-again"' in response.text
    return code


def profile_of(http: requests.Session, suite, username: str) -> requests.Response:
    """GET /profile and check it shows ``username``'s own claims."""
    page = http.get(suite.web_base_url + "/profile", allow_redirects=False, timeout=10)
    assert page.status_code == 200, (username, page.status_code, page.text[:500])
    assert username in element_text(page.text, "claims")
    return page


# -- Redis stopped --------------------------------------------------------------------


def test_redis_stopped_gives_503_and_the_same_users_continue_when_it_is_back(fault_suite):
    suite = fault_suite
    browsers = signed_in_users(suite, 3)
    cookies = [http.cookies.get(COOKIE) for http, _ in browsers]

    suite.redis.stop()  # SIGTERM: Redis shuts down (its append-only file is on disk)
    try:
        for http, _ in browsers:
            page = http.get(suite.web_base_url + "/profile", allow_redirects=False, timeout=15)
            assert assert_clear_error_page(page, {503}) == "temporarily_unavailable"
            assert page.headers["Retry-After"]
            # The app does not tell the browser to drop its session cookie.
            assert COOKIE not in page.headers.get("Set-Cookie", "")
            api = http.post(suite.web_base_url + "/call-api", data={"csrf_token": "x"}, timeout=15)
            assert_clear_error_page(api, {503})
            login = http.get(suite.web_base_url + "/login", allow_redirects=False, timeout=15)
            assert_clear_error_page(login, {503})
            # The health probe and the stylesheet need no Redis, cookie or not.
            health = http.get(suite.web_base_url + "/healthz", timeout=15)
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert http.get(suite.web_base_url + "/_common/static/style.css", timeout=15).status_code == 200
    finally:
        suite.redis.start()  # same port, same directory: the data comes back

    for (http, username), cookie in zip(browsers, cookies, strict=False):
        page = profile_of(http, suite, username)
        assert http.cookies.get(COOKIE) == cookie
        # And the sign-in still works end to end: a refresh at the issuer and the API call.
        answer = http.post(
            suite.web_base_url + "/call-api", data={"csrf_token": form_csrf(page.text)}, timeout=15
        )
        assert element_text(answer.text, "api-status") == "HTTP 200", answer.text[:1000]


def test_redis_paused_mid_request_never_gives_a_500(fault_suite):
    """A Redis that hangs (SIGSTOP) instead of refusing: the socket timeout gives the 503."""
    suite = fault_suite
    ((http, username),) = signed_in_users(suite, 1)
    os.kill(suite.redis.proc.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            pages = list(
                pool.map(
                    lambda _: http.get(suite.web_base_url + "/profile", allow_redirects=False, timeout=20),
                    range(4),
                )
            )
    finally:
        os.kill(suite.redis.proc.pid, signal.SIGCONT)
    for page in pages:
        assert_clear_error_page(page, {503})
    profile_of(http, suite, username)


# -- the issuer stopped during a sign-in -------------------------------------------------


def test_issuer_stopped_during_sign_in_gives_a_clear_error_then_success(fault_suite):
    suite = fault_suite
    username, password = suite.users[3]
    http = requests.Session()
    callback = at_issuer(http, start_sign_in(http, suite.web_base_url), username, password)

    # The user has signed in at the issuer and is on the way back with a
    # code, and the issuer goes away before we can redeem it.
    suite.issuer.stop()
    try:
        page = http.get(callback, allow_redirects=False, timeout=20)
        code = assert_clear_error_page(page, {502, 503, 504})
        assert code == "issuer_unreachable"
        # No half-made session: still signed out.
        assert http.get(suite.web_base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302
        # Starting again while the issuer is down: either the redirect to the
        # issuer (a worker that still has its discovery document cached) or
        # the same clear error; never a 500.
        again = http.get(suite.web_base_url + "/login", allow_redirects=False, timeout=20)
        if again.status_code == 302:
            assert again.headers["Location"].startswith(suite.env["ISSUER"])
        else:
            assert_clear_error_page(again, {502, 503, 504})
        retry_url = urljoin(page.url, _try_again_href(page.text))
    finally:
        suite.issuer.start()

    # The issuer is back: "Try again" leads to a sign-in that succeeds.
    home = http.get(retry_url, timeout=10)
    assert home.status_code == 200 and urlsplit(home.url).netloc == urlsplit(suite.web_base_url).netloc
    landed = sign_in(http, suite.web_base_url, username, password)
    assert landed.status_code == 200 and urlsplit(landed.url).path == "/profile"
    assert username in element_text(landed.text, "claims")


def _try_again_href(html: str) -> str:
    """The href of the error page's "Try again" link."""
    match = re.search(r'id="try-again" href="([^"]*)"', html)
    assert match, "no try-again link"
    return unescape(match.group(1))


# -- a worker killed under load ----------------------------------------------------------


def test_worker_killed_under_load_loses_no_session(fault_suite):
    """SIGKILL one of four gunicorn workers while eight browsers reload their profiles.

    What is allowed: the requests the killed worker was serving at that
    instant have their connections cut (refused, reset, or closed in the
    middle of the body), which a browser shows as a network error and the
    user reloads.  A threaded worker serves at most ``THREADS`` connections
    at once, so at most that many requests can be lost; every other request
    is answered by another worker.  What is not allowed: any 5xx, any
    page showing someone else's claims, any user signed out afterwards.
    """
    suite = fault_suite
    browsers = signed_in_users(suite, 6)
    # Two tabs' worth of load for some users: more requests in flight.
    load = browsers + browsers[:2]
    workers = worker_pids(suite.web)
    assert len(workers) == 4, workers
    victim = workers[1]
    statuses: list[int] = []
    connection_errors: list[str] = []
    wrong_user: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def reload_profile(browser):
        http, username = browser
        # Its own connection pool per thread: requests.Session is not shared across threads here.
        own = requests.Session()
        own.cookies.update(http.cookies)
        while not stop.is_set():
            try:
                page = own.get(suite.web_base_url + "/profile", allow_redirects=False, timeout=10)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                # The connection was cut before or during the answer.
                with lock:
                    connection_errors.append(repr(error))
                continue
            with lock:
                statuses.append(page.status_code)
                if page.status_code == 200 and username not in (element_text(page.text, "claims") or ""):
                    wrong_user.append(username)

    with ThreadPoolExecutor(max_workers=len(load)) as pool:
        futures = [pool.submit(reload_profile, browser) for browser in load]
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        time.sleep(2.0)
        stop.set()
        for future in futures:
            future.result(timeout=30)

    assert len(statuses) > 50, len(statuses)  # the load was real
    assert set(statuses) == {200}, sorted(set(statuses))
    assert not wrong_user
    assert len(connection_errors) <= THREADS, connection_errors
    # The master replaced the worker, and every user is still signed in.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        victim in worker_pids(suite.web) or len(worker_pids(suite.web)) != 4
    ):
        time.sleep(0.2)
    assert victim not in worker_pids(suite.web) and len(worker_pids(suite.web)) == 4
    for http, username in browsers:
        profile_of(http, suite, username)


# -- two requests of one session that both need a refresh -----------------------------------


def test_two_simultaneous_api_calls_refresh_once(fault_suite):
    """Two tabs click "Call the API" at once with an expired access token.

    The issuer rotates refresh tokens and treats a second use as theft
    (RFC 9700 §4.14.2): if both requests refreshed, the second would get
    ``invalid_grant``, the issuer would revoke the grant, and the user
    would be signed out.  The web app serialises the refresh per session,
    so exactly one refresh reaches the issuer and both calls succeed.
    """
    suite = fault_suite
    ((http, username),) = signed_in_users(suite, 1)
    page = profile_of(http, suite, username)
    csrf = form_csrf(page.text)
    store = redis.Redis.from_url(suite.env["REDIS_URL"])
    used_before = len(store.keys("dev_issuer:rt_used:*"))
    time.sleep(2.5)  # the access token (2 s) has expired

    barrier = threading.Barrier(2)

    def call_api(_):
        own = requests.Session()
        own.cookies.update(http.cookies)
        barrier.wait()
        return own.post(suite.web_base_url + "/call-api", data={"csrf_token": csrf}, timeout=20)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(call_api, range(2)))
    for answer in answers:
        assert answer.status_code == 200, answer.text[:1000]
        assert element_text(answer.text, "api-status") == "HTTP 200", answer.text[:1000]
    # Exactly one refresh token was spent at the issuer (a reuse would have
    # marked none new and revoked the family).
    assert len(store.keys("dev_issuer:rt_used:*")) == used_before + 1
    assert not store.keys("dev_issuer:family_revoked:*")
    # Still signed in, and the next refresh works with the rotated token.
    time.sleep(2.5)
    again = http.post(suite.web_base_url + "/call-api", data={"csrf_token": csrf}, timeout=20)
    assert element_text(again.text, "api-status") == "HTTP 200", again.text[:1000]


# -- two browser tabs signing in at once ------------------------------------------------------


@pytest.mark.browser
def test_two_tabs_signing_in_at_once_never_give_a_500(fault_suite, browser):
    """Start a sign-in in two tabs, then finish both.

    Both tabs share one web-app session and one issuer session.  The first
    callback signs the user in; the second either signs in as well or
    shows the clear error page with a "Try again" link.  Never a 500, and
    afterwards both tabs show the signed-in user.
    """
    suite = fault_suite
    username, password = suite.users[5]
    wait = WebDriverWait(browser, 20)
    first = browser.current_window_handle
    browser.get(suite.web_base_url + "/login")
    wait.until(EC.presence_of_element_located((By.ID, "sign-in-form")))
    browser.switch_to.new_window("tab")
    second = browser.current_window_handle
    browser.get(suite.web_base_url + "/login")
    wait.until(EC.presence_of_element_located((By.ID, "sign-in-form")))

    outcomes = {}
    try:
        for handle in (first, second):
            browser.switch_to.window(handle)
            browser.find_element(By.ID, "username").clear()
            browser.find_element(By.ID, "username").send_keys(username)
            browser.find_element(By.ID, "password").send_keys(password)
            browser.find_element(By.ID, "sign-in").click()
            wait.until(lambda d: d.find_elements(By.ID, "claims") or d.find_elements(By.ID, "error-code"))
            assert "Traceback" not in browser.page_source
            if browser.find_elements(By.ID, "claims"):
                outcomes[handle] = "signed in"
                assert username in browser.find_element(By.ID, "claims").text
            else:
                code = browser.find_element(By.ID, "error-code").text
                assert code != "server_error" and "(HTTP 500)" not in browser.page_source
                outcomes[handle] = code
                # A clean restart: "Try again" works and finds the user signed in.
                browser.find_element(By.ID, "try-again").click()
                wait.until(EC.presence_of_element_located((By.ID, "sign-out")))
        assert outcomes[first] == "signed in", outcomes
        # Afterwards both tabs show the signed-in user.
        for handle in (first, second):
            browser.switch_to.window(handle)
            browser.get(suite.web_base_url + "/profile")
            wait.until(EC.presence_of_element_located((By.ID, "claims")))
            assert username in browser.find_element(By.ID, "claims").text
    finally:
        browser.switch_to.window(second)
        browser.close()
        browser.switch_to.window(first)
