"""The flow inspector (common/inspector.py and common/templates/common/inspector.html)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask, render_template_string

from common.inspector import FlowLog, decode_unverified, redact, redact_url, shorten

SECRETS = {
    "client_secret": "s3cr3t-client-secret",
    "password": "hunter2-password",
    "code_verifier": "verifier-abcdefghijklmnopqrstuvwxyz0123456789",
    "client_assertion": "eyJhbGciOiJSUzI1NiJ9.assertion-payload.assertion-signature",
}


def test_redact_secrets_and_headers():
    cleaned = redact(
        {
            **SECRETS,
            "Authorization": "Basic dGVzdDpzZWNyZXQ=",
            "grant_type": "authorization_code",
            "nested": {"password": "also-secret"},
        }
    )
    for key in SECRETS:
        assert cleaned[key] == "[redacted]"
    assert cleaned["Authorization"] == "[redacted]"
    assert cleaned["nested"]["password"] == "[redacted]"
    assert cleaned["grant_type"] == "authorization_code"


def test_tokens_are_shortened():
    access = "eyJhbGciOiJSUzI1NiJ9." + "a" * 1200 + ".x9Q"
    refresh = "refresh-" + "r" * 40
    cleaned = redact({"access_token": access, "refresh_token": refresh, "id_token": access})
    assert cleaned["access_token"] == shorten(access)
    assert cleaned["access_token"].startswith("eyJhbGci…(") and cleaned["access_token"].endswith("…x9Q")
    assert f"({len(access)} chars)" in cleaned["access_token"]
    assert cleaned["refresh_token"] == f"refr…({len(refresh)} chars)"
    assert refresh not in json.dumps(cleaned)


def test_short_values_are_never_shown_whole():
    assert "abcdef" not in shorten("abcdef")


def test_redact_url():
    url = redact_url("http://localhost:5001/cb?code=" + "c" * 40 + "&state=abc#access_token=" + "t" * 40)
    assert "c" * 40 not in url and "t" * 40 not in url and "state=abc" in url


def test_steps_are_bounded_and_round_trip():
    log = FlowLog(max_steps=20)
    for i in range(25):
        log.step(f"Step {i}", "explained")
    assert len(log) == 20 and log.steps[0]["title"] == "Step 5"
    copy = FlowLog.from_list(json.loads(json.dumps(log.to_list())))
    assert copy.to_list() == log.to_list()
    copy.step("Next", "more")
    assert copy.steps[-1]["n"] == 26
    assert FlowLog.from_list(None).to_list() == []


def test_step_redacts_request_and_response():
    log = FlowLog()
    log.step(
        "Token request",
        "explained",
        request={
            "method": "POST",
            "url": "https://issuer.test/token",
            "headers": {"Authorization": "Basic c2VjcmV0"},
            "params": dict(SECRETS),
        },
        response={"status": 200, "body": {"access_token": "A" * 900, "refresh_token": "R" * 40}},
    )
    text = json.dumps(log.to_list()) + log.render_text()
    for value in [*SECRETS.values(), "c2VjcmV0", "A" * 900, "R" * 40]:
        assert value not in text


def test_add_jwt_and_render_text(fake_issuer):
    log = FlowLog()
    token = fake_issuer.mint_id_token({"nonce": "n"})
    log.add_jwt(
        token,
        [
            {"check": "nonce", "ok": True, "detail": "matches"},
            {"check": "aud", "ok": False, "detail": "wrong audience"},
        ],
        title="ID token validation",
    )
    step = log.steps[-1]
    assert step["jwt"]["header"]["kid"] == fake_issuer.key.kid
    assert step["jwt"]["claims"]["nonce"] == "n"
    assert token not in json.dumps(step)
    text = log.render_text()
    assert "✔ nonce: matches" in text and "✘ aud: wrong audience" in text


def test_decode_unverified():
    with pytest.raises(ValueError):
        decode_unverified("not-a-jwt")


def test_template_renders_steps_escaped(fake_issuer):
    log = FlowLog()
    log.step(
        "Authorization request",
        "The browser now goes to the issuer.",
        request={"method": "GET", "url": "https://issuer.test/authorize?state=x", "params": {"state": "x"}},
    )
    log.step(
        "Callback", "<script>alert(1)</script>", error={"error": "access_denied", "description": "<b>no</b>"}
    )
    log.add_jwt(
        fake_issuer.mint_id_token(), [{"check": "iss", "ok": True, "detail": "exact"}], title="ID token"
    )
    template_folder = Path(__file__).resolve().parents[2] / "common" / "templates"
    app = Flask(__name__, template_folder=str(template_folder))
    with app.app_context():
        html = render_template_string('{% include "common/inspector.html" %}', steps=log.to_list())
        empty = render_template_string('{% include "common/inspector.html" %}', steps=[])
    assert 'id="inspector"' in html
    for n in (1, 2, 3):
        assert f'id="step-{n}"' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<b>no</b>" not in html
    assert 'id="inspector-empty"' in empty


def test_decode_unverified_refuses_deep_nesting_with_value_error():
    """A hostile token shown in the inspector: ValueError (a placeholder), never RecursionError."""
    import base64

    nested = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).rstrip(b"=").decode()
    for token in (f"{nested}.e30.sig", f"e30.{nested}.sig"):
        with pytest.raises(ValueError):
            decode_unverified(token)
    log = FlowLog()
    step = log.add_jwt(f"e30.{nested}.sig", [], title="Hostile token")
    assert "(not a JWT)" in step["jwt"]["claims"]


def test_long_lists_and_big_objects_are_bounded():
    """An issuer or API answer with huge lists or objects must not land in the session as it is."""
    from common.inspector import MAX_ITEMS, MAX_KEYS

    body = {"items": list(range(5000)), "object": {f"k{i}": i for i in range(5000)}}
    step = FlowLog().step("API call", "explained", response={"status": 200, "body": body})
    items = step["response"]["body"]["items"]
    assert items[:MAX_ITEMS] == list(range(MAX_ITEMS)) and items[-1] == f"… ({5000 - MAX_ITEMS} more)"
    assert len(items) == MAX_ITEMS + 1
    obj = step["response"]["body"]["object"]
    assert len(obj) == MAX_KEYS + 1 and obj["…"] == f"({5000 - MAX_KEYS} more)"


def test_deep_nesting_is_summarised_not_a_recursion_error():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    step = FlowLog().step("API call", "explained", response={"status": 200, "body": {"deep": deep}})
    assert "nested deeper" in json.dumps(step)


def test_each_step_has_a_total_size_bound():
    """Bounded parts still add up (40 keys x 20 items x 300 chars): the whole step is capped."""
    from common.inspector import MAX_STEP_CHARS

    wide = {f"key{i}": ["v" * 290] * 20 for i in range(40)}
    log = FlowLog()
    step = log.step(
        "Token request",
        "explained",
        request={"method": "POST", "url": "https://issuer.test/t", "params": wide},
        response={"status": 200, "body": wide},
    )
    assert len(json.dumps(step)) <= MAX_STEP_CHARS
    assert step["title"] == "Token request" and step["response"]["status"] == 200
    assert "left out" in step["response"]["body"]
    # A small step is kept exactly.
    small = log.step("Small", "explained", response={"status": 200, "body": {"a": [1, 2, 3]}})
    assert small["response"]["body"] == {"a": [1, 2, 3]}
    # add_jwt attaching a big JWT to the last step is bounded too.
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({f"c{i}": "x" * 290 for i in range(40)}).encode()).decode()
    log.add_jwt(f"e30.{claims.rstrip('=')}.sig", [{"check": "iss", "ok": True, "detail": "d" * 3000}])
    assert len(json.dumps(log.steps[-1])) <= MAX_STEP_CHARS
    assert log.steps[-1]["jwt"]["checks"][0]["check"] == "iss"
