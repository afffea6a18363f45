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

import zlib
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import redis
from flask import Flask, g
from flask_session import Session
from flask_session.base import MsgSpecSerializer, Serializer
from flask_session.redis import RedisSession, RedisSessionInterface
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


class CompressedJSONSerializer(Serializer):
    """Session data as JSON, zlib-compressed.

    A signed-in session holds three tokens (about 2.4 KB) and the flow
    inspector's steps, whose JSON repeats itself a great deal; compressed,
    a whole session stays under 4 KiB of Redis memory per user instead of
    about 7 KiB (``make bench`` measures it).  Values written before
    compression was introduced (plain JSON, starting with ``{``) still load.
    """

    def __init__(self, app: Flask):
        self.json = MsgSpecSerializer(app, "json")

    def encode(self, session) -> bytes:
        return zlib.compress(self.json.encode(session), 6)

    def decode(self, serialized_data: bytes) -> dict:
        return self.json.decode(decompress_session_data(serialized_data))


def decompress_session_data(raw: bytes) -> bytes:
    """The JSON bytes of a stored session (compressed or not)."""
    # A zlib stream starts with 0x78; stored JSON starts with "{" (0x7b).
    return zlib.decompress(raw) if raw[:1] == b"\x78" else raw


def load_stored_session(raw: bytes | None) -> dict:
    """A session as it is stored in Redis, decoded: for tests and tools.

    :param raw: the value of a ``{app}:session:{sid}`` key, or ``None``.
    :return: the session's data, ``{}`` when there is none.
    """
    import json

    return json.loads(decompress_session_data(raw)) if raw else {}


class StoredSession(RedisSession):
    """A server-side session that knows whether its Redis key exists.

    .. attribute:: stored

        True when the session was loaded from Redis at the start of the
        request (or this request has written it since): its key may only be
        overwritten, never created.  False for a brand-new session, and again
        after its id was regenerated.

    .. attribute:: write_skipped

        True when saving found the key gone (signed out or re-keyed by a
        concurrent request) and so wrote nothing.
    """

    stored = False
    write_skipped = False


class ResilientRedisSessionInterface(RedisSessionInterface):
    """Flask-Session's Redis interface, turning Redis failures into a 503
    and never bringing a deleted session back.

    Without the first, a Redis outage surfaces as a bare ``ConnectionError``
    in the middle of request set-up, a 500 with a stack trace in the log and
    nothing useful for the user.  The second is :meth:`_upsert_session`.
    """

    session_class = StoredSession

    #: Paths answered without a session (and so without Redis): health
    #: probes must report the process as alive while Redis is down, or a
    #: process manager would restart a healthy app in a loop; the shared
    #: stylesheet must load so that the 503 page itself is readable.
    SESSIONLESS_PATHS = ("/healthz",)
    SESSIONLESS_PREFIXES = ("/static/", "/_common/static/")

    def open_session(self, app, request):
        if request.path in self.SESSIONLESS_PATHS or request.path.startswith(self.SESSIONLESS_PREFIXES):
            # Flask's read-only null session: nothing is loaded from Redis
            # (not even for a request carrying a session cookie) and
            # nothing is saved.
            return self.make_null_session(app)
        try:
            session = super().open_session(app, request)
        except redis.RedisError as error:
            # Flask opens the session before any view runs; there is no
            # session object for this request, which the error page checks.
            g.session_store_failed = True
            raise SessionStoreUnavailable() from error
        # Flask-Session keeps the cookie's id only when it found data under
        # it; otherwise it made up a fresh id for a new, unsaved session.
        session.stored = session.sid == request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        return session

    def regenerate(self, session) -> None:
        """A new id for ``session``; its old key is deleted (see :func:`regenerate_session_id`)."""
        old_sid = session.sid
        super().regenerate(session)
        if session.sid != old_sid:
            # The new key does not exist yet: the next write creates it.
            session.stored = False

    def _upsert_session(self, session_lifetime, session, store_id):
        """Write the session, or only extend its lifetime when unchanged.

        Flask-Session rewrites the whole session after every request
        (``SESSION_REFRESH_EACH_REQUEST``).  A request that merely read the
        session would then put back the copy it loaded, undoing whatever a
        concurrent request of the same browser stored meanwhile: renewed
        tokens (with rotation the old refresh token is spent, so the user
        would be signed out at the next renewal), or a sign-out in another
        tab.  Unchanged sessions therefore only get their expiry pushed
        back, and a session deleted meanwhile stays deleted.

        Changed sessions are written conditionally, for the same reason.  A
        slow request that loaded the session before a sign-out in another tab
        (which deleted the key), or before the sign-in callback moved the
        session to a new id (which deleted the old key), would otherwise
        write the old id back to Redis, tokens and all: the user signs out
        and is still signed in (OWASP Session Management: a session must be
        invalidated on the server at logout).  So a session loaded from Redis
        is written only if its key still exists (``SET ... XX``), and a new
        one only if its key does not exist yet (``SET ... NX``).  When the
        write is skipped, :meth:`should_set_cookie` sends no cookie either,
        so the browser keeps whatever the other request set.
        """
        ttl = int(session_lifetime.total_seconds())
        if not session.modified:
            # EXPIRE answers 0 when the key is gone: then no cookie either.
            session.write_skipped = not self.client.expire(store_id, ttl)
            return
        data = self.serializer.encode(session)
        if session.stored:
            written = self.client.set(store_id, data, ex=ttl, xx=True)
        else:
            written = self.client.set(store_id, data, ex=ttl, nx=True)
        session.write_skipped = not written
        if written:
            # It exists now: later writes in this request (save_session_now,
            # then the save at the end) overwrite it.
            session.stored = True

    def should_set_cookie(self, app, session) -> bool:
        """No cookie for a session whose write was skipped (see :meth:`_upsert_session`)."""
        if getattr(session, "write_skipped", False):
            return False
        return super().should_set_cookie(app, session)

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
    app.session_interface.serializer = CompressedJSONSerializer(app)


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
    interface = app.session_interface
    try:
        data = interface._retrieve_session_data(interface._get_store_id(session.sid))
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
    interface = app.session_interface
    session.modified = True  # a write is what the caller asks for
    try:
        interface._upsert_session(app.permanent_session_lifetime, session, interface._get_store_id(session.sid))
    except redis.RedisError as error:
        raise SessionStoreUnavailable() from error
    return not session.write_skipped
