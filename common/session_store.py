"""The Redis session store: Flask's public ``SessionInterface``, implemented here.

Flask lets an app replace its cookie session through one documented hook,
:class:`flask.sessions.SessionInterface` (``open_session`` at the start of a
request, ``save_session`` after the ``after_request`` functions, and the
``get_cookie_*`` / ``get_expiration_time`` / ``should_set_cookie`` helpers).
This module implements that hook directly on redis-py, so it relies on no
private method of any dependency.  It used to subclass Flask-Session's Redis
interface, which offered no public way to do the three things below: the
write-guard had to override its private ``_upsert_session``, re-reading the
stored session inside a lock had to call ``_retrieve_session_data`` and
``_get_store_id``, and its serializer falls back to ``pickle.loads`` for
bytes that are not JSON (a Redis write would become code execution).

What the store guarantees, beyond keeping a session under
``{app}:session:{sid}``:

* **JSON only.**  A stored value that is not a JSON object (pickle bytes,
  garbage, a broken zlib stream, a JSON list) is treated as no session at
  all: the request gets a new, empty session, never a 500 and never an
  unpickling.
* **A stale request never resurrects a session.**  A session loaded from
  Redis is written back only if its key still exists (``SET ... XX``), a
  new one only if its key does not exist yet (``SET ... NX``), and an
  unchanged one only gets its expiry pushed back (``EXPIRE``).  When the
  write is skipped the response sets no cookie either.  Otherwise a slow
  request that loaded the session before a sign-out in another tab, or
  before the sign-in callback moved it to a new id, would write the old id
  back, tokens and all (OWASP Session Management: a session must be
  invalidated on the server at logout).
* **Redis down means 503, not 500** (:class:`SessionStoreUnavailable`), and
  ``/healthz`` and static files are answered without touching Redis.
"""

from __future__ import annotations

import json
import secrets
import zlib
from datetime import timedelta
from typing import Callable

import redis
from flask import Flask, Request, Response, g
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict
from werkzeug.exceptions import ServiceUnavailable

#: A stored session never inflates beyond this (a signed-in one is ~7 KiB);
#: anything larger is not one of ours and counts as no session.
MAX_SESSION_BYTES = 1024 * 1024

#: zlib level for stored sessions: good compression, cheap enough per request.
COMPRESSION_LEVEL = 6

#: Random bytes in a session id (``secrets.token_urlsafe``): 256 bits.
SESSION_ID_BYTES = 32


class SessionStoreUnavailable(ServiceUnavailable):
    """Redis did not answer: the request is refused with a 503 page."""

    description = (
        "The session store (Redis) is not reachable, so we cannot tell who you are right now. "
        "Nothing was changed; try again in a moment."
    )


# -- the stored form: zlib-compressed JSON, decoded as JSON and nothing else ---------------------


def encode_session_data(data: dict) -> bytes:
    """A session's data as stored: compact JSON, zlib-compressed.

    A signed-in session holds three tokens (about 2.4 KB) and the flow
    inspector's steps, whose JSON repeats itself a great deal; compressed,
    a whole session stays under 4 KiB of Redis memory per user instead of
    about 7 KiB (``make bench`` measures it).
    """
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), COMPRESSION_LEVEL)


def decompress_session_data(raw: bytes) -> bytes:
    """The JSON bytes of a stored session (compressed or not).

    Values written before compression was introduced (plain JSON, starting
    with ``{``) still load.

    :raises zlib.error: a broken zlib stream, or one inflating past
        :data:`MAX_SESSION_BYTES`.
    """
    # A zlib stream starts with 0x78; stored JSON starts with "{" (0x7b).
    if raw[:1] != b"\x78":
        return raw
    inflater = zlib.decompressobj()
    data = inflater.decompress(raw, MAX_SESSION_BYTES)
    if not inflater.eof or inflater.unconsumed_tail:
        raise zlib.error("not one complete zlib stream within the size cap")
    return data


def decode_session_data(raw: bytes) -> dict | None:
    """A stored session's data, or ``None`` when ``raw`` is not a (compressed) JSON object.

    Decoded with :func:`json.loads` only: there is no fallback to another
    format, least of all pickle.
    """
    try:
        data = json.loads(decompress_session_data(raw))
    except (zlib.error, ValueError, RecursionError):
        # ValueError covers bad JSON and bad UTF-8; RecursionError, JSON
        # nested thousands deep.
        return None
    return data if isinstance(data, dict) else None


