"""Outbound HTTP rules (common/http.py): timeouts and the transport check."""

from __future__ import annotations

import time

import pytest

from common.config import load_settings
from common.errors import FlowError
from common.http import IssuerUnreachable, get_json, http_session, is_local_or_test_host, require_secure_url


@pytest.mark.parametrize(
    "host,ok",
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("issuer.test", True),
        ("example.com", False),
        ("10.0.0.1", False),
        ("test.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_local_or_test_host(host, ok):
    assert is_local_or_test_host(host) is ok


@pytest.mark.parametrize(
    "url,ok",
    [
        ("https://example.com/token", True),
        ("http://localhost:9000/token", True),
        ("http://[::1]:9000/t", True),
        ("http://issuer.test/t", True),
        ("http://example.com/token", False),
        ("ftp://example.com/", False),
        ("javascript:alert(1)", False),
        ("", False),
    ],
)
def test_require_secure_url(url, ok):
    if ok:
        assert require_secure_url(url, "endpoint") == url
    else:
        with pytest.raises(FlowError) as info:
            require_secure_url(url, "endpoint")
        assert info.value.error == "issuer_misconfigured"


def test_session_has_default_timeout_and_user_agent(fake_issuer):
    http = http_session(load_settings({"HTTP_TIMEOUT": "0.3"}))
    assert http.timeout == 0.3
    fake_issuer.hang("discovery", 2)
    started = time.monotonic()
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http, fake_issuer.url("discovery"), "discovery document")
    assert time.monotonic() - started < 1.5
    assert info.value.status == 502 and "in time" in info.value.description
    fake_issuer.reset()
    get_json(http, fake_issuer.url("discovery"), "discovery document")
    assert "oauth-flask-samples" in fake_issuer.last("discovery").headers["User-Agent"]


def test_connection_refused_is_issuer_unreachable():
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=0.5), "http://127.0.0.1:9/x", "discovery document")
    assert info.value.error == "issuer_unreachable"


class TricklingServer:
    """A loopback HTTP server answering every request with ``head``, then ``body`` at ``delay`` per chunk.

    It stops sending when the client goes away or :meth:`stop` is called, so
    a test never outlives it by more than one delay.
    """

    def __init__(self, head: bytes, body: bytes, *, chunk: int = 1, delay: float = 0.0):
        import socket
        import threading

        self.head, self.body, self.chunk, self.delay = head, body, chunk, delay
        self.sent = 0
        self.client_left = False
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)  # the request (small, one read is enough on loopback)
                try:
                    conn.sendall(self.head)
                    for start in range(0, len(self.body), self.chunk):
                        if self.stopped.wait(self.delay):
                            break
                        conn.sendall(self.body[start : start + self.chunk])
                        self.sent += len(self.body[start : start + self.chunk])
                except OSError:
                    self.client_left = True

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def trickle():
    servers = []

    def start(head: bytes, body: bytes, **kw) -> TricklingServer:
        servers.append(TricklingServer(head, body, **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _head(status: str = "200 OK", **headers) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        "Connection: close",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_trickling_answer_is_cut_at_the_deadline(trickle):
    """One byte every 0.2 s never trips a per-read timeout of 0.5 s; the total deadline does.

    Before the deadline this took the whole 40 bytes x 0.2 s = 8 s.
    """
    from common.http import DEADLINE_FACTOR

    body = b'{"keys": [' + b" " * 28 + b"]}"
    server = trickle(_head(Content_Length=len(body)), body, delay=0.2)
    started = time.monotonic()
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=0.5), server.url, "JWKS")
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE_FACTOR * 0.5 + 0.5, elapsed
    assert "in time" in info.value.description


def test_a_trickling_redirect_body_is_under_the_same_deadline(trickle):
    """requests reads a redirect's body itself; that read is bounded as well."""
    body = b"x" * 40
    server = trickle(
        _head("302 Found", Location="http://127.0.0.1:9/never", Content_Length=len(body)), body, delay=0.2
    )
    started = time.monotonic()
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=0.5), server.url, "discovery document")
    assert time.monotonic() - started < 1.5
    assert "in time" in info.value.description


