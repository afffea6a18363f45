"""A private suite for the fault tests: parts that can be stopped, killed and restarted.

``FaultSuite`` is a Redis, dev issuer, resource server and web app of its
own, so that stopping Redis or the issuer, or killing a web-app worker,
disturbs no other test.  Its Redis persists every write to an append-only
file (``appendfsync always``), as a production Redis would: stopping it
and starting it again on the same port is a real "Redis stopped", and
whatever the suite's sessions were is back afterwards.  That lets the tests
prove the point that matters: the *apps* never drop a session because
Redis went away.

Access tokens live two seconds, so every "Call the API" needs a refresh.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import RedisServer, WebStack, wait_for_port
from tests.web_app.conftest import element_text, extra_users, sign_in

__all__ = ["FaultSuite", "PersistentRedis", "fault_suite", "signed_in_users", "worker_pids"]


class PersistentRedis(RedisServer):
    """A ``redis-server`` that keeps its data in an append-only file across restarts."""

    def start(self) -> "PersistentRedis":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)
        return self


class FaultSuite(WebStack):
    """Redis (persistent), dev issuer, resource server and web app (4 workers)."""

    def __init__(self, tmp_path: Path):
        super().__init__(
            "fault",
            PersistentRedis(tmp_path / "redis"),
            {
                "DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "2",
                "CLOCK_LEEWAY": "0",
                "HTTP_TIMEOUT": "3",
                "DEV_ISSUER_EXTRA_USERS": ",".join(
                    f"fault{i}@example.test:Dev-Only-Fault-{i}" for i in range(6)
                ),
            },
            web_workers=4,
        )

    @property
    def users(self) -> list[tuple[str, str]]:
        return extra_users(self.env)


def worker_pids(service) -> list[int]:
    """The PIDs of a gunicorn master's workers (its children, from ``pgrep -P``)."""
    found = subprocess.run(["pgrep", "-P", str(service.proc.pid)], capture_output=True, text=True)
    return sorted(int(pid) for pid in found.stdout.split())


def signed_in_users(suite: FaultSuite, count: int) -> list[tuple[requests.Session, str]]:
    """``count`` browsers (HTTP clients), each signed in as a different user."""
    browsers = []
    for username, password in suite.users[:count]:
        http = requests.Session()
        page = sign_in(http, suite.web_base_url, username, password)
        assert page.status_code == 200 and username in element_text(page.text, "claims"), page.text[:1000]
        browsers.append((http, username))
    return browsers


@pytest.fixture(scope="module")
def fault_suite(tmp_path_factory):
    """A private suite whose parts the fault tests may stop, kill and restart."""
    suite = FaultSuite(tmp_path_factory.mktemp("fault-suite")).start()
    yield suite
    suite.stop()
