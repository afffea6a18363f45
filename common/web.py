"""The small pieces an app factory composes: settings, session, pages, headers, ``/healthz``.

Each app's ``create_app`` reads as the list of what that app is made of,
in the style of the Flask tutorial's ``db.init_app(app)``::

    settings = load_settings(test_config, component="web_app")
    app = Flask(__name__)
    init_settings(app, settings, app_name="web_app", base_url=settings.web_base_url, test_config=test_config)
    init_server_session(app, settings)
    init_templates(app, title="Web app")
    init_error_pages(app, answer="html")          # common.errors
    init_security_headers(app, csp=default_csp(form_action=...))
    init_health(app)

Here too: the CSRF token of forms and the same-origin check of ``next``.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Callable, Mapping
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Request, abort, jsonify, redirect, request, session
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import DEFAULTS, ConfigError, Settings
from .display import TIME_CLAIMS, format_duration, format_utc
from .hosts import init_host_check, is_loopback_url
from .log_redaction import redact_werkzeug_log
from .session import init_session

#: Largest request body any app accepts (forms and callbacks are small).
MAX_CONTENT_LENGTH = 64 * 1024

# -- settings -----------------------------------------------------------------------------------------------


def init_settings(
    app: Flask,
    settings: Settings,
    *,
    app_name: str,
    base_url: str | None,
    test_config: Mapping[str, object] | None = None,
    public_url: str | None = None,
    loopback_aliases: bool = True,
) -> None:
    """Attach the component's validated settings to ``app`` (read them with :func:`settings_of`).

    Also the two rules of where the app is reached, first of all its hooks:
    the reverse proxies it trusts (:func:`init_proxies`) and the ``Host``
    names it answers (:func:`common.hosts.init_host_check`).

    :param app_name: short name: cookie name, Redis key prefix, log prefix.
    :param base_url: the app's public base URL, or ``None`` when the app is
        not browsed (the resource server).
    :param test_config: the factory's ``test_config``; its upper-case keys
        that are neither settings nor Flask's own defaults become Flask
        config keys (settings were already read by ``load_settings``).
    :param public_url: where a component that is not browsed is reached
        (the resource server: ``API_URL``); its ``Host`` allowlist and HSTS
        follow it.
    :param loopback_aliases: passed to :func:`common.hosts.init_host_check`
        (``False`` for the dev issuer: one exact host).
    """
    public = base_url or public_url
    app.config.update(
        SETTINGS=settings,
        APP_NAME=app_name,
        BASE_URL=base_url,
        PUBLIC_URL=public,
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
    )
    init_proxies(app, settings)
    if public:
        init_host_check(app, public, loopback_aliases=loopback_aliases)
    if settings.declares("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.secret_key
    app.config.update(
        {
            key: value
            for key, value in (test_config or {}).items()
            if key.isupper() and key not in DEFAULTS and key not in app.config
        }
    )
    app.logger.setLevel(logging.INFO)
    # `flask run` (README): the development server's request log, like
    # gunicorn's (common/gunicorn_conf.py), shows no code, state or token.
    redact_werkzeug_log()


def init_proxies(app: Flask, settings: Settings) -> None:
    """Trust ``TRUSTED_PROXIES`` reverse proxies for ``X-Forwarded-For/-Proto/-Host/-Port``.

    Behind a TLS-terminating proxy the server sees plain http from the
    proxy's address; the client's scheme, host and address arrive only in
    ``X-Forwarded-*`` headers.  Werkzeug's ``ProxyFix`` believes the last
    ``N`` values of each (each proxy appends one), so that ``request.scheme``,
    ``request.host`` (checked by :mod:`common.hosts`) and
    ``request.remote_addr`` (the dev issuer's loopback-only key rotation)
    are the client's.  With ``0`` (the default) the app is not wrapped and
    every forwarded header is ignored: anybody can send one, so only a
    proxy you run may be believed, and only as many as you run.  Gunicorn's
    own trust in those headers is off as well (:mod:`common.gunicorn_conf`).
    """
    hops = settings.trusted_proxies if settings.declares("TRUSTED_PROXIES") else 0
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)


def settings_of(app: Flask) -> Settings:
    """The validated settings an app was built with."""
    return app.config["SETTINGS"]


# -- session --------------------------------------------------------------------------------------------


def init_server_session(
    app: Flask,
    settings: Settings,
    *,
    cookie_name: str | None = None,
    uses_session: Callable[[Request], bool] | None = None,
) -> None:
    """Keep the app's sessions in Redis (:func:`common.session.init_session`).

    Call after :func:`init_settings`; the cookie name, the key prefix and
    ``Secure`` follow the app's name and base URL.  ``cookie_name`` and
    ``uses_session`` are passed on (an app whose session serves only some
    routes).

    :raises ConfigError: when ``REDIS_URL`` is empty (only the launcher may
        leave it empty: it then starts an embedded Redis for the apps).
    """
    if not settings.redis_url:
        raise ConfigError(
            "REDIS_URL",
            "is not set for a process that keeps sessions",
            "Start the suite with `make run` (it starts an embedded Redis) or set REDIS_URL=redis://localhost:6379/0",
        )
    init_session(
        app,
        settings,
        app.config["APP_NAME"],
        app.config["BASE_URL"] or "http://localhost",
        cookie_name=cookie_name,
        uses_session=uses_session,
    )


# -- templates and the shared stylesheet -----------------------------------------------------------------

#: Serves ``common/static`` (the shared stylesheet) under ``/_common`` and
#: makes ``common/templates`` (``common/base.html``, ``common/error.html``)
#: available to every app's templates.
common_static = Blueprint(
    "common_static",
    __name__,
    static_folder="static",
    static_url_path="/_common/static",
    template_folder="templates",
)


def init_templates(app: Flask, *, title: str, nav: str | None = None) -> None:
    """The shared layout (``common/base.html``), stylesheet and template globals.

    :param title: shown in the navigation bar and page titles.
    :param nav: the app's navigation template, shown on every page that does
        not fill the ``nav`` block itself, the shared error page included (so
        a signed-in user keeps the Profile and Sign out links there).
    """
    app.register_blueprint(common_static)
    app.jinja_env.globals.update(app_title=title, app_nav=nav, csrf_token=csrf_token, time_claims=TIME_CLAIMS)
    app.jinja_env.filters.update(utc=format_utc, duration=format_duration)


# -- /healthz -------------------------------------------------------------------------------------------

#: ``GET /healthz``, for process managers, the launcher and the tests.
health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    """Liveness probe: 200 ``{"status": "ok"}``.

    Touches neither the session nor Redis (``common.session`` skips this
    path), so a Redis outage does not make a process manager restart a
    healthy app.
    """
    return jsonify(status="ok")


def init_health(app: Flask) -> None:
    """Register ``GET /healthz``; call it before the app's own blueprints, so that it answers that path."""
    app.register_blueprint(health)


# -- security headers -----------------------------------------------------------------------------------


def default_csp(form_action: str = "") -> str:
    """The suite's Content-Security-Policy for server-rendered pages (no scripts at all).

    :param form_action: origins besides ``'self'`` a form (or the redirect
        chain it starts) may go to, e.g. the issuer's for RP-initiated logout.
    """
    targets = " ".join(filter(None, ["'self'", form_action]))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"object-src 'none'; base-uri 'none'; form-action {targets}; frame-ancestors 'none'"
    )


