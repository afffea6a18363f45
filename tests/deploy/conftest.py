"""Fixtures of the deployment tests: the launcher behind nginx, and a Chromium that trusts one key.

The browser trusts the suite's generated certificate by its key alone
(``--ignore-certificate-errors-spki-list``, the base64 SHA-256 of the
leaf's SubjectPublicKeyInfo), not by a blanket ``--ignore-certificate-errors``:
a certificate with any other key still fails, as it would for a user who
imported ``instance/tls/ca.pem``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from common.tls_front import leaf_spki_sha256
from tests.support import ROOT, free_port

#: Components of ``make run-https`` and the variable of each one's public URL.
PUBLIC = {
    "issuer": "ISSUER",
    "web": "WEB_BASE_URL",
    "spa": "SPA_BASE_URL",
    "service": "SERVICE_BASE_URL",
    "api": "API_URL",
}


class HttpsSuite:
    """``python -m common.launcher --https`` (what ``make run-https`` runs) on free ports."""

    def __init__(self, instance, redis_url: str):
        self.instance = instance
        self.public = {name: free_port() for name in PUBLIC}
        self.bind = {name: free_port() for name in PUBLIC}
        self.env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "ISSUER"}}
        self.env.update(
            {
                "ISSUER": f"https://localhost:{self.public['issuer']}/oauth2/default",
                "REDIS_URL": redis_url,
                "INSTANCE_DIR": str(instance),
                "PYTHONUNBUFFERED": "1",
                # The authorization redirect shows its redirect_uri (a pushed one would hide it).
                "PAR": "off",
            }
        )
        for name, variable in PUBLIC.items():
            if name != "issuer":
                self.env[variable] = f"https://localhost:{self.public[name]}"
            self.env[f"{name.upper()}_BIND"] = f"127.0.0.1:{self.bind[name]}"
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    def url(self, name: str) -> str:
        return f"https://localhost:{self.public[name]}"

    @property
    def ca(self) -> str:
        return str(self.instance / "tls" / "ca.pem")

    def start(self) -> "HttpsSuite":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "common.launcher", "--https"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        up = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.output.append(line)
                if "stops everything" in line:
                    up.set()
            up.set()

        threading.Thread(target=read, daemon=True).start()
        up.wait(timeout=120)
        text = "".join(self.output)
        if "The suite is up" not in text:
            self.stop()
            raise AssertionError(f"make run-https did not come up:\n{text[-4000:]}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # the launcher stops nginx, honcho and its children
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def https_suite(redis_server, tmp_path_factory):
    """The whole suite behind nginx on https, as ``make run-https`` starts it."""
    suite = HttpsSuite(tmp_path_factory.mktemp("run-https"), redis_server.url).start()
    yield suite
    suite.stop()


@pytest.fixture(scope="module")
def tls_browser(https_suite, tmp_path_factory):
    """A headless Chromium that trusts the suite's leaf key, and only it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    tls = https_suite.instance / "tls"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--window-size=1280,900",
        # Chromium honours the SPKI list only with a profile directory of its own.
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-tls-profile')}",
        f"--ignore-certificate-errors-spki-list={leaf_spki_sha256(tls)}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_until(condition, timeout: float = 20.0, what: str = "condition"):
    """Poll ``condition`` until it returns a true value; return it (or fail naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
