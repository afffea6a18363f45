"""What every figure shares: the result row, the real processes, small statistics.

The processes are the same real ones the integration tests start
(:mod:`tests.support`): a private ``redis-server`` and gunicorn with several
workers per component, on free ports of ``127.0.0.1``, stopped by PID.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from common.config import load_settings
from tests.support import RedisServer, Service, free_port, gunicorn

#: The ``User-Agent`` of the harness's own HTTP client, so that an access log
#: can tell the harness's requests from the apps' calls to the issuer.
BENCH_USER_AGENT = "suite-benchmarks/1"

#: gunicorn access-log line: method, path, status, user agent, microseconds
#: spent on the request inside the worker (``%(D)s``), tab-separated.
ACCESS_LOG_FORMAT = "%(m)s\t%(U)s\t%(s)s\t%(a)s\t%(D)s"


@dataclass
class Result:
    """One row of the table.

    :ivar key: short name (``api``, ``validation`` ...), also the ``--only`` name.
    :ivar title: what is measured.
    :ivar figure: the headline number, formatted.
    :ivar goal: the goal, in words.
    :ivar met: whether the goal is met (``None``: no goal, or not measured).
    :ivar details: more numbers, one line each.
    :ivar how: how it was measured (one short paragraph).
    """

    key: str
    title: str
    figure: str
    goal: str
    met: bool | None
    details: list[str] = field(default_factory=list)
    how: str = ""


@dataclass
class Scale:
    """How long and how much to measure: full (``make bench``) or ``--quick`` (the smoke test)."""

    quick: bool

    def pick(self, full, quick):
        return quick if self.quick else full


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def parse_access_log(path: Path) -> list[dict]:
    """The lines of a gunicorn access log written with :data:`ACCESS_LOG_FORMAT`."""
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or not parts[4].strip().isdigit():
            continue
        method, path_, status, agent, micros = parts
        rows.append(
            {"method": method, "path": path_, "status": int(status), "agent": agent, "ms": int(micros) / 1000}
        )
    return rows


class Suite:
    """Redis, dev issuer, resource server and (optionally) web app, on free loopback ports.

    Everything is addressed as ``127.0.0.1`` so that no request waits for an
    IPv6 ``localhost`` attempt first.

    :param components: which of ``api`` and ``web`` to start besides the issuer.
    :param env: extra environment (contract variables) for every process.
    :param workers: gunicorn workers per component.
    :param access_logs: write a timed access log per component (see :data:`ACCESS_LOG_FORMAT`).
    """

    def __init__(
        self,
        components=("api",),
        env: dict[str, str] | None = None,
        workers: int = 2,
        access_logs: bool = False,
    ):
        self.components = components
        self.extra_env = env or {}
        self.workers = workers
        self.access_logs = access_logs
        self.tmp = Path(tempfile.mkdtemp(prefix="suite-bench-"))
        self.redis: RedisServer | None = None
        self.services: dict[str, Service] = {}
        self.ports = {name: free_port() for name in ("issuer", "api", "web")}
        self.env: dict[str, str] = {}

    def log_path(self, name: str) -> Path:
        return self.tmp / f"{name}-access.log"

    def _gunicorn(self, name: str, factory: str, health: str, workers: int) -> Service:
        extra = []
        if self.access_logs:
            extra = ["--access-logfile", str(self.log_path(name)), "--access-logformat", ACCESS_LOG_FORMAT]
        service = gunicorn(
            f"bench-{name}",
            factory,
            self.env,
            self.ports[name],
            workers=workers,
            health_path=health,
            extra=extra,
        )
        service.log_path = self.tmp / f"{name}.log"
        return service.start()

    def start(self) -> "Suite":
        try:
            self.redis = RedisServer(self.tmp / "redis").start()
            self.env = {
                "ISSUER": f"http://127.0.0.1:{self.ports['issuer']}/oauth2/default",
                "REDIS_URL": self.redis.url,
                "API_URL": f"http://127.0.0.1:{self.ports['api']}",
                "WEB_BASE_URL": f"http://127.0.0.1:{self.ports['web']}",
                # Not started, but every process validates the whole contract.
                "SPA_BASE_URL": f"http://127.0.0.1:{free_port()}",
                "SERVICE_BASE_URL": f"http://127.0.0.1:{free_port()}",
                **self.extra_env,
            }
            self.services["issuer"] = self._gunicorn(
                "issuer",
                "dev_issuer:create_app()",
                "/oauth2/default/.well-known/openid-configuration",
                self.workers,
            )
            if "api" in self.components:
                self.services["api"] = self._gunicorn(
                    "api", "resource_server:create_app()", "/healthz", self.workers
                )
            if "web" in self.components:
                self.services["web"] = self._gunicorn("web", "web_app:create_app()", "/healthz", self.workers)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        self.services.clear()
        if self.redis:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> "Suite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def settings(self):
        return load_settings(self.env)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def service_token(self) -> str:
        """A client-credentials access token for the API (RFC 6749 §4.4), from the real issuer."""
        settings = self.settings
        answer = requests.post(
            f"{settings.issuer}/v1/token",
            data={"grant_type": "client_credentials", "scope": settings.service_scope},
            auth=(settings.service_client_id, settings.service_client_secret),
            headers={"User-Agent": BENCH_USER_AGENT},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]


def wrk_output(
    url: str, seconds: float, connections: int, headers: dict[str, str] | None = None, *, latency=False
) -> str:
    """What one ``wrk`` round against ``url`` printed (non-2xx answers are an error)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
    if latency:
        argv.append("--latency")
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        argv + [url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    if "Non-2xx or 3xx responses" in out:
        raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
    return out


def wrk(url: str, seconds: float, connections: int, headers: dict[str, str] | None = None) -> float:
    """Requests per second that ``wrk`` reached against ``url`` (non-2xx answers are an error)."""
    out = wrk_output(url, seconds, connections, headers)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(match.group(1))
