"""The one-shot loopback listener that receives the authorization response.

RFC 8252 §7.3 ("Loopback Interface Redirection"): a native app on a desktop
receives the redirect on ``http://127.0.0.1:{port}/callback``, an HTTP
listener it opens for the length of one sign-in.  The rules it keeps:

* bound to the loopback *IP literal* ``127.0.0.1`` only, never ``0.0.0.0``
  (which would let anyone on the network deliver a response) and never the
  name ``localhost`` (which may resolve elsewhere, RFC 8252 §8.3);
* the port may be any free one (``NATIVE_REDIRECT_PORT=0``): the issuer must
  accept any port for a loopback redirect URI (RFC 8252 §7.3);
* it accepts exactly one response, the one whose ``state`` is the value this
  sign-in sent.  Any other local program can send requests to it; those get
  an error page and the listener keeps waiting (RFC 8252 §8.1: PKCE and
  ``state`` are what make the loopback redirect safe);
* it answers the browser with a page that says "you can close this window",
  then closes, so nothing keeps listening once the sign-in is over.

The request line holds the authorization code, so nothing here is logged.
"""

from __future__ import annotations

import hmac
import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

#: RFC 8252 §7.3 and §8.3: the IPv4 loopback literal, not "localhost".
LOOPBACK_HOST = "127.0.0.1"

#: The fixed redirect path (README.md): ``http://127.0.0.1:{port}/callback``.
CALLBACK_PATH = "/callback"


class LoginTimeout(Exception):
    """No authorization response arrived in time (the user never finished)."""


class LoopbackListener:
    """Listen on ``127.0.0.1:port`` for one authorization response.

    Binding happens in the constructor, so the caller knows the real port
    (``port=0`` asks the OS for a free one) before it builds the
    authorization request; requests are served only after :meth:`start`.

    :param port: the TCP port, ``0`` for any free one.
    :param on_refused: called (from the server thread) with a one-line
        reason whenever a request is refused, so the terminal can say so.
    :raises OSError: when the port is taken.
    """

    def __init__(self, port: int = 0, *, on_refused: Callable[[str], None] | None = None):
        self._server = _Server((LOOPBACK_HOST, port), _CallbackHandler)
        self._server.listener = self
        self.host, self.port = self._server.server_address[:2]
        self.on_refused = on_refused
        self._expected_state: str | None = None
        self._response: dict[str, str] | None = None
        self._accepted = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, expected_state: str) -> None:
        """Start serving, accepting only a response that carries ``expected_state``."""
        self._expected_state = expected_state
        # A short poll interval: close() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="loopback-listener",
            daemon=True,
        )
        self._thread.start()

    def wait(self, timeout: float) -> dict[str, str]:
        """Block until the one matching response arrived.

        :param timeout: seconds to wait.
        :return: the response's query parameters (``code``, ``state``, maybe
            ``iss``; or ``error`` and ``error_description``).
        :raises LoginTimeout: nothing matching arrived within ``timeout``.
        """
        if not self._done.wait(timeout):
            raise LoginTimeout(f"no authorization response within {timeout:g} seconds")
        assert self._response is not None
        return self._response

    def close(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "LoopbackListener":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- called by the handler ------------------------------------------

    def _check(self, host_header: str | None, path: str, query: str) -> tuple[int, str, str, dict | None]:
        """Decide what one request gets: (status, title, message, accepted params or None)."""
        # A page on another site can make the browser send requests here too,
        # and DNS rebinding can even make them look same-origin; the redirect
        # always names 127.0.0.1:port, so any other Host is not the issuer's.
        if host_header != f"{LOOPBACK_HOST}:{self.port}":
            return 400, "Wrong address", "This listener only answers on its own loopback address.", None
        if urlsplit(path).path != CALLBACK_PATH:
            return 404, "Not found", "Nothing here: this listener only receives the sign-in response.", None
        raw = parse_qs(query, keep_blank_values=True)
        if any(len(values) > 1 for values in raw.values()):
            # RFC 6749 §3.1: parameters must not be included more than once.
            return 400, "Malformed response", "A parameter appeared twice; this response was ignored.", None
        params = {name: values[0] for name, values in raw.items()}
        state = params.get("state", "")
        if not state or not hmac.compare_digest(state.encode(), (self._expected_state or "").encode()):
            return (
                400,
                "Unknown sign-in response",
                "This response does not belong to the sign-in the terminal started (its state does not "
                "match), so it was ignored. The terminal is still waiting for the real one.",
                None,
            )
        with self._lock:
            if self._accepted:
                return (
                    409,
                    "Already used",
                    "This sign-in response was already received; return to the terminal.",
                    None,
                )
            self._accepted = True
        if "error" in params:
            return (
                200,
                "Sign-in not completed",
                f"The issuer answered {params['error']!s}. Return to the terminal for the details; "
                "you can close this window.",
                params,
            )
        return 200, "Sign-in received", "You can close this window and return to the terminal.", params

    def _finish(self, params: dict[str, str]) -> None:
        self._response = params
        self._done.set()


class _Server(ThreadingHTTPServer):
    """The HTTP server; one short-lived thread per connection."""

    daemon_threads = True
    listener: LoopbackListener


class _CallbackHandler(BaseHTTPRequestHandler):
    """Answers the browser's redirect (and refuses everything else)."""

    server: _Server
    server_version = "native_sim-loopback"
    sys_version = ""
    #: A local program that connects and sends nothing must not hold a thread forever.
    timeout = 10

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Handle one GET: the redirect, or something to refuse."""
        listener = self.server.listener
        path, _, query = self.path.partition("?")
        status, title, message, accepted = listener._check(self.headers.get("Host"), path, query)
        if accepted is None and listener.on_refused and status != 404:
            # Told before the page is sent: whoever sees the answer also finds the refusal reported.
            listener.on_refused(f"{title.lower()}: refused a request to the loopback listener")
        self._send_page(status, title, message, ok=accepted is not None and "error" not in accepted)
        if accepted is not None:
            # Answer the browser first, then let the terminal go on: the
            # page is on screen even while the code is being exchanged.
            listener._finish(accepted)

    def do_POST(self) -> None:  # noqa: N802
        """The redirect is a GET (RFC 6749 §4.1.2); refuse anything else."""
        self._send_page(405, "Method not allowed", "The sign-in response arrives as a GET request.", ok=False)

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _send_page(self, status: int, title: str, message: str, *, ok: bool) -> None:
        body = _PAGE.format(
            title=html.escape(title),
            element_id="close-window" if ok else "error",
            message=html.escape(message),
        ).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        # The URL carried the code: keep the page out of caches and keep
        # the URL out of any Referer header.
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        """Log nothing: the request line contains the authorization code."""


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} · native_sim</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem;
       color: #1d2330; }}
h1 {{ font-size: 1.4rem; }}
</style>
</head>
<body>
<h1 id="title">{title}</h1>
<p id="{element_id}">{message}</p>
</body>
</html>
"""
