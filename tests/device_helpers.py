"""What the device-grant tests (RFC 8628) share: the device's requests, the person's pages, the CLI run.

Real HTTP only: ``requests`` plays the device (its POSTs to the issuer) or
the person's browser on the dev issuer's ``/activate`` pages; Selenium
drives Chromium where a test says "a browser approves"; :class:`DeviceRun`
runs ``python -m native_sim device-login`` as a real subprocess.
"""

from __future__ import annotations

import html
import re
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urljoin, urlsplit

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import ROOT

TIMEOUT = 10
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")
SCOPE = "openid profile email offline_access"


def base_of(url: str) -> str:
    """scheme://host:port of a URL (the issuer base, where /activate is)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def device_authorize(issuer: str, client_id: str, scope: str = SCOPE, **extra) -> requests.Response:
    """The device's first request (RFC 8628 §3.1)."""
    return requests.post(
        f"{issuer}/v1/device/authorize",
        data={"client_id": client_id, "scope": scope, **extra},
        timeout=TIMEOUT,
    )


def poll(issuer: str, client_id: str, device_code: str) -> requests.Response:
    """One device access token request (RFC 8628 §3.4)."""
    return requests.post(
        f"{issuer}/v1/token",
        data={"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": client_id},
        timeout=TIMEOUT,
    )


def csrf(page: str) -> str:
    """The form's CSRF token on an issuer page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no csrf_token on the page: {page[:500]}"
    return html.unescape(match.group(1))


def text_of(page: str, element_id: str) -> str:
    """The text of the element with ``id``, tags removed."""
    match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no element {element_id!r} on the page: {page[:1500]}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).split())


def enter_code(http: requests.Session, base: str, typed: str) -> requests.Response:
    """Open /activate and submit ``typed`` as the code; the answer is not followed."""
    form = http.get(f"{base}/activate", timeout=TIMEOUT)
    assert form.status_code == 200, form.text[:500]
    return http.post(
        f"{base}/activate",
        data={"csrf_token": csrf(form.text), "user_code": typed},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def approve(
    base: str, typed: str, username: str, password: str, decision: str = "allow", http=None
) -> requests.Response:
    """A person's whole visit: enter the code, sign in, Allow or Deny; the result page."""
    http = http or requests.Session()
    entered = enter_code(http, base, typed)
    assert entered.status_code == 303, f"{entered.status_code}: {entered.text[:800]}"
    confirm = http.get(urljoin(entered.url, entered.headers["Location"]), timeout=TIMEOUT)  # via sign-in
    if 'id="sign-in-form"' in confirm.text:
        next_url = html.unescape(re.search(r'name="next" value="([^"]*)"', confirm.text).group(1))
        confirm = http.post(
            f"{base}/signin",
            data={
                "csrf_token": csrf(confirm.text),
                "next": next_url,
                "username": username,
                "password": password,
            },
            timeout=TIMEOUT,
        )
    assert 'id="activate-consent"' in confirm.text, confirm.text[:1500]
    return http.post(
        f"{base}/activate/confirm",
        data={"csrf_token": csrf(confirm.text), "decision": decision},
        timeout=TIMEOUT,
    )


def approve_in_browser(browser, url: str, username: str, password: str, decision: str = "allow") -> None:
    """Chromium follows the link with the code, presses Next, signs in, Allows (or Denies)."""
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    wait.until(EC.element_to_be_clickable((By.ID, "activate-next"))).click()
    wait.until(EC.presence_of_element_located((By.ID, "username"))).send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()
    wait.until(EC.element_to_be_clickable((By.ID, f"activate-{decision}"))).click()
    wait.until(EC.presence_of_element_located((By.ID, "activate-done")))


class DeviceRun:
    """``python -m native_sim device-login`` in the background, its output collected line by line."""

    def __init__(self, env: dict[str, str], *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "native_sim", "device-login", *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def line(self, matches, timeout: float = 30) -> str:
        """The first line of standard output for which ``matches(line)`` is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.out):
                if matches(line):
                    return line
            if self.proc.poll() is not None and not self._readers[0].is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no such line; stdout={self.out!r} stderr={self.err!r}")

    def user_code(self) -> str:
        return self.line(USER_CODE.match)

    def complete_uri(self) -> str:
        return self.line(lambda line: line.startswith("http") and "user_code=" in line)

    def waiting(self) -> None:
        """Block until the command has shown everything and polls."""
        self.line(lambda line: line.startswith("The code expires in"))

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the command's process group, as a terminal sends it."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 90) -> tuple[int, str, str]:
        """Wait for the command to end: ``(exit code, stdout, stderr)``."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code, "\n".join(self.out), "\n".join(self.err)

    def stop(self) -> None:
        """Stop the command by PID if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
