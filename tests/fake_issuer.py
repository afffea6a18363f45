"""A scriptable OpenID Provider for tests only: a real HTTP server on 127.0.0.1.

Every client test that must see an issuer misbehave uses this instead of the
dev issuer: it speaks real HTTP on a free loopback port, has its own RSA keys
and, by default, answers like a compliant Okta-shaped provider
(``{base}/oauth2/default``, ``/v1/authorize``, ``/v1/token``, ``/v1/keys`` ...).
Each answer can be scripted per test:

* ``issuer.discovery_overrides`` — change or remove (value ``None``) discovery fields;
* ``issuer.script(endpoint, Reply(...) | callable, times=None)`` — answer an
  endpoint with anything (a 500, an HTML page, a hang via ``delay``, a JSON body);
  helpers :meth:`FakeIssuer.fail`, :meth:`FakeIssuer.html`, :meth:`FakeIssuer.hang`;
* ``issuer.publish(*keys)`` / :meth:`FakeIssuer.rotate` — what ``/v1/keys`` shows
  and which key signs; :func:`new_rsa_key` / :func:`new_ec_key` make keys;
* ``issuer.id_token_claims`` / ``id_token_header`` / ``id_token_key`` and
  ``issuer.token_extra`` — tamper with what the token endpoint issues
  (a value of ``None`` removes a member);
* :meth:`FakeIssuer.mint_id_token` / :meth:`FakeIssuer.mint_access_token` /
  :meth:`FakeIssuer.mint_text` / :func:`unsigned_token` / :func:`hs256_token` —
  make arbitrary tokens; :func:`weak_rsa_key` — a 1024-bit key;
* ``issuer.counts[endpoint]`` and ``issuer.requests`` — what was asked;
* ``issuer.authorize_hook`` — rewrite the authorization response's parameters
  (drop ``state``, a wrong ``iss``, an ``error``...) before the redirect;
* ``issuer.id_token_transform`` — turn the ID token's claims into any token
  (``alg: none``, HS256 with the public key ...) at the token endpoint and in
  the Implicit response;
* ``issuer.cors_origins`` — origins allowed to read the answers (a browser SPA);
* ``api`` (``/api/messages``, ``/api/custom``) — a counting stand-in for the
  resource server (200 for a token this issuer issued, else 401);
* :meth:`FakeIssuer.restore` — back to the compliant defaults (for an issuer
  shared by several tests).

Endpoint names: ``discovery``, ``jwks``, ``authorize``, ``token``, ``userinfo``,
``revoke``, ``introspect``, ``end_session`` (and ``api``).

Usage::

    def test_x(fake_issuer):
        fake_issuer.fail("token", 503)
        issuer = Issuer(load_settings({"ISSUER": fake_issuer.issuer}))
        client = Client(issuer, client_id=fake_issuer.client_id, ...)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey, import_key

from common.jwks import token_hash

PATHS = {
    "/oauth2/default/.well-known/openid-configuration": "discovery",
    "/oauth2/default/v1/keys": "jwks",
    "/oauth2/default/v1/authorize": "authorize",
    "/oauth2/default/v1/token": "token",
    "/oauth2/default/v1/userinfo": "userinfo",
    "/oauth2/default/v1/revoke": "revoke",
    "/oauth2/default/v1/introspect": "introspect",
    "/oauth2/default/v1/logout": "end_session",
    # RFC 9126: not advertised unless a test says so (discovery_overrides) and scripts its answers.
    "/oauth2/default/v1/par": "par",
    # Not the issuer's: a tiny counting stand-in for the resource server, so a
    # test can point API_URL here and assert that no API call was made.
    "/api/messages": "api",
    "/api/custom": "api",
}

_KEY_CACHE: list[RSAKey] = []
_IMPORTED: dict[tuple[int, str], RSAKey] = {}
_WEAK: dict[str, RSAKey] = {}


def new_rsa_key(kid: str | None = None) -> RSAKey:
    """An RSA 2048 private key with ``kid`` (defaults to its thumbprint)."""
    key = RSAKey.generate_key(2048, private=True)
    return import_key({**key.as_dict(private=True), "kid": kid or key.thumbprint()})


def cached_rsa_key(index: int, kid: str) -> RSAKey:
    """One of a few RSA keys generated once per test session (key generation is slow)."""
    while len(_KEY_CACHE) <= index:
        _KEY_CACHE.append(RSAKey.generate_key(2048, private=True))
    if (index, kid) not in _IMPORTED:
        # Importing a private RSA key validates it, which is slow: do it once.
        _IMPORTED[(index, kid)] = import_key({**_KEY_CACHE[index].as_dict(private=True), "kid": kid})
    return _IMPORTED[(index, kid)]


def weak_rsa_key(kid: str = "weak-1024") -> RSAKey:
    """An RSA key of 1024 bits, below RFC 7518 §3.3's minimum (made once per test session)."""
    if kid not in _WEAK:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns about the size (an error under pytest)
            key = RSAKey.generate_key(1024, private=True)
            _WEAK[kid] = import_key({**key.as_dict(private=True), "kid": kid})
    return _WEAK[kid]