def test_a_fast_answer_over_the_cap_is_cut_before_it_is_all_read(trickle):
    """An endless body is refused once MAX_RESPONSE_BYTES is passed, not after downloading it all."""
    from common.http import MAX_RESPONSE_BYTES

    body = b"[" + b"0," * (16 * 1024 * 1024)  # 32 MiB without a Content-Length
    server = trickle(_head(), body, chunk=64 * 1024)
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=2.0), server.url, "JWKS")
    assert "oversized" in info.value.description
    waited = time.monotonic()
    while not server.client_left and time.monotonic() - waited < 5:
        time.sleep(0.02)
    assert server.client_left and server.sent < len(body) / 2
    assert server.sent > MAX_RESPONSE_BYTES  # it did read up to the cap


def test_a_declared_oversized_answer_is_refused_unread(trickle):
    server = trickle(_head(Content_Length=10 * 1024 * 1024), b"{", delay=0.2)
    started = time.monotonic()
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=0.5), server.url, "JWKS")
    assert "oversized" in info.value.description and time.monotonic() - started < 0.5


def test_a_compressed_answer_is_capped_after_decoding(trickle):
    """A gzip bomb: 10 MiB of JSON that travels as about 10 KiB."""
    import gzip

    body = gzip.compress(b'{"a": "' + b"0" * (10 * 1024 * 1024) + b'"}')
    server = trickle(_head(Content_Encoding="gzip", Content_Length=len(body)), body, chunk=len(body))
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=2.0), server.url, "JWKS")
    assert "oversized" in info.value.description


def test_bounded_reading_keeps_answers_intact(trickle, fake_issuer):
    """Normal answers still come through whole, compressed or not, and the connection is reused."""
    import gzip

    payload = b'{"keys": [], "note": "' + b"k" * 100_000 + b'"}'
    body = gzip.compress(payload)
    server = trickle(_head(Content_Encoding="gzip", Content_Length=len(body)), body, chunk=4096)
    assert len(get_json(http_session(timeout=2.0), server.url, "JWKS")["note"]) == 100_000
    http = http_session(timeout=2.0)
    for _ in range(3):
        discovery = get_json(http, fake_issuer.url("discovery"), "discovery document")
        assert discovery["issuer"] == fake_issuer.issuer


def test_deeply_nested_json_answer_is_issuer_unreachable(trickle):
    """JSON nested thousands deep is small, but json.loads answers it with RecursionError."""
    body = b"[" * 100_000 + b"]" * 100_000
    server = trickle(_head(Content_Length=len(body)), body, chunk=len(body))
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=2.0), server.url, "JWKS")
    assert "JSON" in info.value.description


def test_one_session_shared_by_many_threads_reuses_connections_safely(fake_issuer):
    """Apps share one session across gunicorn threads and the service's worker
    threads: the bounded body reader must never touch a pooled connection's
    socket after urllib3 has handed it to another thread (a closed socket's
    settimeout raised EBADF there)."""
    from concurrent.futures import ThreadPoolExecutor

    http = http_session(timeout=5.0)
    url = fake_issuer.url("jwks")

    def fetch_many(_):
        return [http.get(url).status_code for _ in range(40)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = [status for batch in pool.map(fetch_many, range(16)) for status in batch]
    assert results == [200] * 640


# -- the bounded reader stands on public requests / urllib3 API only -------------------------


class KeepAliveServer:
    """A loopback HTTP/1.1 server that keeps connections open and sets and echoes cookies.

    ``/set-cookie`` sets ``sid=abc``; ``/redirect`` sets ``hop=1`` and redirects to
    ``/echo``, which answers the Cookie header it got as JSON.  ``connections``
    counts the TCP connections accepted.
    """

    def __init__(self):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                owner.connections += 1
                super().setup()

            def log_message(self, *args):
                pass

            def do_GET(self):
                headers = {"Content-Type": "application/json; charset=utf-8"}
                status, body = 200, json.dumps({"path": self.path, "cookie": self.headers.get("Cookie")})
                if self.path == "/set-cookie":
                    headers["Set-Cookie"] = "sid=abc; Path=/"
                elif self.path == "/redirect":
                    status, body = 302, "moved"
                    headers.update({"Set-Cookie": "hop=1; Path=/", "Location": "/echo"})
                payload = body.encode()
                self.send_response(status, "Moved" if status == 302 else "Fine")
                for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def keep_alive():
    server = KeepAliveServer()
    yield server
    server.stop()


def test_a_bounded_answer_is_a_whole_requests_response(keep_alive):
    """Callers get an ordinary requests.Response: every attribute they use works as before."""
    import requests

    response = http_session(timeout=2.0).get(keep_alive.url + "/plain?x=1")
    assert isinstance(response, requests.Response)
    assert response.status_code == 200 and response.ok and response.reason == "Fine"
    assert response.url == keep_alive.url + "/plain?x=1"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"path": "/plain?x=1", "cookie": None}
    assert response.content == response.text.encode() and response.encoding == "utf-8"
    response.raise_for_status()


