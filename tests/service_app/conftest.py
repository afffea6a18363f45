"""Fixtures for the service app: private issuer + API stacks behind a counting proxy.

"Count at the issuer, not in the client": every token request the service
makes must be counted by something the client does not control.  Each
stack therefore puts a tiny **counting reverse proxy** (a real HTTP server
on loopback, :class:`CountingProxy`) in front of a real dev issuer running
under gunicorn.  The issuer is configured with the proxy's address as its
``ISSUER``, so discovery, the JWKS and the token endpoint all go through
the proxy, exactly as they would through a load balancer, and the proxy
counts each ``POST`` to the token endpoint before forwarding it.  Unlike
counting the issuer's log lines or Redis keys, this depends on nothing
inside the issuer, and the count is final by the time the client has its
answer (no log flushing to wait for).  The proxy can also answer 503 for the
next N token requests, to exercise the client's back-off against a real
HTTP failure.

Two stacks (each: proxy, dev issuer with 2 workers, resource server with
2 workers, own Redis database on the shared ``redis_server``):

* ``secret_stack``: the service client authenticates with
  ``client_secret_basic``; access tokens live 8 s, so the tests can watch
  one expire;
* ``jwt_stack``: the issuer is started with ``SERVICE_PRIVATE_KEY`` pointing
  at a key generated here, so the client uses ``private_key_jwt``.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from common.keys import generate_private_key, private_key_pem
from tests.support import Service, free_port, gunicorn

#: Access-token lifetime on the secret stack: long enough for a burst of
#: calls, short enough to wait for its expiry.
SHORT_TOKEN_LIFETIME = 8

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
}


class CountingProxy:
    """A reverse proxy on ``127.0.0.1`` that counts (and can fail) token requests.

    ``token_requests`` counts the token requests the issuer answered, not its
    DPoP nonce round trips (RFC 9449 §8: ``400 use_dpop_nonce``, then the same
    request again with the nonce), which ``dpop_nonce_answers`` counts;
    ``token_dpop_proofs`` holds the ``DPoP`` header of every token request.
    """

    def __init__(self, upstream_port: int, port: int | None = None):
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self._lock = threading.Lock()
        self.token_requests = 0
        self.token_bodies: list[dict[str, list[str]]] = []
        self.token_auth_headers: list[str | None] = []
        self.token_dpop_proofs: list[str | None] = []
        self.dpop_nonce_answers = 0
        self._failures: list[int] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` token requests with ``status`` instead of forwarding them."""
        with self._lock:
            self._failures.extend([status] * count)

    def reset(self) -> None:
        with self._lock:
            self.token_requests = 0
            self.token_bodies.clear()
            self.token_auth_headers.clear()
            self.token_dpop_proofs.clear()
            self.dpop_nonce_answers = 0
            self._failures.clear()

    def start(self) -> "CountingProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output quiet
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                failure = None
                is_token_request = self.command == "POST" and self.path.split("?")[0].endswith("/token")
                if is_token_request:
                    with proxy._lock:
                        proxy.token_dpop_proofs.append(self.headers.get("DPoP"))
                        proxy.token_requests += 1
                        proxy.token_bodies.append(parse_qs(body.decode("ascii", "replace")))
                        proxy.token_auth_headers.append(self.headers.get("Authorization"))
                        failure = proxy._failures.pop(0) if proxy._failures else None
                if failure:
                    payload = b"<html><body>Service Unavailable</body></html>"
                    self.send_response(failure)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    if is_token_request and answer.status == 400 and b"use_dpop_nonce" in data:
                        with proxy._lock:  # a nonce round trip, not a token request of its own
                            proxy.token_requests -= 1
                            proxy.token_bodies.pop()
                            proxy.token_auth_headers.pop()
                            proxy.dpop_nonce_answers += 1
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_POST = do_HEAD = do_OPTIONS = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="counting-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@dataclass
class Stack:
    """One issuer (behind its counting proxy) and one resource server."""

    env: dict[str, str]
    proxy: CountingProxy
    services: list[Service] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.env["ISSUER"]

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.proxy.stop()


def start_stack(redis_server, database: int, extra_env: dict[str, str]) -> Stack:
    """Start proxy, dev issuer and resource server with one shared environment."""
    issuer_port, api_port = free_port(), free_port()
    proxy = CountingProxy(issuer_port).start()
    env = {
        "ISSUER": f"{proxy.url}/oauth2/default",
        "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{database}",
        "API_URL": f"http://127.0.0.1:{api_port}",
        # Not started here, but validated by every process's settings.
        "SERVICE_BASE_URL": f"http://localhost:{free_port()}",
        "HTTP_TIMEOUT": "5",
        **extra_env,
    }
    stack = Stack(env, proxy)
    try:
        stack.services.append(
            gunicorn(
                f"service-issuer-{database}",
                "dev_issuer:create_app()",
                env,
                issuer_port,
                workers=2,
                health_path="/oauth2/default/.well-known/openid-configuration",
            ).start()
        )
        stack.services.append(
            gunicorn(
                f"service-api-{database}",
                "resource_server:create_app()",
                env,
                api_port,
                workers=2,
                health_path="/healthz",
            ).start()
        )
    except Exception:
        stack.stop()
        raise
    proxy.reset()
    return stack


@pytest.fixture(scope="session")
def secret_stack(redis_server):
    """The service client authenticates with client_secret_basic; tokens live 8 s."""
    stack = start_stack(redis_server, 5, {"DEV_ISSUER_ACCESS_TOKEN_LIFETIME": str(SHORT_TOKEN_LIFETIME)})
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def service_key(tmp_path_factory):
    """A private key for private_key_jwt, written like `keygen` writes one."""
    path = tmp_path_factory.mktemp("service-key") / "service.pem"
    path.write_bytes(private_key_pem(generate_private_key()))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def jwt_stack(redis_server, service_key):
    """The issuer knows the service's public key: the client uses private_key_jwt."""
    stack = start_stack(redis_server, 6, {"SERVICE_PRIVATE_KEY": str(service_key)})
    yield stack
    stack.stop()


@pytest.fixture
def secret_proxy(secret_stack):
    """The secret stack's proxy, counters reset for this test."""
    secret_stack.proxy.reset()
    return secret_stack.proxy


@pytest.fixture
def jwt_proxy(jwt_stack):
    """The private_key_jwt stack's proxy, counters reset for this test."""
    jwt_stack.proxy.reset()
    return jwt_stack.proxy
