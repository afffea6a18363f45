"""The authorization request and the check of its response (common/authorization.py)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from common.authorization import build_authorization_request
from common.errors import FlowError
from common.inspector import FlowLog
from common.pkce import code_challenge_s256
from tests.relying_party import complete_sign_in, error_of, narrating

from .conftest import REDIRECT_URI


def test_authorization_request(client, fake_issuer):
    log = FlowLog()
    url, pending = build_authorization_request(
        narrating(client, log), "openid profile", extra={"state": "fixed", "prompt": "login"}
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(fake_issuer.url("authorize") + "?")
    assert query["response_type"] == "code"
    assert query["client_id"] == fake_issuer.client_id
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["state"] == pending["state"] != "fixed"
    assert query["nonce"] == pending["nonce"]
    assert query["code_challenge"] == code_challenge_s256(pending["code_verifier"])
    assert query["code_challenge_method"] == "S256"
    assert query["prompt"] == "login"
    assert set(pending) == {"state", "nonce", "code_verifier", "redirect_uri", "created_at", "scope"}
    json.dumps(pending)
    _, again = build_authorization_request(client, "openid")
    assert again["state"] != pending["state"] and again["nonce"] != pending["nonce"]
    assert again["code_verifier"] != pending["code_verifier"]
    assert log.steps[-1]["title"] == "Authorization request"


def _issuer_error(client, pending, **params):
    """An error response as RFC 6749 §4.1.2.1 and RFC 9207 §2 shape it: our state, the issuer's iss."""
    return {"state": pending["state"], "iss": client.issuer.identifier, **params}


def test_error_parameter_is_passed_on_as_text(client, sign_in):
    _, pending = sign_in()
    log = FlowLog()
    with pytest.raises(FlowError) as info:
        complete_sign_in(
            client,
            _issuer_error(
                client,
                pending,
                error="access_denied",
                error_description=("User said no <script>alert(1)</script>\r\nX-Injected: 1"),
            ),
            pending,
            log=log,
        )
    assert error_of(info) == "access_denied"
    assert "User said no" in info.value.description
    assert "\n" not in info.value.description and "\r" not in info.value.description
    assert log.steps[-1]["error"]["error"] == "access_denied"


def test_error_description_is_bounded(client, sign_in):
    _, pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(
            client,
            _issuer_error(client, pending, error="access_denied", error_description="x" * 5000),
            pending,
        )
    assert error_of(info) == "access_denied"
    assert 300 <= len(info.value.description) < 400


def test_hostile_error_code_is_replaced(client, sign_in):
    _, pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(
            client, _issuer_error(client, pending, error='<img src=x onerror=alert(1)>"'), pending
        )
    assert error_of(info) == "authorization_error"


SPOOFED = "Your account is locked. Call support at +1 555 0100 and give your password"


@pytest.mark.parametrize("case", ["no_state", "foreign_state", "no_sign_in_pending"])
def test_unsolicited_error_is_refused_without_its_text(client, fake_issuer, sign_in, case):
    """RFC 6749 §10.12: an error response that does not carry our state is not ours.

    Anyone can link a user to the callback with ``?error=...&error_description=...``;
    showing that text would put the attacker's sentence on the app's own origin.
    """
    _, pending = sign_in()
    params = {"error": "account_locked", "error_description": SPOOFED, "iss": client.issuer.identifier}
    if case == "foreign_state":
        params["state"] = "a-state-this-client-never-sent"
    elif case == "no_sign_in_pending":
        params["state"] = pending["state"]
        pending = None
    log = FlowLog()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending, log=log)
    expected = "state_mismatch" if case == "foreign_state" else "state_missing"
    assert error_of(info) == expected
    shown = " ".join((info.value.error, info.value.description, info.value.hint))
    assert "Call support" not in shown and "account_locked" not in shown
    assert log.steps[-1]["error"]["error"] == expected
    assert fake_issuer.count("token") == 0


def test_error_without_iss_when_advertised_is_refused(client, sign_in):
    """RFC 9207 §2.4: ``iss`` is checked in error responses too (they can be mixed up as well)."""
    _, pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(
            client,
            {"state": pending["state"], "error": "access_denied", "error_description": SPOOFED},
            pending,
        )
    assert error_of(info) == "iss_mismatch"
    assert "Call support" not in info.value.description


def test_error_page_escapes_description(client, sign_in):
    from flask import Flask

    from common.errors import init_error_pages

    _, pending = sign_in()
    app = Flask(__name__, template_folder="../../common/templates")
    app.jinja_env.globals["url_for"] = lambda *a, **k: "/style.css"
    init_error_pages(app, answer="html")

    @app.route("/cb")
    def callback():
        complete_sign_in(
            client,
            _issuer_error(
                client, pending, error="access_denied", error_description="<script>alert(1)</script>"
            ),
            pending,
        )

    response = app.test_client().get("/cb", headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert b"<script>alert(1)</script>" not in response.data
    assert b"&lt;script&gt;" in response.data


def test_no_pending_sign_in(client, sign_in):
    params, _ = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, None)
    assert error_of(info) == "state_missing"


def test_state_missing(client, sign_in):
    params, pending = sign_in()
    del params["state"]
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "state_missing"


def test_foreign_state(client, fake_issuer, sign_in):
    params, _ = sign_in()
    _, other_pending = sign_in()
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, other_pending)
    assert error_of(info) == "state_mismatch"
    assert fake_issuer.count("token") == 0


def test_login_expired(client, fake_issuer, sign_in):
    params, pending = sign_in()
    pending["created_at"] -= 601
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "login_expired"
    assert fake_issuer.count("token") == 0


def test_rfc9207_iss_missing_when_advertised(client, fake_issuer, sign_in):
    params, pending = sign_in()
    del params["iss"]
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "iss_mismatch"
    assert fake_issuer.count("token") == 0


def test_rfc9207_iss_wrong(client, fake_issuer, sign_in):
    params, pending = sign_in()
    params["iss"] = "https://evil.test/oauth2/default"
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "iss_mismatch"


def test_rfc9207_iss_optional_when_not_advertised(client, fake_issuer, sign_in):
    fake_issuer.discovery_overrides["authorization_response_iss_parameter_supported"] = None
    fake_issuer.send_iss = False
    tokens = complete_sign_in(client, *sign_in())
    assert tokens.access_token


def test_code_missing(client, sign_in):
    params, pending = sign_in()
    del params["code"]
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, params, pending)
    assert error_of(info) == "invalid_request"
