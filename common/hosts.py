"""Every app and the dev issuer answer only under the host names of their configured URLs.

Two attacks choose the ``Host`` a server sees, and both are stopped by
comparing it with an allowlist derived from the configured base URL
(``WEB_BASE_URL``, ``SPA_BASE_URL``, ``SERVICE_BASE_URL``, ``API_URL``,
``ISSUER``), never from the request:

- DNS rebinding: a page on ``rebind.example`` whose name is made to resolve
  to this machine talks to our server from the browser as if it were
  same-origin with it (it can read pages, a CSRF token included, and post
  forms).  What it cannot choose is ``Host``: it names the attacker's host
  (RFC 9110 §7.2).
- Host-header injection behind a proxy: whoever reaches the server with
  another ``Host`` (or, through a trusted proxy, another
  ``X-Forwarded-Host``) would otherwise get pages, redirects and cached
  answers made for a host name of their choosing.

A refused request gets a 400 page (or JSON, for programs) that names the
right address.  ``/healthz`` answers under any name: load balancers and
container health checks address a server by its bind address, and the
answer reveals nothing (README, "Deploying").

For a loopback base URL (``http://localhost:5001``) an app also accepts the
other loopback names (``127.0.0.1``, ``[::1]``), at any port, so that a
browser that came by ``127.0.0.1`` can be moved to the base URL before a
sign-in (:func:`common.web.redirect_to_base_url`) and Flask's test client
(``Host: localhost``) works; a rebinding page cannot send those names.  The
dev issuer is stricter (``loopback_aliases=False``): its identifier is one
exact URL, and its sign-in cookie belongs to one host name.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request

from .errors import error_response

#: Blueprints answered whatever the ``Host`` (``common.web``'s health check).
EXEMPT_BLUEPRINTS = {"health"}

#: A URL scheme's port when the URL names none (RFC 9110 §4.2).
DEFAULT_PORTS = {"http": 80, "https": 443}

#: Names of this machine's loopback interface, as they appear in ``Host``.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _host_of(hostname: str) -> str:
    """``hostname`` as it appears in ``Host``: an IPv6 literal keeps its brackets (RFC 3986 §3.2.2)."""
    return f"[{hostname}]" if ":" in hostname else hostname


def allowed_hosts(url: str) -> frozenset[str]:
    """The ``Host`` values that name ``url``'s server: its host and port, with or without a default port."""
    parts = urlsplit(url)
    host = _host_of(parts.hostname or "")
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    names = {f"{host}:{port}"}
    if port == DEFAULT_PORTS.get(parts.scheme):
        names.add(host)
    return frozenset(names)


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine's loopback interface (``localhost``, ``127.0.0.1``, ``[::1]``)."""
    return _host_of((urlsplit(url).hostname or "").lower()) in LOOPBACK_NAMES


def host_allowed(host: str, url: str, *, loopback_aliases: bool) -> bool:
    """Whether a request's ``Host`` (lower-cased) is one of ``url``'s names (see the module docstring)."""
    if host in allowed_hosts(url):
        return True
    if not (loopback_aliases and is_loopback_url(url)):
        return False
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name, port = name + "]", rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    return name in LOOPBACK_NAMES and (port == "" or port.isdigit())


def init_host_check(app: Flask, url: str, *, loopback_aliases: bool = True) -> None:
    """Refuse, before anything else runs, every request whose ``Host`` is not one of ``url``'s names.

    Call it first among the factory's hooks (:func:`common.web.init_settings`
    does), so that no page, session or endpoint runs for a foreign host.

    :param url: the component's public URL (its base URL, or ``ISSUER``).
    :param loopback_aliases: accept the other loopback names too when
        ``url`` is a loopback URL (the apps; not the dev issuer).
    """
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"

    @app.before_request
    def refuse_foreign_host():
        """A 400 page (or JSON, for programs) for a request addressed to another host name."""
        if request.blueprint in EXEMPT_BLUEPRINTS:
            return None
        host = request.host.lower()
        if host_allowed(host, url, loopback_aliases=loopback_aliases):
            return None
        return error_response(
            "invalid_host",
            f"This server answers only at {origin}, not at the host this request was addressed to "
            f"({host[:100] or 'a missing or malformed Host header'}).",
            f"Open {origin} (the host and port of its configured URL). Other names are refused so that a "
            "page on another host name that resolves to this machine (DNS rebinding), or a forged Host "
            "header, cannot use it. Behind a reverse proxy: pass the public Host on (README, Deploying).",
            400,
            retry_url=origin + "/",
            headers={"Cache-Control": "no-store"},
        )
