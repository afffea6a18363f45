"""Two instances of the web app and of the SPA's BFF behind haproxy (round robin, no sticky sessions).

Real Redis, dev issuer and API; Debian's haproxy with a configuration
rendered from ``deploy/haproxy/`` into the test's directory.  A user signs
in and calls the API; one instance is killed with SIGKILL mid-session; the
user carries on through the other (profile, API call with a refresh,
sign-out) without signing in again, because everything an app keeps is in
Redis (README, "Deploying").
"""

from __future__ import annotations

import os
import signal
import string
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import redis
import requests

from common.session import load_stored_session
from common.tokens import TokenSet
from tests.deploy.conftest import wait_until
from tests.issuer_helpers import sign_in_and_get_redirect
from tests.support import ROOT, RedisServer, free_port, gunicorn, wait_for_http
from tests.web_app.conftest import demo_user, element_text, form_csrf, sign_in

HAPROXY = ROOT / "deploy" / "haproxy"
TIMEOUT = 10
BFF = {"X-CSRF": "1"}


def render_haproxy(directory, fronts: dict[str, tuple[int, list[int]]]) -> str:
    """``deploy/haproxy/`` rendered: app name -> (frontend port, instance ports)."""
    frontend = string.Template((HAPROXY / "frontend.cfg.template").read_text())
    blocks = [
        frontend.substitute(
            name=name,
            bind=f"127.0.0.1:{port}",
            scheme="http",
            servers="\n".join(
                f"    server {name}{i} 127.0.0.1:{backend} check inter 300ms fall 1 rise 2"
                for i, backend in enumerate(backends)
            ),
        )
        for name, (port, backends) in fronts.items()
    ]
    text = string.Template((HAPROXY / "haproxy.cfg.template").read_text()).substitute(
        frontends="\n".join(blocks)
    )
    path = directory / "haproxy.cfg"
    path.write_text(text)
    return str(path)


class TwoHostStack:
    """Redis, dev issuer, API, and two instances each of web_app and spa_app behind one haproxy."""

    def __init__(self, directory):
        self.directory = directory
        self.redis = RedisServer(directory / "redis")
        self.front = {"web": free_port(), "spa": free_port()}
        self.ports = {"issuer": free_port(), "api": free_port()}
        self.env = {
            "ISSUER": f"http://127.0.0.1:{self.ports['issuer']}/oauth2/default",
            "REDIS_URL": self.redis.url,
            "WEB_BASE_URL": f"http://localhost:{self.front['web']}",
            "SPA_BASE_URL": f"http://localhost:{self.front['spa']}",
            "API_URL": f"http://127.0.0.1:{self.ports['api']}",
            # Every API call after a short wait needs the refresh token.
            "DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "2",
            "CLOCK_LEEWAY": "0",
        }
        behind_proxy = {**self.env, "TRUSTED_PROXIES": "1"}
        log = ["--access-logfile", "-"]
        self.issuer = gunicorn(
            "lb-issuer", "dev_issuer:create_app()", self.env, self.ports["issuer"], health_path="/healthz"
        )
        self.api = gunicorn(
            "lb-api", "resource_server:create_app()", self.env, self.ports["api"], health_path="/healthz"
        )
        self.instances = {
            app: [
                gunicorn(
                    f"lb-{app}{i}",
                    f"{app}_app:create_app()",
                    behind_proxy,
                    free_port(),
                    health_path="/healthz",
                    extra=log,
                )
                for i in range(2)
            ]
            for app in ("web", "spa")
        }
        self.haproxy: subprocess.Popen | None = None

    def url(self, app: str) -> str:
        return self.env[f"{app.upper()}_BASE_URL"]

    def start(self) -> "TwoHostStack":
        try:
            self.redis.start()
            self.issuer.start()
            self.api.start()
            for instance in self.instances["web"] + self.instances["spa"]:
                instance.start()
            fronts = {app: (self.front[app], [i.port for i in self.instances[app]]) for app in self.front}
            config = render_haproxy(self.directory, fronts)
            subprocess.run(["/usr/sbin/haproxy", "-c", "-q", "-f", config], check=True)
            self.haproxy = subprocess.Popen(
                ["/usr/sbin/haproxy", "-db", "-f", config], start_new_session=True
            )
            for app in self.front:
                wait_for_http(self.url(app) + "/healthz", proc=self.haproxy)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.haproxy and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=10)
        for instance in self.instances["web"] + self.instances["spa"] + [self.api, self.issuer]:
            instance.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = TwoHostStack(tmp_path_factory.mktemp("two-hosts")).start()
    yield stack
    stack.stop()


