"""The issuer answers only under its own host name (against DNS rebinding).

A page on ``rebind.example`` whose name is made to resolve to ``127.0.0.1``
talks to the issuer from the browser as if it were same-origin with it: it
can read the issuer's pages (a CSRF token included) and post forms, and the
peer address is this machine's.  What such a request cannot choose is its
``Host`` header, which names the attacker's host (RFC 9110 §7.2).  So
every page and endpoint of the issuer first checks that ``Host`` is the
host and port of ``ISSUER``; anything else gets a 400 page that names the
right address.  Only ``/healthz`` is exempt: it reveals nothing, and health
checks reach it by the bind address (see ``docker-compose.yml``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request

from common.errors import error_response

#: Blueprints answered whatever the ``Host`` (``common.web``'s health check).
EXEMPT_BLUEPRINTS = {"health"}

#: A URL scheme's port when the URL names none (RFC 9110 §4.2).
DEFAULT_PORTS = {"http": 80, "https": 443}


def issuer_hosts(issuer: str) -> frozenset[str]:
    """The ``Host`` values that name this issuer: its host and port, with or without a default port."""
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets in Host (RFC 9110 §7.2, RFC 3986 §3.2.2)
        host = f"[{host}]"
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    names = {f"{host}:{port}"}
    if port == DEFAULT_PORTS.get(parts.scheme):
        names.add(host)
    return frozenset(names)


def init_host_check(app: Flask, issuer: str) -> None:
    """Refuse, before anything else runs, every request whose ``Host`` is not the issuer's."""
    allowed = issuer_hosts(issuer)
    origin = f"{urlsplit(issuer).scheme}://{urlsplit(issuer).netloc}"

    @app.before_request
    def refuse_foreign_host():
        """A 400 page (or JSON, for programs) for a request addressed to another host name."""
        if request.blueprint in EXEMPT_BLUEPRINTS:
            return None
        host = request.host.lower()
        if host in allowed:
            return None
        return error_response(
            "invalid_host",
            f"This issuer answers only at {origin}, not at the host this request was addressed to "
            f"({host[:100] or 'a missing or malformed Host header'}).",
            f"Open {origin} (the host and port of ISSUER). Other names are refused so that a page on "
            "another host name that resolves to this machine (DNS rebinding) cannot use the issuer.",
            400,
            retry_url=origin + "/",
            headers={"Cache-Control": "no-store"},
        )
