"""Server-side sessions in Redis, one namespace per app: what the apps call.

Flask's default session is a signed cookie: signed, not encrypted, so
anybody holding the cookie can read what is in it.  Tokens must never sit
there, so every app keeps its session in Redis and the browser holds only
an opaque, random session id.

Each app gets its own cookie name and key prefix: cookies are scoped per
host, not per port (RFC 6265 §8.5), so two apps on ``localhost`` that both
used Flask's default ``session`` cookie would overwrite each other's.

The store itself (Flask's ``SessionInterface`` on redis-py: JSON only, the
write-guard, 503 when Redis is down) is :mod:`common.session_store`; this
module wires it into an app and adds the per-session lock that a one-time
step (renewing tokens) runs under.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable
from urllib.parse import urlsplit

import redis
from flask import Flask, Request

from .config import Settings
from .redis_client import REDIS_TIMEOUT, connect_redis
from .session_store import RedisSessionStore, SessionStoreUnavailable, decompress_session_data

__all__ = [
    "REDIS_TIMEOUT",
    "SESSION_LOCK_TIMEOUT",
    "SessionStoreUnavailable",
    "connect_redis",
    "decompress_session_data",
    "host_only_cookie_name",
    "init_session",
    "load_stored_session",
    "regenerate_session_id",
    "save_session_now",
    "session_lock",
    "stored_session_value",
]


def host_only_cookie_name(name: str, base_url: str) -> str:
    """``name``, with the ``__Host-`` prefix when ``base_url`` is https.

    A ``__Host-`` cookie must be ``Secure``, ``Path=/`` and without
    ``Domain`` (RFC 6265bis §4.1.3.2), so no sibling subdomain can plant or
    overwrite it; browsers accept the prefix only over https.
    """
    return f"__Host-{name}" if urlsplit(base_url).scheme == "https" else name


def init_session(
    app: Flask,
    settings: Settings,
    app_name: str,
    base_url: str,
    *,
    cookie_name: str | None = None,
    uses_session: Callable[[Request], bool] | None = None,
) -> None:
    """Configure the Redis-backed session for one app.

    :param app_name: short name used for the cookie name and the key prefix.
    :param base_url: the app's public base URL; https turns on ``Secure``.
    :param cookie_name: the cookie's name when not ``{app_name}_session``.
    :param uses_session: which requests get a session at all (default: all
        but ``/healthz`` and static files); the others never touch Redis
        and never set a cookie.
    """
    client = connect_redis(settings.redis_url)
    app.config.update(
        # Read by code that shares the client (service_app's token cache).
        SESSION_REDIS=client,
        SESSION_KEY_PREFIX=f"{app_name}:session:",
        SESSION_COOKIE_NAME=cookie_name or f"{app_name}_session",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax: the cookie still comes back on the top-level GET redirect from
        # the issuer to our callback, but not on cross-site POSTs.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=urlsplit(base_url).scheme == "https",
        # Bounded, unlike Flask's 31-day default.
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_lifetime),
    )
    app.session_interface = RedisSessionStore(client, app.config["SESSION_KEY_PREFIX"], uses_session)


def load_stored_session(raw: bytes | None) -> dict:
    """A session as it is stored in Redis, decoded: for tests and tools.

    Stricter than the app on purpose: a value that is not JSON raises here
    (the app treats it as no session).

    :param raw: the value of a ``{app}:session:{sid}`` key, or ``None``.
    :return: the session's data, ``{}`` when there is none.
    """
    return json.loads(decompress_session_data(raw)) if raw else {}


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


#: How long one request may hold (or wait for) a per-session lock.  Longer
#: than a token request can take (``HTTP_TIMEOUT`` plus a retry), short
#: enough that a crashed worker's lock expires by itself.
SESSION_LOCK_TIMEOUT = 15.0


@contextmanager
def session_lock(app: Flask, session, purpose: str, timeout: float = SESSION_LOCK_TIMEOUT):
    """Hold a Redis lock for one browser session, across every worker.

    Two requests of the same browser (two tabs, a double click) may want to
    do the same one-time thing at once; the classic case is renewing an
    expired access token.  With refresh-token rotation and reuse detection
    (RFC 9700 §4.14.2) the second refresh presents a token that was just
    spent, and the issuer revokes the whole grant: the user is signed out
    for clicking twice.  Inside this lock, re-read the stored session with
    :func:`stored_session_value` to see whether another request already
    did the work, and publish your result with :func:`save_session_now`.

    The lock expires after ``timeout`` seconds, so a worker killed while
    holding it blocks nobody for long.

    :param purpose: names the lock (``"refresh"``).
    :raises SessionStoreUnavailable: Redis failed or the lock stayed taken.
    """
    interface = app.session_interface
    name = f"{interface.key_prefix}lock:{purpose}:{session.sid}"
    lock = interface.client.lock(name, timeout=timeout, blocking_timeout=timeout)
    try:
        acquired = lock.acquire()
    except redis.RedisError as error:
        raise SessionStoreUnavailable() from error
    if not acquired:
        raise SessionStoreUnavailable()
    try:
        yield
    finally:
        try:
            lock.release()
        except redis.RedisError:
            # Expired already (or Redis went away): it frees itself.
            pass


def stored_session_value(app: Flask, session, key: str):
    """``key`` as it is stored in Redis now, not as this request loaded it.

    :return: the value, or ``None`` when the key (or the whole session:
        signed out in another tab) is gone.
    """
    try:
        data = app.session_interface.load(session.sid)
    except redis.RedisError as error:
        raise SessionStoreUnavailable() from error
    return (data or {}).get(key)


def save_session_now(app: Flask, session) -> bool:
    """Write the session to Redis at once, before the response is sent.

    Used inside :func:`session_lock`, so that a request waiting for the
    lock finds the result (say, renewed tokens) when it gets its turn.
    The same rule as at the end of a request applies: a session that was
    signed out meanwhile is not brought back.

    :return: True when written, False when the session's key was gone.
    """
    session.modified = True  # a write is what the caller asks for
    try:
        return app.session_interface.write(session, app.permanent_session_lifetime)
    except redis.RedisError as error:
        raise SessionStoreUnavailable() from error