def served(instance) -> int:
    """How many requests an instance has answered (its gunicorn access log)."""
    return sum(
        1
        for line in instance.log_path.read_text(errors="replace").splitlines()
        if '" 200 ' in line or '" 302 ' in line
    )


def kill(instance) -> None:
    """SIGKILL the instance's gunicorn master and workers: a host that dies, no graceful shutdown."""
    os.killpg(instance.proc.pid, signal.SIGKILL)
    instance.proc.wait()


def stored(env, key: str):
    return load_stored_session(redis.Redis.from_url(env["REDIS_URL"]).get(key))


def test_web_app_user_carries_on_after_an_instance_is_killed(stack):
    base, env = stack.url("web"), stack.env
    username, password = demo_user(env)
    http = requests.Session()
    page = sign_in(http, base, username, password)
    assert page.status_code == 200 and username in element_text(page.text, "claims")
    answer = http.post(base + "/call-api", data={"csrf_token": form_csrf(page.text)}, timeout=TIMEOUT)
    assert element_text(answer.text, "api-status") == "HTTP 200"
    for _ in range(4):
        assert http.get(base + "/profile", timeout=TIMEOUT).status_code == 200
    first, second = stack.instances["web"]
    assert served(first) and served(second), "round robin: both instances served this user"

    kill(first)
    key = f"web_app:session:{http.cookies.get('web_app_session')}"
    before = TokenSet.from_dict(stored(env, key)["tokens"])
    time.sleep(max(0.0, before.expires_at - time.time()) + 1.1)  # the access token expires
    answered = served(second)
    profile = http.get(base + "/profile", allow_redirects=False, timeout=TIMEOUT)
    assert profile.status_code == 200 and username in element_text(profile.text, "claims")
    answer = http.post(base + "/call-api", data={"csrf_token": form_csrf(profile.text)}, timeout=TIMEOUT)
    assert answer.status_code == 200 and urlsplit(answer.url).netloc == urlsplit(base).netloc
    assert element_text(answer.text, "api-status") == "HTTP 200"
    after = TokenSet.from_dict(stored(env, key)["tokens"])
    assert after.access_token != before.access_token and after.refresh_token != before.refresh_token
    out = http.post(
        base + "/logout", data={"csrf_token": form_csrf(answer.text)}, allow_redirects=False, timeout=TIMEOUT
    )
    assert out.status_code == 302 and "/v1/logout" in out.headers["Location"]
    assert not redis.Redis.from_url(env["REDIS_URL"]).exists(key)
    assert served(second) >= answered + 3 and first.proc.poll() is not None


def test_bff_user_carries_on_after_an_instance_is_killed(stack):
    base, env = stack.url("spa"), stack.env
    username, password = demo_user(env)
    http = requests.Session()
    start = http.get(base + "/bff/login?returnTo=/", allow_redirects=False, timeout=TIMEOUT)
    assert start.status_code == 302, start.text[:500]
    callback = sign_in_and_get_redirect(http, start.headers["Location"], username, password)
    assert http.get(callback, timeout=TIMEOUT).status_code == 200
    user = http.get(base + "/bff/user", headers=BFF, timeout=TIMEOUT)
    assert user.status_code == 200 and user.json()["sub"]
    assert http.get(base + "/bff/api/messages", headers=BFF, timeout=TIMEOUT).status_code == 200
    first, second = stack.instances["spa"]
    wait_until(lambda: served(first) and served(second), what="both BFF instances to have served")

    kill(first)
    time.sleep(2.2)  # the access token expires: the next API call refreshes, on the survivor
    assert http.get(base + "/bff/user", headers=BFF, timeout=TIMEOUT).json()["sub"] == user.json()["sub"]
    api = http.get(base + "/bff/api/messages", headers=BFF, timeout=TIMEOUT)
    assert api.status_code == 200 and api.json()["messages"], api.text[:500]
    out = http.post(base + "/bff/logout", headers=BFF, timeout=TIMEOUT)
    assert out.status_code == 200 and out.json()["logout_url"]
    assert http.get(base + "/bff/user", headers=BFF, timeout=TIMEOUT).status_code == 401
