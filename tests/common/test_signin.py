"""The browser sign-in's session bookkeeping (common/signin.py), parameterised by its key prefix.

The full flow (new session id, refresh under the lock, sign-out) runs in
tests/web_app against real Redis; here only the pending sign-ins, keyed by
``state``, in a bare Flask session, under a prefix a second client (the
SPA's backend-for-frontend) would use.
"""

from __future__ import annotations

from flask import Flask, session

from common.client import Client
from common.config import load_settings
from common.issuer import Issuer
from common.signin import MAX_PENDING_SIGN_INS, BrowserSignIn


def _sign_in(prefix: str = "bff_") -> BrowserSignIn:
    client = Client(Issuer(load_settings({})), client_id="c", client_secret="s")
    return BrowserSignIn(client, post_logout_redirect_uri="https://app.test/", key_prefix=prefix)


def _pending(state: str) -> dict:
    return {"state": state, "nonce": "n", "code_verifier": "v", "created_at": 0, "scope": "openid"}


def test_pending_sign_ins_are_kept_by_state_and_taken_once():
    app = Flask(__name__)
    app.secret_key = "test"
    with app.test_request_context():
        sign_in = _sign_in()
        for number in range(MAX_PENDING_SIGN_INS + 1):
            sign_in.remember_pending(_pending(f"st-{number}"), "/next")
        assert list(session["bff_pending_logins"]) == [f"st-{n}" for n in range(1, MAX_PENDING_SIGN_INS + 1)]
        assert "pending_logins" not in session  # another client's keys are untouched
        assert sign_in.newest_pending()["state"] == f"st-{MAX_PENDING_SIGN_INS}"
        assert sign_in.take_pending("st-1") == {"pending": _pending("st-1"), "next": "/next"}
        assert sign_in.take_pending("st-1") is None  # single use
        assert sign_in.take_pending(None) is None


def test_a_failed_sign_in_leaves_no_half_built_session():
    app = Flask(__name__)
    app.secret_key = "test"
    with app.test_request_context():
        sign_in = _sign_in()
        sign_in.remember_pending(_pending("st-1"), "/")
        session["unrelated"] = 1
        sign_in.take_pending("st-1")
        sign_in.forget_failed()
        assert dict(session) == {}
