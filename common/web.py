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

from .config import DEFAULTS, ConfigError, Settings
from .display import TIME_CLAIMS, format_duration, format_utc
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
) -> None:
    """Attach the component's validated settings to ``app`` (read them with :func:`settings_of`).

    :param app_name: short name: cookie name, Redis key prefix, log prefix.
    :param base_url: the app's public base URL, or ``None`` when the app is
        not browsed (the resource server).
    :param test_config: the factory's ``test_config``; its upper-case keys
        that are neither settings nor Flask's own defaults become Flask
        config keys (settings were already read by ``load_settings``).
    """
    app.config.update(
        SETTINGS=settings, APP_NAME=app_name, BASE_URL=base_url, MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH
    )
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
    where :data:`NO_STORE` says.  A header a view set itself is kept.

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
    static_prefix = (app.static_url_path or "/static") + "/"

    @app.after_request
    def security_headers(response):
        """The security headers of :func:`init_security_headers`."""
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", policy())
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