#: HSTS lifetime (RFC 6797 §6.1.1): a year, as the HSTS preload list asks for.
HSTS_MAX_AGE = 365 * 24 * 3600

#: HSTS lifetime on a loopback name: HSTS covers every port of a host (RFC 6797
#: §8.1 notes no port), so a year of it for ``https://localhost:8441`` (``make
#: run-https``) would turn the developer's later ``http://localhost:5001`` into
#: https for a year.  Five minutes still shows (and tests) the header.
LOOPBACK_HSTS_MAX_AGE = 300


def strict_transport_security(public_url: str) -> str | None:
    """The ``Strict-Transport-Security`` value for a component reached at ``public_url``; ``None`` on http.

    Once a browser has seen it over https, it never again sends a request
    of this host over plain http (RFC 6797 §8.3): no ``sslstrip`` down-grade
    of a later visit, no session cookie offered to a network attacker's
    http redirect.  Sent on every answer when the public URL is https, even
    if the server itself sees http from a TLS-terminating proxy; browsers
    ignore it on an http answer (RFC 6797 §8.1).
    """
    if urlsplit(public_url).scheme != "https":
        return None
    max_age = LOOPBACK_HSTS_MAX_AGE if is_loopback_url(public_url) else HSTS_MAX_AGE
    return f"max-age={max_age}"


