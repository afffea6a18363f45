"""A browser sign-in kept in a server-side session: the part every server-side client shares.

A server-side client (the web app; the SPA's backend-for-frontend next)
signs a person in with the Authorization Code flow and keeps the tokens in
its Redis session, never in the browser.  Around the protocol steps of
:mod:`common.authorization` and :mod:`common.tokens` it has to keep, in the
user's session:

* the *pending* sign-ins, keyed by their ``state`` (RFC 6749 §10.12): a few
  at once (several tabs), each used once; each with its own DPoP key
  (RFC 9449) when the tokens will be DPoP-bound, which then stays beside
  the tokens in the server-side session, never in a cookie.  A key per
  session, not per process: one user's leaked token cannot be replayed
  with a key another session holds, ending a session retires its key, and
  no private key has to be shared by every worker (whose leak would unbind
  every user's tokens at once);
* after the sign-in, the tokens, in a session with a **new id** (against
  session fixation: the privilege level changes);
* renewal with the refresh token (RFC 6749 §6) under a per-session Redis
  lock, because an issuer with refresh-token reuse detection
  (RFC 9700 §4.14.2) revokes the whole grant at the second use of a token;
* sign-out: revoke the refresh token (RFC 7009), delete the session, and
  the RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0 §2).

:class:`BrowserSignIn` is that piece, for the current Flask request's
session.  It is parameterised by the client and the session keys' prefix,
nothing app-specific; the app's views call it between the protocol steps.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import contextmanager
from typing import Iterator

from flask import current_app, session

from .client import Client
from .errors import FlowError
from .inspector import FlowLog
from .logout import end_session_url, revoke_token
from .pkce import generate_state
from .recorder import FlowRecorder
from .session import regenerate_session_id, save_session_now, session_lock, stored_session_value
from .tokens import TokenSet, holding_key, refresh_tokens

logger = logging.getLogger(__name__)

#: Sign-ins one browser session may have in flight at once (several tabs).
MAX_PENDING_SIGN_INS = 3

#: The notice for an answer that arrives after the sign-in it belonged to was finished.
ALREADY_SIGNED_IN_NOTICE = (
    "You are already signed in. That sign-in page had been used before "
    "(a reload, the Back button, or another tab), so it was not used again."
)


class BrowserSignIn:
    """The sign-in state of the current request's server-side session.

    The session's flow log is loaded once, and :attr:`client` (the
    registered client, bound to a recorder for that log) narrates every
    step of this request into it.

    :param client: the registered client (one per process).
    :param post_logout_redirect_uri: where the issuer sends the browser after
        RP-initiated logout (registered at the issuer).
    :param key_prefix: prefix of the session keys, so that two clients may share one session.
    :param log: a fresh log to narrate into instead of the session's (a new sign-in starts one).
    """

    def __init__(
        self,
        client: Client,
        *,
        post_logout_redirect_uri: str | None,
        key_prefix: str = "",
        log: FlowLog | None = None,
    ):
        self.post_logout_redirect_uri = post_logout_redirect_uri
        self.tokens_key = key_prefix + "tokens"
        self.pending_key = key_prefix + "pending_logins"
        self.flow_log_key = key_prefix + "flow_log"
        self.logout_state_key = key_prefix + "logout_state"
        self.log = log if log is not None else FlowLog.from_list(session.get(self.flow_log_key) or [])
        self.client = client.with_recorder(FlowRecorder(self.log))

    # -- what the session holds ------------------------------------------------------------------

    @property
    def signed_in(self) -> bool:
        """True when the session holds a signed-in user's tokens."""
        return session.get(self.tokens_key) is not None

    def tokens(self) -> TokenSet | None:
        """The signed-in user's tokens, or ``None``."""
        data = session.get(self.tokens_key)
        return TokenSet.from_dict(data) if data else None

    def save_flow_log(self) -> None:
        """Store the log back (it keeps only its newest steps, so the session stays small)."""
        session[self.flow_log_key] = self.log.to_list()

    # -- pending sign-ins, keyed by state (RFC 6749 §10.12) -----------------------------------------

    def remember_pending(self, pending: dict, return_to: str) -> None:
        """Keep a sign-in just started until its answer comes; only the newest few survive."""
        pending_logins = dict(session.get(self.pending_key) or {})
        pending_logins[pending["state"]] = {"pending": pending, "next": return_to}
        session[self.pending_key] = dict(list(pending_logins.items())[-MAX_PENDING_SIGN_INS:])

    def take_pending(self, state: str | None) -> dict | None:
        """Remove and return the in-flight sign-in ``state`` names (``{"pending", "next"}``), if any.

        Single use: once an answer with its state has arrived, that sign-in
        leaves the session, whatever happens next, so the same state (and
        code) can never be replayed.  Other tabs' sign-ins stay where they are.
        """
        pending_logins = dict(session.get(self.pending_key) or {})
        entry = pending_logins.pop(state, None) if state else None
        if entry is not None:
            if pending_logins:
                session[self.pending_key] = pending_logins
            else:
                session.pop(self.pending_key)
        return entry

    def newest_pending(self) -> dict | None:
        """The newest in-flight sign-in, left in the session, for an answer that names none of them.

        :func:`common.authorization.check_authorization_response` compares its
        ``state`` with the answer's and refuses with the precise error
        (``state_mismatch``, or ``state_missing`` when there is none at all).
        """
        pending_logins = session.get(self.pending_key) or {}
        return list(pending_logins.values())[-1]["pending"] if pending_logins else None

    def answer_already_used(self, entry: dict | None) -> bool:
        """True when an answer names none of our sign-ins, none is in flight, and the session is signed in.

        That is the callback reloaded, reached again with Back, or finished in
        a second tab after the first tab's sign-in cleared the session's
        pending sign-ins: the user is signed in, and the answer is spent
        (its ``state`` was used once, RFC 6749 §10.12).  The caller shows
        the signed-in user's page with :data:`ALREADY_SIGNED_IN_NOTICE`
        instead of a ``state_missing`` error; nothing of the answer is read
        or redeemed.  While another sign-in is in flight, an answer naming
        none is refused as before (``state_mismatch`` / ``state_missing``), so
        a forged answer aimed at it is still reported.
        """
        return entry is None and self.signed_in and not session.get(self.pending_key)

    @contextmanager
    def completing(self, entry: dict | None) -> Iterator[None]:
        """Around the steps that complete a sign-in: whatever fails, no half-built session stays.

        The failure goes on to the app's error handlers; before it does, a
        session that an answer of ours was completing is cleaned up
        (:meth:`forget_failed`).  An answer that named none of our sign-ins
        (``entry`` is ``None``) leaves the session as it was.
        """
        try:
            yield
        except Exception:
            if entry is not None:
                self.forget_failed()
            raise

    def forget_failed(self) -> None:
        """Leave no half-built session behind after a sign-in failed.

        A user who was already signed in keeps that session, and a sign-in
        still in flight in another tab keeps its place; otherwise the session
        is deleted, cookie and Redis key alike.
        """
        if session.get(self.tokens_key) is None and not session.get(self.pending_key):
            session.clear()

    # -- signed in -------------------------------------------------------------------------------

    def keep(self, tokens: TokenSet) -> None:
        """Keep the tokens of a completed sign-in, in a session with a new id.

        Session fixation (OWASP): the privilege level changes now, so the
        user gets a new session id, and the old one (possibly known to an
        attacker who planted it) is deleted from Redis.  Nothing from before
        the sign-in survives except the flow log of this very sign-in.
        """
        session.clear()
        session[self.tokens_key] = tokens.to_dict()
        self.save_flow_log()
        regenerate_session_id(current_app, session)

    def refresh(self, tokens: TokenSet) -> TokenSet | None:
        """Renew ``tokens`` with their refresh token (RFC 6749 §6); ``None`` when the user must sign in again.

        One refresh per browser session at a time, across workers: two tabs
        calling the API with the same expired token would otherwise both
        present the refresh token, and an issuer with reuse detection
        (RFC 9700 §4.14.2) revokes the whole sign-in at the second use.

        Only a refusal (``invalid_grant``: the refresh token expired, was
        revoked or was reused) ends the sign-in.  An issuer that cannot be
        reached or misbehaves is not a reason to sign the user out: that
        error is raised and the session stays as it was.
        """
        if not tokens.refresh_token:
            return None
        with session_lock(current_app, session, "refresh"):
            stored = stored_session_value(current_app, session, self.tokens_key)
            if stored is None:
                return None  # signed out (in another tab) while we waited
            if stored.get("access_token") != tokens.access_token:
                # Another request renewed the tokens while we waited: use its
                # result, and its flow log (which narrates that renewal), so
                # this request writes back nothing older than what is stored.
                session[self.tokens_key] = stored
                self.log.replace_steps(stored_session_value(current_app, session, self.flow_log_key))
                self.save_flow_log()
                return TokenSet.from_dict(stored)
            try:
                # previous=tokens: the new ID token must be about the same user, and
                # the sign-in's ID token is kept when the issuer sends none.
                # With DPoP-bound tokens, the refresh carries a proof of the session's key (RFC 9449 §5).
                fresh = refresh_tokens(
                    holding_key(self.client, tokens), tokens.refresh_token, previous=tokens
                )
            except FlowError as error:
                if error.error == "issuer_unreachable" or error.status >= 500:
                    raise
                logger.info("refresh failed: %s", error)
                return None
            session[self.tokens_key] = fresh.to_dict()
            self.save_flow_log()  # the renewal's steps, for the inspector
            # Published before the lock is released, for the request waiting on it.
            save_session_now(current_app, session)
        return fresh

    # -- sign-out --------------------------------------------------------------------------------

    def sign_out(self) -> str | None:
        """Sign out here and return the issuer's logout URL (``None`` when there is none to visit).

        1. Revoke the refresh token (RFC 7009 §2), so that a copy of it, say
           in a backup of the session store, is worthless from now on; best
           effort, because the user must be able to sign out while the issuer
           is down.
        2. Delete the server-side session: the tokens are gone from Redis.
        3. RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2): the
           issuer's ``end_session_endpoint`` with ``id_token_hint`` (which
           session to end), ``post_logout_redirect_uri`` and a ``state`` kept
           in the new, nearly empty session for :meth:`confirm_logout`.
        """
        tokens = self.tokens()
        if tokens is not None and tokens.refresh_token:
            # With a proof of the session's DPoP key when the tokens are bound to it.
            revoke_token(
                holding_key(self.client, tokens), tokens.refresh_token, token_type_hint="refresh_token"
            )
        # The session's DPoP key goes with it: the key retires with the sign-in.
        session.clear()
        state = generate_state()
        url = None
        if tokens is not None and tokens.id_token:
            url = end_session_url(self.client, tokens.id_token, self.post_logout_redirect_uri, state)
        if url:
            session[self.logout_state_key] = state
        # A fresh id as well: the signed-in session's id is now worthless.
        regenerate_session_id(current_app, session)
        return url

    def confirm_logout(self, returned_state: str) -> bool:
        """True when the issuer's redirect after logout carries the ``state`` of :meth:`sign_out` (once)."""
        expected = session.pop(self.logout_state_key, None)
        return bool(expected) and hmac.compare_digest(returned_state.encode(), expected.encode())
