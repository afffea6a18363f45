"""The Flask plumbing every web app shares: settings, the Redis session,
error pages, security headers, CSRF tokens and safe redirects.

An app factory calls :func:`create_base_app` and then registers only its
own blueprints, so that what differs between the apps is the flow, not the
set-up.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Callable, Mapping
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, jsonify, request, session

from .config import Settings, load_settings
from .errors import register_error_handlers
from .session import init_session

#: Serves ``common/static`` (the shared stylesheet) under ``/_common`` and
#: makes ``common/templates`` (``common/base.html``, ``common/error.html``)
#: available to every app's templates.
common_static = Blueprint(
    "common_static", __name__, static_folder="static", static_url_path="/_common/static",
    template_folder="templates",
)

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

#: Default security headers (OWASP secure-headers project).  Apps with
#: scripts widen ``Content-Security-Policy`` for themselves.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self' {form_action}; frame-ancestors 'none'"
)


def create_base_app(
    import_name: str,
    app_name: str,
    *,
    title: str,
    base_url: str | Callable[[Settings], str | None] | None,
    test_config: Mapping[str, object] | None = None,
    with_session: bool = True,
) -> Flask:
    """Build a Flask app with the suite's shared set-up.

    :param import_name: the app package's ``__name__``.
    :param app_name: short name: cookie name, Redis key prefix, log prefix.
    :param title: shown in the navigation bar and page titles.
    :param base_url: the app's public base URL, or a function of the settings
        that returns it (``lambda s: s.web_base_url``: the settings are then
        loaded once, here), or ``None`` when the app is not browsed (the
        resource server).
    :param test_config: overrides for settings (contract variable names)
        and Flask config keys, for tests.
    :param with_session: whether to attach the Redis session store.
    :return: the app, with ``app.config["SETTINGS"]`` holding the settings
        (read them with :func:`settings_of`) and ``GET /healthz`` registered.
    """
    test_config = dict(test_config or {})
    settings = load_settings(test_config)
    if callable(base_url):
        base_url = base_url(settings)
    app = Flask(import_name, instance_relative_config=False)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SETTINGS=settings,
        APP_NAME=app_name,
        BASE_URL=base_url,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.config.update({k: v for k, v in test_config.items() if k.isupper() and k not in app.config})
    app.logger.setLevel(logging.INFO)
    if with_session:
        if not settings.redis_url:
            from .config import ConfigError

            raise ConfigError(
                "REDIS_URL",
                "is not set for a process that keeps sessions",
                "Start the suite with `make run` (it starts an embedded Redis) or set REDIS_URL=redis://localhost:6379/0",
            )
        init_session(app, settings, app_name, base_url or "http://localhost")
    register_error_handlers(app)
    app.register_blueprint(common_static)
    # Registered first, so it is the route that answers /healthz; an app
    # needs no health check of its own.
    app.register_blueprint(health)
    app.jinja_env.globals.update(app_title=title, csrf_token=csrf_token)

    @app.after_request
    def security_headers(response):
        """Headers every page carries (see the "Security checks" in README)."""
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy", DEFAULT_CSP.format(form_action=app.config.get("CSP_FORM_ACTION", ""))
        )
        if request.path.startswith(("/authorization-code/", "/login/")) or "Set-Cookie" in response.headers:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def settings_of(app: Flask) -> Settings:
    """The validated settings an app was built with."""
    return app.config["SETTINGS"]


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
        abort(400, description="The form was stale or did not come from this site. Reload the page and try again.")


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