#: Path prefixes whose URLs carry a code or tokens (the sign-in callbacks).
CALLBACK_PREFIXES = ("/authorization-code/", "/login/")

#: ``init_security_headers(no_store=...)``: which answers no cache may keep.
NO_STORE = ("callbacks", "pages")


def init_security_headers(
    app: Flask, *, csp: str | Callable[[], str] | None = None, no_store: str = "callbacks"
) -> None:
    """Headers every answer carries (OWASP secure-headers project; README, "Security checks").

    ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``
    (a callback URL must not leak in a Referer), ``X-Frame-Options: DENY``
    and the CSP (clickjacking, RFC 9700 §4.16), ``Cache-Control: no-store``
    where :data:`NO_STORE` says, HSTS on an https public URL
    (:func:`strict_transport_security`).  A header a view set itself is kept.

    :param csp: the app's Content-Security-Policy, or a function returning
        it (read per answer); ``None``: :func:`default_csp`.
    :param no_store: ``"callbacks"``: the callbacks and any answer that sets
        a cookie (the session cookie is written after this hook, so
        :func:`common.session_store.mark_no_store` marks those answers);
        ``"pages"``: also every other answer except the app's own
        static files.
    """
    if no_store not in NO_STORE:
        raise ValueError(f"no_store must be one of {NO_STORE}, not {no_store!r}")
    policy = csp if callable(csp) else (lambda: csp or default_csp())
    hsts = strict_transport_security(app.config.get("PUBLIC_URL") or "")
    static_prefix = (app.static_url_path or "/static") + "/"

    @app.after_request
    def security_headers(response):
        """The security headers of :func:`init_security_headers`."""
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", policy())
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", hsts)
        secret_url = request.path.startswith(CALLBACK_PREFIXES) or "Set-Cookie" in response.headers
        if secret_url or (no_store == "pages" and not request.path.startswith(static_prefix)):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


# -- CSRF ---------------------------------------------------------------------


def csrf_token() -> str:
    """The session's anti-CSRF token, created on first use (for forms)."""
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return token


def require_csrf() -> None:
    """Abort with 400 unless the POSTed ``csrf_token`` matches the session's.

    SameSite=Lax already stops most cross-site POSTs; the token also covers
    same-site attackers and older browsers (OWASP CSRF cheat sheet).
    """
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(
            400,
            description="The form was stale or did not come from this site. Reload the page and try again.",
        )


# -- redirects ------------------------------------------------------------------


def safe_next(target: str | None, default: str = "/") -> str:
    """Return ``target`` if it is a same-origin path, else ``default``.

    Accepts ``/profile`` or ``/profile?x=1``; refuses absolute URLs,
    scheme-relative ``//evil.test``, backslash tricks (``/\\evil.test``,
    which browsers treat like ``//``) and control characters.  An open
    redirect would let an attacker bounce a user through our sign-in to a
    page of theirs (RFC 9700 §4.11).
    """
    if not target or not isinstance(target, str) or len(target) > 2048:
        return default
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x20 or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def redirect_to_base_url(base_url: str):
    """A redirect to this same request on ``base_url``'s host, or ``None`` when the browser is there already.

    Before a sign-in: cookies belong to a host name, so a sign-in started on
    ``127.0.0.1`` would come back on the registered redirect URI's host (say
    ``localhost``), where the browser has a different cookie, and the
    ``state`` would be lost.  So move to the configured base URL first.
    """
    if request.host.lower() == urlsplit(base_url).netloc.lower():
        return None
    query = request.query_string.decode("utf-8", "replace")
    return redirect(base_url + request.path + (f"?{query}" if query else ""))