def test_bounded_reading_returns_connections_to_the_pool(keep_alive):
    """Read to the end, the connection goes back to urllib3's pool and is used again."""
    http = http_session(timeout=2.0)
    for n in range(5):
        assert http.get(f"{keep_alive.url}/n{n}").json()["path"] == f"/n{n}"
    assert keep_alive.connections == 1


def test_cookies_still_reach_the_session_and_follow_redirects(keep_alive):
    """requests takes cookies from ``response.raw`` after the hook has replaced it; the hook
    hands them to the session's jar first, so cookies behave exactly as without the reader
    (here with redirects followed on request: by default none is)."""
    http = http_session(timeout=2.0)
    http.get(keep_alive.url + "/set-cookie")
    assert http.cookies.get("sid") == "abc"
    answer = http.get(keep_alive.url + "/redirect", allow_redirects=True)
    assert [hop.status_code for hop in answer.history] == [302]
    assert answer.json()["path"] == "/echo"
    assert sorted(answer.json()["cookie"].split("; ")) == ["hop=1", "sid=abc"]
    assert http.cookies.get("hop") == "1"


def test_requests_and_urllib3_behave_as_the_bounded_reader_expects(keep_alive):
    """Pins the dependency behaviour common/http.py relies on, so that an upgrade changing it
    fails here: requests runs response hooks before it reads a non-streamed body (the hook sees
    an unread urllib3 response with ``read1`` and ``release_conn``), takes the hook's answer,
    and reads ``.content`` from whatever file-like object ``Response.raw`` then is."""
    import io

    import requests
    import urllib3

    seen = {}

    def hook(response, **_):
        methods = (getattr(response.raw, name, None) for name in ("read1", "release_conn"))
        seen.update(raw=type(response.raw), unread=response.raw.tell() == 0, api=all(map(callable, methods)))
        response.raw = io.BytesIO(b'{"replaced": true}')
        return response

    answer = requests.Session().get(keep_alive.url + "/x", hooks={"response": hook})
    assert seen == {"raw": urllib3.HTTPResponse, "unread": True, "api": True}
    assert answer.json() == {"replaced": True} and answer.content == b'{"replaced": true}'
    assert not hasattr(answer.raw, "stream"), "the file-like path of Response.iter_content was used"


@pytest.mark.parametrize("method", ["get", "request"])
def test_the_session_follows_no_redirect_by_default(keep_alive, method):
    """RFC 9700 §2.6: an answer from the issuer comes from the checked URL, not from a Location."""
    http = http_session(timeout=2.0)
    if method == "request":
        answer = http.request("GET", keep_alive.url + "/redirect")
    else:
        answer = getattr(http, method)(keep_alive.url + "/redirect")
    assert answer.status_code == 302 and not answer.history


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_get_json_refuses_a_redirect_clearly(keep_alive, status, trickle):
    """Discovery and the JWKS (get_json) answer a redirect with issuer_misconfigured, naming the target."""
    server = trickle(_head(f"{status} Moved", Location="http://attacker.test/keys", Content_Length=0), b"")
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=2.0), server.url, "key set (jwks_uri)")
    assert info.value.error == "issuer_misconfigured" and info.value.status == 502
    assert f"redirect (HTTP {status} to 'http://attacker.test/keys')" in info.value.description
    assert "redirect" in info.value.hint