# -- the session object and the interface Flask calls ---------------------------------------------


class RedisSession(CallbackDict, SessionMixin):
    """One browser's server-side session, as :data:`flask.session` shows it.

    .. attribute:: sid

        The session id: the cookie's value and the suffix of the Redis key.

    .. attribute:: modified / accessed

        Set by any change (any read, for ``accessed``), as in Flask's own
        sessions; a nested value changed in place needs ``modified = True``.

    .. attribute:: stored

        True when the session was loaded from Redis at the start of the
        request (or this request has written it since): its key may only be
        overwritten, never created.  False for a brand-new session, and again
        after its id was regenerated.

    .. attribute:: write_skipped

        True when saving found the key gone (signed out or re-keyed by a
        concurrent request) and so wrote nothing.
    """

    def __init__(
        self, initial: dict | None = None, sid: str = "", *, stored: bool = False, permanent: bool = False
    ):
        def on_update(self) -> None:
            self.modified = True
            self.accessed = True

        super().__init__(initial, on_update)
        self.sid = sid
        if permanent:
            self.permanent = True  # stored as the "_permanent" key (flask.sessions.SessionMixin)
        self.stored = stored
        self.write_skipped = False
        self.modified = False
        self.accessed = False

    def __bool__(self) -> bool:
        """Empty when nothing but the ``_permanent`` flag is in it: such a session is not stored."""
        return bool(self.keys() - {"_permanent"})

    def __getitem__(self, key: str):
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default=None):
        """Like :meth:`dict.get`; marks the session as accessed (``Vary: Cookie``)."""
        self.accessed = True
        return super().get(key, default)

    def setdefault(self, key: str, default=None):
        """Like :meth:`dict.setdefault`; marks the session as accessed."""
        self.accessed = True
        return super().setdefault(key, default)

    def clear(self) -> None:
        """Empty the session but keep whether it is permanent (its cookie's lifetime)."""
        permanent = self.get("_permanent", False)
        super().clear()
        self["_permanent"] = permanent


