"""Fixtures for the resource server: a test issuer we control, and the API under gunicorn.

The test issuer is a real HTTP server on a free loopback port (in a thread
of the test process) serving discovery, a JWKS and an introspection
endpoint.  It counts every request, so tests can assert what the resource
server fetched; tokens are minted here with PyJWT, an implementation
independent of the joserfc code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support import free_port, gunicorn

API_AUDIENCE = "api://default"
SERVICE_SCOPE = "customScope"
SPA_ORIGIN = "http://localhost:5902"
WEB_CLIENT_ID = "rs-test-web-app"
SERVICE_CLIENT_ID = "rs-test-service-app"
INTROSPECTION_CLIENT_ID = "rs-test-introspector"
INTROSPECTION_CLIENT_SECRET = "rs-test-introspector-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(private_key, kid: str) -> dict:
    jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class TestIssuer:
    """A minimal issuer: discovery, JWKS, introspection; every request counted.

    :ivar hits: requests per path (``/oauth2/default/v1/keys`` ...).
    :ivar active_tokens: token -> introspection answer; unknown tokens are inactive.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.base}/oauth2/default"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.published = [_public_jwk(self.key, self.kid)]
        self.hits: Counter[str] = Counter()
        self.introspection_auth: list[str | None] = []
        self.active_tokens: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- the HTTP side -----------------------------------------------------------

    @property
    def jwks_path(self) -> str:
        return "/oauth2/default/v1/keys"

    @property
    def introspection_path(self) -> str:
        return "/oauth2/default/v1/introspect"

    def metadata(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/v1/authorize",
            "token_endpoint": f"{self.issuer}/v1/token",
            "jwks_uri": f"{self.base}{self.jwks_path}",
            "introspection_endpoint": f"{self.base}{self.introspection_path}",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def start(self) -> "TestIssuer":
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _json(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0]
                with issuer._lock:
                    issuer.hits[path] += 1
                if path == "/oauth2/default/.well-known/openid-configuration":
                    self._json(200, issuer.metadata())
                elif path == issuer.jwks_path:
                    self._json(200, {"keys": list(issuer.published)})
                else:  # includes /attacker/* : counted, never useful
                    self._json(404, {"error": "not_found"})

            def do_POST(self):
                path = self.path.split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(
                    pair.split("=", 1) for pair in self.rfile.read(length).decode().split("&") if "=" in pair
                )
                with issuer._lock:
                    issuer.hits[path] += 1
                if path != issuer.introspection_path:
                    self._json(404, {"error": "not_found"})
                    return
                auth = self.headers.get("Authorization")
                issuer.introspection_auth.append(auth)
                expected = (
                    "Basic "
                    + base64.b64encode(
                        f"{INTROSPECTION_CLIENT_ID}:{INTROSPECTION_CLIENT_SECRET}".encode()
                    ).decode()
                )
                if auth != expected:
                    self._json(401, {"error": "invalid_client"})
                    return
                from urllib.parse import unquote_plus

                token = unquote_plus(form.get("token", ""))
                self._json(200, issuer.active_tokens.get(token, {"active": False}))

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def count(self, path: str) -> int:
        with self._lock:
            return self.hits[path]

    # -- minting tokens -------------------------------------------------------------

    def claims(self, **overrides) -> dict:
        """Okta-shaped access-token claims for a user of the web app; ``None`` removes a claim."""
        now = int(time.time())
        claims = {
            "ver": 1,
            "jti": "AT." + uuid.uuid4().hex,
            "iss": self.issuer,
            "aud": API_AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "cid": WEB_CLIENT_ID,
            "uid": "00u1",
            "scp": ["openid", "profile"],
            "sub": "testuser1@example.com",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        claims: dict | None = None,
        *,
        key=None,
        kid: str | None = "default",
        alg: str = "RS256",
        headers: dict | None = None,
    ) -> str:
        """Sign ``claims`` (default: :meth:`claims`) with the issuer key, or ``key``."""
        header = {"typ": "JWT"}
        if kid is not None:
            header["kid"] = self.kid if kid == "default" else kid
        header.update(headers or {})
        return jwt.encode(
            self.claims() if claims is None else claims, key or self.key, algorithm=alg, headers=header
        )

    def rfc9068_claims(self, **overrides) -> dict:
        """RFC 9068 §2.2 claims: ``client_id`` and a space-separated ``scope``, no Okta names."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "exp": now + 300,
            "aud": API_AUDIENCE,
            "sub": SERVICE_CLIENT_ID,
            "client_id": SERVICE_CLIENT_ID,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "scope": SERVICE_SCOPE,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def forge(self, header: dict, claims: dict, signature: bytes = b"") -> str:
        """A compact JWS with arbitrary header, claims and signature bytes (for hostile tokens)."""
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        return signing_input + "." + _b64(signature)

    def hs256_with_public_key(self, claims: dict) -> str:
        """The classic key-confusion attack: HMAC-"sign" with the issuer's public key as secret."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        secret = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


@pytest.fixture(scope="session")
def test_issuer():
    """The issuer the resource server trusts in these tests."""
    issuer = TestIssuer().start()
    yield issuer
    issuer.stop()


def api_env(issuer: TestIssuer, **extra) -> dict[str, str]:
    """The contract variables for a resource server trusting ``issuer``."""
    return {
        "ISSUER": issuer.issuer,
        "API_AUDIENCE": API_AUDIENCE,
        "SERVICE_SCOPE": SERVICE_SCOPE,
        "SPA_BASE_URL": SPA_ORIGIN,
        "WEB_CLIENT_ID": WEB_CLIENT_ID,
        "SERVICE_CLIENT_ID": SERVICE_CLIENT_ID,
        "CLOCK_LEEWAY": "30",
        "HTTP_TIMEOUT": "3",
        **extra,
    }


#: gunicorn's default header limit (8190 bytes) would refuse a token just
#: over our own 8192-character limit before it reaches the app; raising it
#: here lets the tests see the app's own check.  The megabyte token is still
#: refused by gunicorn itself, as in production.
HEADER_LIMIT = ["--limit-request-field_size", "32768"]


@pytest.fixture(scope="session")
def api(test_issuer):
    """The resource server (JWT mode) under gunicorn with two workers."""
    service = gunicorn(
        "resource_server-jwt",
        "resource_server:create_app()",
        api_env(test_issuer),
        free_port(),
        workers=2,
        health_path="/healthz",
        extra=HEADER_LIMIT,
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def introspecting_api(test_issuer):
    """The resource server in introspection mode, one worker (so its cache is one cache)."""
    env = api_env(
        test_issuer,
        API_VALIDATION="introspection",
        API_INTROSPECTION_CLIENT_ID=INTROSPECTION_CLIENT_ID,
        API_INTROSPECTION_CLIENT_SECRET=INTROSPECTION_CLIENT_SECRET,
    )
    service = gunicorn(
        "resource_server-introspection",
        "resource_server:create_app()",
        env,
        free_port(),
        workers=1,
        health_path="/healthz",
    ).start()
    yield service
    service.stop()
