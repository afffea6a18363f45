"""Helpers the fixtures use to run real processes on free loopback ports."""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent

#: Threads per gunicorn worker for everything a browser talks to, as in the
#: Procfile: a browser keeps idle (pre)connections open, and a single-threaded
#: sync worker holding one would leave the next page waiting for its timeout.
THREADS = 4
VENV_BIN = Path(sys.executable).parent


#: Ports handed out to servers: below the kernel's ephemeral range
#: (``ip_local_port_range``, 32768–60999 on Linux), which the tests' own
#: outgoing connections draw from by the thousand.  A port taken from that
#: range (``bind(0)``) could be grabbed by a client socket before the server
#: binds it; one out of this range cannot.
_SERVER_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, never handed out twice."""
    while True:
        port = random.choice(_SERVER_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Block until ``url`` answers with a status below 500."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


class RedisServer:
    """A private ``redis-server`` on a free port, its files under ``directory``."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError(
                "redis-server is not installed; `make test` installs it (apt-get install redis-server)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Service:
    """A real process (gunicorn or ``python -m``) started with an environment.

    Stopped by PID (its whole process group) in :meth:`stop`.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        port: int,
        health_path: str = "/",
        log_dir: Path | None = None,
    ):
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.health_path = health_path
        self.log_path = (log_dir or ROOT / "instance" / "test-logs") / f"{name}-{port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Service":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            self.argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        try:
            wait_for_http(self.url + self.health_path, timeout=timeout, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; log:\n{self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def gunicorn(
    name: str,
    factory: str,
    env: dict[str, str],
    port: int,
    workers: int = 2,
    health_path: str = "/",
    extra: list[str] | None = None,
    threads: int = THREADS,
) -> Service:
    """A :class:`Service` running ``factory`` under gunicorn on ``127.0.0.1:port``.

    :param threads: threads per worker; more than one selects gunicorn's
        threaded worker, as the Procfile does (see :data:`THREADS`).
    """
    argv = [
        str(VENV_BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "30",
        "--graceful-timeout",
        "5",
        "--no-control-socket",
        # As the Procfile: codes, state and tokens redacted from logged URLs.
        "--config",
        "python:common.gunicorn_conf",
        *(extra or []),
        factory,
    ]
    return Service(name, argv, env, port, health_path)


def screenshot_dir() -> Path:
    """Where browser tests save their screenshots.

    ``docs/screenshots`` (the README's pictures) when ``UPDATE_SCREENSHOTS=1``
    (``make screenshots``), else ``instance/screenshots``, so that an
    ordinary test run leaves the committed pictures alone.
    """
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        directory = ROOT / "docs" / "screenshots"
    else:
        directory = ROOT / "instance" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class WebStack:
    """A private Redis, dev issuer, resource server and web app, for tests that
    stop, restart or slow down parts of the suite without disturbing others.

    :param name: prefix of the log files.
    :param redis: the (not yet started) Redis server to use.
    :param env: settings on top of the stack's own addresses.
    :param web_workers: gunicorn workers of the web app.
    """

    def __init__(
        self, name: str, redis: RedisServer, env: dict[str, str] | None = None, web_workers: int = 2
    ):
        self.redis = redis
        self.ports = {part: free_port() for part in ("issuer", "api", "web")}
        self.env = {
            "ISSUER": f"http://127.0.0.1:{self.ports['issuer']}/oauth2/default",
            "REDIS_URL": self.redis.url,
            "WEB_BASE_URL": f"http://localhost:{self.ports['web']}",
            "API_URL": f"http://127.0.0.1:{self.ports['api']}",
            **(env or {}),
        }
        self.issuer = gunicorn(
            f"{name}-dev_issuer",
            "dev_issuer:create_app()",
            self.env,
            self.ports["issuer"],
            workers=2,
            health_path="/healthz",
        )
        self.api = gunicorn(
            f"{name}-resource_server",
            "resource_server:create_app()",
            self.env,
            self.ports["api"],
            workers=2,
            health_path="/healthz",
        )
        self.web = gunicorn(
            f"{name}-web_app",
            "web_app:create_app()",
            self.env,
            self.ports["web"],
            workers=web_workers,
            health_path="/healthz",
        )

    @property
    def web_base_url(self) -> str:
        return self.env["WEB_BASE_URL"]

    def start(self) -> "WebStack":
        """Start every part; on failure stop what was started and re-raise."""
        try:
            self.redis.start()
            self.issuer.start()
            self.api.start()
            self.web.start()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for part in (self.web, self.api, self.issuer):
            part.stop()
        self.redis.stop()


def addressed_client(app):
    """Flask's test client for ``app``, addressing it at its configured public URL.

    The plain client says ``Host: localhost``, which an app configured for
    another host name refuses (``common/hosts.py``); a test may still pass
    its own ``base_url``.
    """
    client = app.test_client()
    client.open = functools.partial(client.open, base_url=app.config["PUBLIC_URL"])
    return client