class RedisSessionStore(SessionInterface):
    """Sessions in Redis under ``{key_prefix}{sid}``, with the guarantees in the module docstring.

    :param client: the Redis client (:func:`common.session.connect_redis`).
    :param key_prefix: ``{app}:session:``, one namespace per app.
    """

    #: Paths answered without a session (and so without Redis): health
    #: probes must report the process as alive while Redis is down, or a
    #: process manager would restart a healthy app in a loop; the shared
    #: stylesheet must load so that the 503 page itself is readable.
    SESSIONLESS_PATHS = ("/healthz",)
    SESSIONLESS_PREFIXES = ("/static/", "/_common/static/")

    def __init__(
        self, client: redis.Redis, key_prefix: str, uses_session: Callable[[Request], bool] | None = None
    ):
        self.client = client
        self.key_prefix = key_prefix
        self.uses_session = uses_session

    def sessionless(self, request: Request) -> bool:
        """True for a request answered without a session: nothing read from or written to Redis.

        :data:`SESSIONLESS_PATHS` and :data:`SESSIONLESS_PREFIXES` always;
        with ``uses_session`` (an app whose session serves only some routes,
        like the SPA's backend for frontend) every request it declines too.
        """
        if request.path in self.SESSIONLESS_PATHS or request.path.startswith(self.SESSIONLESS_PREFIXES):
            return True
        return self.uses_session is not None and not self.uses_session(request)

    def store_id(self, sid: str) -> str:
        """The Redis key of session ``sid``."""
        return self.key_prefix + sid

    def new_session(self) -> RedisSession:
        """A fresh, empty, permanent session under a new random id (not stored yet)."""
        return RedisSession(sid=secrets.token_urlsafe(SESSION_ID_BYTES), permanent=True)

    def load(self, sid: str) -> dict | None:
        """The data stored under ``sid`` now, or ``None`` (no such key, or not a JSON object).

        :raises redis.RedisError: Redis did not answer.
        """
        raw = self.client.get(self.store_id(sid))
        return decode_session_data(raw) if raw else None

    def open_session(self, app: Flask, request: Request):
        """The request's session: the stored one its cookie names, or a new one (Flask calls this)."""
        if self.sessionless(request):
            # Flask's read-only null session: nothing is loaded from Redis
            # (not even for a request carrying a session cookie) and
            # nothing is saved.
            return self.make_null_session(app)
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid:
            return self.new_session()
        try:
            data = self.load(sid)
        except redis.RedisError as error:
            # Flask opens the session before any view runs; there is no
            # session object for this request, which the error page checks.
            g.session_store_failed = True
            raise SessionStoreUnavailable() from error
        if data is None:
            # Expired, signed out, or not something this store wrote: start
            # afresh under a new id rather than adopting the cookie's.
            return self.new_session()
        return RedisSession(data, sid=sid, stored=True)

    def regenerate(self, session: RedisSession) -> None:
        """A new id for a non-empty ``session``; its old key is deleted (at sign-in and sign-out)."""
        if not session:
            return
        self.client.delete(self.store_id(session.sid))
        session.sid = secrets.token_urlsafe(SESSION_ID_BYTES)
        session.modified = True
        # The new key does not exist yet: the next write creates it.
        session.stored = False

    def write(self, session: RedisSession, lifetime: timedelta) -> bool:
        """Write the session, or only extend its lifetime when unchanged; never resurrect it.

        A loaded session is written only if its key still exists (``SET XX``),
        a new one only if its key does not exist yet (``SET NX``); an
        unchanged one gets ``EXPIRE``, which does nothing for a key that is
        gone.  Rewriting an unchanged session would put back the copy this
        request loaded, undoing what a concurrent request of the same
        browser stored meanwhile (renewed tokens, whose spent refresh token
        would sign the user out at the next renewal, or a sign-out).

        :return: True when written, False when skipped (``session.write_skipped``).
        :raises redis.RedisError: Redis did not answer.
        """
        ttl = int(lifetime.total_seconds())
        key = self.store_id(session.sid)
        if not session.modified:
            # EXPIRE answers 0 when the key is gone: then no cookie either.
            written = bool(self.client.expire(key, ttl))
        elif session.stored:
            written = bool(self.client.set(key, encode_session_data(dict(session)), ex=ttl, xx=True))
        else:
            written = bool(self.client.set(key, encode_session_data(dict(session)), ex=ttl, nx=True))
        session.write_skipped = not written
        if written:
            # It exists now: later writes in this request (save_session_now,
            # then the save at the end) overwrite it.
            session.stored = True
        return written

    def should_set_cookie(self, app: Flask, session) -> bool:
        """Flask's rule, except that a session whose write was skipped sends no cookie."""
        if getattr(session, "write_skipped", False):
            return False
        return super().should_set_cookie(app, session)

    def save_session(self, app: Flask, session, response: Response) -> None:
        """Store the session and set (or delete) its cookie (Flask calls this after each request)."""
        if session is None or g.get("session_store_failed"):
            # Redis already failed in this request: the error page is being
            # sent, and trying again would only fail again.
            return
        try:
            self._save(app, session, response)
        except redis.RedisError as error:
            g.session_store_failed = True
            raise SessionStoreUnavailable() from error

    def _save(self, app: Flask, session: RedisSession, response: Response) -> None:
        """An emptied, changed session is deleted with its cookie; any other is written by :meth:`write`."""
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        if session.accessed:
            # The page depends on who asks: shared caches must key on the cookie.
            response.vary.add("Cookie")
        if not session:
            if session.modified:
                # Emptied in this request (signed out): delete it and its cookie.
                self.client.delete(self.store_id(session.sid))
                response.delete_cookie(name, domain=domain, path=path)
                response.vary.add("Cookie")
                mark_no_store(response)
            return
        if not (session.modified or app.config["SESSION_REFRESH_EACH_REQUEST"]):
            return
        self.write(session, app.permanent_session_lifetime)
        if not self.should_set_cookie(app, session):
            return
        response.set_cookie(
            name,
            session.sid,
            expires=self.get_expiration_time(app, session),
            httponly=self.get_cookie_httponly(app),
            domain=domain,
            path=path,
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")
        mark_no_store(response)


def mark_no_store(response: Response) -> None:
    """``Cache-Control: no-store`` on an answer that sets or deletes the session cookie.

    Flask saves the session after every ``after_request`` function, so the
    security-headers hook (:func:`common.web.init_security_headers`) cannot
    see this cookie; the store marks the answer itself.  A cache that kept
    it would hand one browser's session id to the next (RFC 9111 §5.2.2.5;
    RFC 9700 §4.16 asks the same of every answer that carries secrets).
    """
    if "no-store" not in (response.headers.get("Cache-Control") or ""):
        response.headers["Cache-Control"] = "no-store"
