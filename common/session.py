"""Server-side sessions in Redis (Flask-Session), one namespace per app.

Flask's default session is a signed cookie: signed, not encrypted, so
anybody holding the cookie can read what is in it.  Tokens must never sit
there, so every app keeps its session in Redis and the browser holds only
an opaque, random session id.

Each app gets its own cookie name and key prefix: cookies are scoped per
host, not per port (RFC 6265 §8.5), so two apps on ``localhost`` that both
used Flask's default ``session`` cookie would overwrite each other's.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import redis
from flask import Flask, g
from flask_session import Session
from flask_session.redis import RedisSessionInterface
from werkzeug.exceptions import ServiceUnavailable

from .config import Settings

#: Seconds a Redis call may take before the request gives up with a 503.
#: Short, so that a gunicorn worker never hangs on a dead Redis.
REDIS_TIMEOUT = 2.0


class SessionStoreUnavailable(ServiceUnavailable):
    """Redis did not answer: the request is refused with a 503 page."""

    description = (
        "The session store (Redis) is not reachable, so we cannot tell who you are right now. "
        "Nothing was changed; try again in a moment."
    )


def connect_redis(url: str) -> redis.Redis:
    """A Redis client with socket and connect timeouts.

    redis-py reconnects by itself on the next call once the server is back,
    so an outage needs no restart of the app.

    :param url: ``redis://`` URL (``Settings.redis_url``).
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        health_check_interval=30,
    )


class ResilientRedisSessionInterface(RedisSessionInterface):
    """Flask-Session's Redis interface, turning Redis failures into a 503.

    Without this, a Redis outage surfaces as a bare ``ConnectionError`` in
    the middle of request set-up, a 500 with a stack trace in the log and
    nothing useful for the user.
    """

    def open_session(self, app, request):
        try:
            return super().open_session(app, request)
        except redis.RedisError as error:
            # Flask opens the session before any view runs; there is no
            # session object for this request, which the error page checks.
            g.session_store_failed = True
            raise SessionStoreUnavailable() from error

    def save_session(self, app, session, response):
        if session is None or g.get("session_store_failed"):
            # Redis already failed in this request: the error page is being
            # sent, and trying again would only fail again.
            return None
        try:
            return super().save_session(app, session, response)
        except redis.RedisError as error:
            g.session_store_failed = True
            raise SessionStoreUnavailable() from error


def init_session(app: Flask, settings: Settings, app_name: str, base_url: str) -> None:
    """Configure the Redis-backed session for one app.

    :param app_name: short name used for the cookie name and the key prefix.
    :param base_url: the app's public base URL; https turns on ``Secure``.
    """
    client = connect_redis(settings.redis_url)
    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=client,
        SESSION_KEY_PREFIX=f"{app_name}:session:",
        SESSION_COOKIE_NAME=f"{app_name}_session",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax: the cookie still comes back on the top-level GET redirect from
        # the issuer to our callback, but not on cross-site POSTs.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=urlsplit(base_url).scheme == "https",
        SESSION_PERMANENT=True,
        # Bounded, unlike Flask's 31-day default.
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_lifetime),
        SESSION_SERIALIZATION_FORMAT="json",
    )
    Session(app)
    app.session_interface = ResilientRedisSessionInterface(
        app,
        client=client,
        key_prefix=app.config["SESSION_KEY_PREFIX"],
        use_signer=False,
        permanent=True,
        sid_length=32,
        serialization_format="json",
    )


def regenerate_session_id(app: Flask, session) -> None:
    """Give the session a new id (at sign-in), against session fixation.

    The old Redis key is deleted and the data moves to a fresh random id;
    OWASP's session-management guidance asks for this whenever the
    privilege level of a session changes.
    """
    try:
        app.session_interface.regenerate(session)
    except redis.RedisError as error:
        raise SessionStoreUnavailable() from error