def new_ec_key(kid: str | None = None) -> ECKey:
    """An EC P-256 private key with ``kid``."""
    key = ECKey.generate_key("P-256", private=True)
    return import_key({**key.as_dict(private=True), "kid": kid or key.thumbprint()})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(value: Any) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def unsigned_token(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A JWT with any header (``alg: none`` ...) and a raw signature: for hostile-token tests."""
    return f"{_b64json(header)}.{_b64json(claims)}.{_b64(signature)}"


def hs256_token(claims: dict, secret: bytes, header: dict | None = None) -> str:
    """An HS256 JWT with ``secret`` (e.g. the issuer's public key PEM: the alg-confusion attack)."""
    header = {"alg": "HS256", "typ": "JWT", **(header or {})}
    signing_input = f"{_b64json(header)}.{_b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass
class Reply:
    """A scripted answer.

    :param status: HTTP status.
    :param body: a dict/list (sent as JSON), str or bytes.
    :param headers: extra headers (``Content-Type`` defaults from the body type).
    :param delay: seconds to sleep before answering (a hang, for timeout tests).
    """

    status: int = 200
    body: Any = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class FakeRequest:
    """What the fake issuer received."""

    endpoint: str
    method: str
    path: str
    query: dict
    form: dict
    headers: dict

    @property
    def params(self) -> dict:
        """Query and form parameters together."""
        return {**self.query, **self.form}


class FakeIssuer:
    """The scriptable provider; start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.port = 0
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.requests: list[FakeRequest] = []
        self.scripts: dict[str, list] = {}
        self.discovery_overrides: dict[str, Any] = {}
        self.key = cached_rsa_key(0, "fake-key-1")
        self.signing_key = self.key
        self.published: list = [self.key]
        # client registrations: id -> {"secret": str | None, "jwk": dict | None}
        self.client_id = "test-client"
        self.client_secret = "test-client-secret"
        self.clients: dict[str, dict] = {
            self.client_id: {"secret": self.client_secret, "jwk": None},
            "public-client": {"secret": None, "jwk": None},
        }
        self.user = {
            "sub": "00u-fake-user-1",
            "name": "Test User",
            "email": "testuser1@example.com",
            "preferred_username": "testuser1@example.com",
        }
        self.password = "fake-password"
        self.send_iss = True  # RFC 9207 iss on the authorization response
        self.rotate_refresh_tokens = True
        self.id_token_claims: dict[str, Any] = {}
        self.id_token_header: dict[str, Any] = {}
        self.id_token_key = None
        self.token_extra: dict[str, Any] = {}
        self.access_token_extra: dict[str, Any] = {}  # claims added to the next access tokens (cnf ...)
        self.userinfo_claims: dict[str, Any] | None = None
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.access_tokens: set[str] = set()
        self.revoked: list[str] = []
        self.assertions: list[dict] = []  # verified private_key_jwt claims
        self.authorize_hook: Callable[[dict], dict] | None = None
        self.id_token_transform: Callable[[dict], str] | None = None
        self.cors_origins: set[str] = set()
        self.issued_id_tokens: list[str] = []

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> "FakeIssuer":
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                issuer._dispatch(self, "GET")

            def do_POST(self):
                issuer._dispatch(self, "POST")

            def do_OPTIONS(self):
                issuer._dispatch(self, "OPTIONS")

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request, client_address):
                pass  # a client that timed out and hung up is expected here

        self.server = Server((self.host, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        """The issuer identifier (what ``ISSUER`` must be set to)."""
        return f"{self.base_url}/oauth2/default"

    def url(self, endpoint: str) -> str:
        """The URL of an endpoint by name."""
        for path, name in PATHS.items():
            if name == endpoint:
                return self.base_url + path
        raise KeyError(endpoint)

    # -- scripting ------------------------------------------------------------

    def script(
        self, endpoint: str, reply: Reply | Callable[[FakeRequest], Reply | None], times: int | None = None
    ) -> None:
        """Answer ``endpoint`` with ``reply`` (or ``reply(request)``; ``None`` falls through
        to the default behaviour), the next ``times`` requests or for ever."""
        if endpoint not in PATHS.values():
            raise KeyError(endpoint)
        self.scripts.setdefault(endpoint, []).append([reply, times])

    def reset(self, endpoint: str | None = None) -> None:
        """Remove scripts (of one endpoint, or all)."""
        if endpoint is None:
            self.scripts.clear()
        else:
            self.scripts.pop(endpoint, None)

    def fail(self, endpoint: str, status: int = 500, times: int | None = None) -> None:
        """Answer with a JSON-less server error."""
        self.script(endpoint, Reply(status, "Internal Server Error", {"Content-Type": "text/plain"}), times)

    def html(self, endpoint: str, status: int = 200, times: int | None = None) -> None:
        """Answer with an HTML page (a captive portal or proxy error page)."""
        self.script(
            endpoint,
            Reply(
                status,
                "<!doctype html><html><body><h1>Welcome</h1></body></html>",
                {"Content-Type": "text/html"},
            ),
            times,
        )

    def hang(self, endpoint: str, seconds: float = 3.0, times: int | None = None) -> None:
        """Answer only after ``seconds`` (longer than the client's timeout)."""
        self.script(endpoint, Reply(200, {}, delay=seconds), times)

    def restore(self) -> None:
        """Back to a compliant provider with fresh counters (an issuer shared by several tests)."""
        with self.lock:
            self.scripts.clear()
            self.counts.clear()
            self.requests.clear()
        self.discovery_overrides = {}
        self.signing_key = self.key
        self.published = [self.key]
        self.send_iss = True
        self.rotate_refresh_tokens = True
        self.id_token_claims, self.id_token_header, self.id_token_key = {}, {}, None
        self.token_extra = {}
        self.access_token_extra = {}
        self.userinfo_claims = None
        self.authorize_hook = None
        self.id_token_transform = None
        self.issued_id_tokens = []

    def count(self, endpoint: str) -> int:
        return self.counts[endpoint]

    def last(self, endpoint: str) -> FakeRequest:
        """The most recent request to ``endpoint``."""
        return [r for r in self.requests if r.endpoint == endpoint][-1]

    # -- keys -----------------------------------------------------------------

    def publish(self, *keys) -> None:
        """Make ``/v1/keys`` show exactly these keys (public parts)."""
        self.published = list(keys)

    def rotate(self, key=None):
        """Publish a new key next to the old ones and sign with it from now on."""
        key = key or cached_rsa_key(len(self.published) + 1, f"fake-key-{len(self.published) + 1}")
        self.published = [*self.published, key]
        self.signing_key = key
        return key

    def jwks(self) -> dict:
        return {
            "keys": [{**k.as_dict(private=False), "use": "sig", "alg": _alg_for(k)} for k in self.published]
        }

    # -- tokens ---------------------------------------------------------------

    def mint(self, claims: dict, header: dict | None = None, key=None) -> str:
        """Sign ``claims`` with ``key`` (default: the current signing key)."""
        key = key or self.signing_key
        hdr = {"alg": _alg_for(key), "kid": key.kid, **(header or {})}
        hdr = {k: v for k, v in hdr.items() if v is not None}
        return jwt.encode(
            hdr, {k: v for k, v in claims.items() if v is not None}, key, algorithms=[hdr["alg"]]
        )

    def mint_text(self, payload: str, header: dict | None = None, key=None) -> str:
        """An RS256 JWS over exactly the JSON text ``payload``, e.g. with ``1e400``, which
        json.dumps cannot write (signed with ``cryptography`` directly, RSA keys only)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key = key or self.signing_key
        head = _b64json({"alg": "RS256", "kid": key.kid, **(header or {})})
        signing_input = f"{head}.{_b64(payload.encode())}"
        signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def id_token_defaults(self, **claims) -> dict:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": self.user["sub"],
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "name": self.user["name"],
            "email": self.user["email"],
            **claims,
        }

    def mint_id_token(self, claims: dict | None = None, header: dict | None = None, key=None, **kw) -> str:
        """An ID token: sensible defaults overridden by ``claims`` (``None`` removes a claim)."""
        return self.mint({**self.id_token_defaults(), **(claims or {}), **kw}, header, key)

    def mint_access_token(
        self, claims: dict | None = None, header: dict | None = None, key=None, **kw
    ) -> str:
        """An Okta-shaped access token (``api://default`` audience, ``scp``, ``cid``)."""
        now = int(time.time())
        base = {
            "ver": 1,
            "jti": "AT." + secrets.token_urlsafe(8),
            "iss": self.issuer,
            "aud": "api://default",
            "iat": now,
            "exp": now + 3600,
            "cid": self.client_id,
            "uid": self.user["sub"],
            "scp": ["openid"],
            "sub": self.user["email"],
        }
        token = self.mint({**base, **(claims or {}), **kw}, header, key)
        self.access_tokens.add(token)
        return token

    # -- HTTP -------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        try:
            parts = urlsplit(handler.path)
            endpoint = PATHS.get(parts.path, "unknown")
            length = int(handler.headers.get("Content-Length") or 0)
            raw = handler.rfile.read(length) if length else b""
            form = (
                dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
                if "form-urlencoded" in handler.headers.get("Content-Type", "")
                else {}
            )
            request = FakeRequest(
                endpoint,
                method,
                parts.path,
                dict(parse_qsl(parts.query, keep_blank_values=True)),
                form,
                {k: v for k, v in handler.headers.items()},
            )
            with self.lock:
                self.counts[endpoint] += 1
                self.requests.append(request)
            if method == "OPTIONS":
                # A CORS preflight (Fetch standard): allow what the SPA sends.
                reply = Reply(
                    204,
                    b"",
                    {
                        "Access-Control-Allow-Methods": "GET, POST",
                        "Access-Control-Allow-Headers": "Content-Type, Accept, Authorization",
                    },
                )
            else:
                reply = self._scripted(endpoint, request) or self._default(endpoint, request)
            origin = request.headers.get("Origin")
            if origin and origin in self.cors_origins:
                reply = Reply(
                    reply.status,
                    reply.body,
                    {**reply.headers, "Access-Control-Allow-Origin": origin, "Vary": "Origin"},
                    reply.delay,
                )
            if reply.delay:
                time.sleep(reply.delay)
            self._send(handler, reply)
        except Exception as exc:  # noqa: BLE001 - never let a handler thread raise in tests
            try:
                self._send(handler, Reply(500, {"error": "fake_issuer_bug", "error_description": repr(exc)}))
            except Exception:  # noqa: BLE001
                pass

    def _scripted(self, endpoint: str, request: FakeRequest) -> Reply | None:
        with self.lock:
            entries = self.scripts.get(endpoint, [])
            for entry in list(entries):
                reply, times = entry
                if times is not None:
                    if times <= 0:
                        continue
                    entry[1] = times - 1
                break
            else:
                return None
        return reply(request) if callable(reply) else reply

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        body = reply.body
        headers = dict(reply.headers)
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            data = body or b""
        handler.send_response(reply.status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        handler.wfile.write(data)

    # -- default (compliant) behaviour ---------------------------------------------

    def discovery(self) -> dict:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("authorize"),
            "token_endpoint": self.url("token"),
            "jwks_uri": self.url("jwks"),
            "userinfo_endpoint": self.url("userinfo"),
            "revocation_endpoint": self.url("revoke"),
            "introspection_endpoint": self.url("introspect"),
            "end_session_endpoint": self.url("end_session"),
            "response_types_supported": ["code", "token", "id_token", "id_token token"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "password",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
                "private_key_jwt",
            ],
            "scopes_supported": ["openid", "profile", "email", "offline_access", "customScope"],
            "authorization_response_iss_parameter_supported": True,
        }
        doc.update(self.discovery_overrides)
        return {k: v for k, v in doc.items() if v is not None}

    def _default(self, endpoint: str, request: FakeRequest) -> Reply:
        if endpoint == "discovery":
            return Reply(200, self.discovery())
        if endpoint == "jwks":
            return Reply(200, self.jwks())
        if endpoint == "authorize":
            return self._authorize(request)
        if endpoint == "token" and request.method == "POST":
            return self._token(request)
        if endpoint == "userinfo":
            return self._userinfo(request)
        if endpoint == "revoke" and request.method == "POST":
            token = request.form.get("token", "")
            self.revoked.append(token)
            self.refresh_tokens.pop(token, None)
            return Reply(200, "")
        if endpoint == "introspect" and request.method == "POST":
            token = request.form.get("token", "")
            active = token in self.access_tokens or token in self.refresh_tokens
            return Reply(
                200,
                {"active": True, "client_id": self.client_id, "sub": self.user["sub"]}
                if active
                else {"active": False},
            )
        if endpoint == "api":
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer ") and auth[7:] in self.access_tokens:
                return Reply(200, {"messages": [{"text": "hello from the fake API"}]})
            return Reply(
                401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        if endpoint == "end_session":
            target = request.query.get("post_logout_redirect_uri")
            if not target:
                return Reply(200, "<html>signed out</html>", {"Content-Type": "text/html"})
            state = request.query.get("state")
            return Reply(302, "", {"Location": target + ("?" + urlencode({"state": state}) if state else "")})
        return Reply(404, {"error": "not_found"})

    def _authorize(self, request: FakeRequest) -> Reply:
        """Sign the (fake) user in at once and redirect back with a code (RFC 6749 §4.1.2)."""
        q = request.query
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") not in self.clients or not redirect_uri:
            return Reply(
                400, {"error": "invalid_request", "error_description": "unknown client or no redirect_uri"}
            )
        response_types = set(q.get("response_type", "code").split())
        if "code" not in response_types and "id_token" in response_types:
            # The Implicit flow (OIDC Core 3.2.2.5): tokens in the fragment.
            access_token = self.mint_access_token({"cid": q["client_id"], "scp": q.get("scope", "").split()})
            claims = self.id_token_defaults(
                aud=q["client_id"],
                nonce=q.get("nonce"),
                at_hash=token_hash(access_token, _alg_for(self.id_token_key or self.signing_key)),
            )
            claims.update(self.id_token_claims)
            params = {"id_token": self._id_token(claims), "state": q.get("state", "")}
            if "token" in response_types:
                params.update(access_token=access_token, token_type="Bearer", expires_in="3600")
            if self.send_iss:
                params["iss"] = self.issuer  # RFC 9207 §2: on every authorization response
            if self.authorize_hook is not None:
                params = self.authorize_hook(params)
            return Reply(302, "", {"Location": f"{redirect_uri}#{urlencode(params)}"})
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "client_id": q["client_id"],
            "redirect_uri": redirect_uri,
            "nonce": q.get("nonce"),
            "code_challenge": q.get("code_challenge"),
            "scope": q.get("scope", ""),
        }
        params = {"code": code, "state": q.get("state", "")}
        if self.send_iss:
            params["iss"] = self.issuer
        if self.authorize_hook is not None:
            params = self.authorize_hook(params)
        return Reply(
            302, "", {"Location": f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(params)}"}
        )

    def _id_token(self, claims: dict) -> str:
        """The ID token for ``claims``: signed as configured, or as ``id_token_transform`` makes it."""
        if self.id_token_transform is not None:
            token = self.id_token_transform({k: v for k, v in claims.items() if v is not None})
        else:
            token = self.mint(claims, self.id_token_header, self.id_token_key)
        self.issued_id_tokens.append(token)
        return token

    def authorize(self, authorization_url: str) -> dict:
        """Follow an authorization URL as a browser would; return the callback's parameters."""
        response = requests.get(authorization_url, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text
        return dict(parse_qsl(urlsplit(response.headers["Location"]).query))

    def _authenticate_client(self, request: FakeRequest) -> str | None:
        """RFC 6749 §2.3 / RFC 7523: return the client id, or None when authentication fails."""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            reg = self.clients.get(client_id)
            return client_id if reg and reg["secret"] and hmac.compare_digest(reg["secret"], secret) else None
        form = request.form
        if form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            reg = self.clients.get(form.get("client_id", ""))
            if not reg or not reg.get("jwk"):
                return None
            try:
                obj = jws.deserialize_compact(
                    form["client_assertion"], import_key(reg["jwk"]), algorithms=["RS256", "ES256"]
                )
            except Exception:  # noqa: BLE001
                return None
            claims = json.loads(obj.payload)
            self.assertions.append({"header": obj.headers(), "claims": claims})
            now = time.time()
            if (
                claims.get("iss") != form["client_id"]
                or claims.get("sub") != form["client_id"]
                or claims.get("aud") != self.url("token")
                or not claims.get("jti")
                or claims.get("exp", 0) < now
            ):
                return None
            return form["client_id"]
        client_id = form.get("client_id", "")
        reg = self.clients.get(client_id)
        if reg is None:
            return None
        if reg["secret"]:
            return client_id if hmac.compare_digest(reg["secret"], form.get("client_secret", "")) else None
        return client_id

    def _token(self, request: FakeRequest) -> Reply:
        form = request.form
        client_id = self._authenticate_client(request)
        if client_id is None:
            return Reply(
                401, {"error": "invalid_client", "error_description": "client authentication failed"}
            )
        grant = form.get("grant_type")
        nonce, scope, sub_claims = None, form.get("scope", ""), True
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            if (
                code is None
                or code["client_id"] != client_id
                or code["redirect_uri"] != form.get("redirect_uri")
            ):
                return Reply(400, {"error": "invalid_grant", "error_description": "bad code"})
            verifier = form.get("code_verifier", "")
            challenge = _b64(hashlib.sha256(verifier.encode()).digest())
            if code["code_challenge"] and challenge != code["code_challenge"]:
                return Reply(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
            nonce, scope = code["nonce"], code["scope"]
        elif grant == "refresh_token":
            old = self.refresh_tokens.get(form.get("refresh_token", ""))
            if old is None:
                return Reply(400, {"error": "invalid_grant", "error_description": "bad refresh token"})
            scope = old["scope"]
            if self.rotate_refresh_tokens:
                self.refresh_tokens.pop(form["refresh_token"])
        elif grant == "client_credentials":
            sub_claims = False
        elif grant == "password":
            if form.get("username") != self.user["email"] or form.get("password") != self.password:
                return Reply(
                    400, {"error": "invalid_grant", "error_description": "wrong username or password"}
                )
        else:
            return Reply(400, {"error": "unsupported_grant_type"})

        access_token = self.mint_access_token(
            {
                "cid": client_id,
                "scp": scope.split(),
                **({} if sub_claims else {"sub": client_id, "uid": None}),
                **self.access_token_extra,
            }
        )
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scope,
        }
        if sub_claims and "offline_access" in scope.split() or grant == "refresh_token":
            if grant == "refresh_token" and not self.rotate_refresh_tokens:
                pass
            else:
                refresh = secrets.token_urlsafe(24)
                self.refresh_tokens[refresh] = {"scope": scope, "client_id": client_id}
                body["refresh_token"] = refresh
        if sub_claims and "openid" in scope.split():
            claims = self.id_token_defaults(
                aud=client_id,
                nonce=nonce,
                at_hash=token_hash(access_token, _alg_for(self.id_token_key or self.signing_key)),
            )
            claims.update(self.id_token_claims)
            body["id_token"] = self._id_token(claims)
        body.update(self.token_extra)
        return Reply(200, {k: v for k, v in body.items() if v is not None})

    def _userinfo(self, request: FakeRequest) -> Reply:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.access_tokens:
            return Reply(
                401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return Reply(200, self.userinfo_claims if self.userinfo_claims is not None else dict(self.user))


def _alg_for(key) -> str:
    return "ES256" if key.key_type == "EC" else "RS256"
