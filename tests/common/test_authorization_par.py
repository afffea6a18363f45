"""Pushed authorization requests in the client (common/par.py through build_authorization_request).

Against the scriptable fake issuer: a real HTTP server on loopback whose
``/v1/par`` answers what each test scripts, so the push's form, its client
authentication and every kind of answer can be checked.
"""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from common.authorization import build_authorization_request, check_authorization_response
from common.client import Client
from common.config import load_settings
from common.errors import FlowError
from common.inspector import FlowLog
from common.issuer import Issuer
from common.pkce import code_challenge_s256
from tests.fake_issuer import Reply
from tests.relying_party import narrating

from .conftest import REDIRECT_URI

REQUEST_URI = "urn:ietf:params:oauth:request_uri:abc123"


def par_client(fake_issuer, par: str, *, public: bool = False, advertise: bool = True, require: bool = False):
    """A client with ``PAR=par`` at the fake issuer, which advertises PAR (and requires it) as told."""
    fake_issuer.discovery_overrides.update(
        {
            "pushed_authorization_request_endpoint": fake_issuer.url("par") if advertise else None,
            "require_pushed_authorization_requests": True if require else None,
        }
    )
    settings = load_settings({"ISSUER": fake_issuer.issuer, "HTTP_TIMEOUT": "2", "PAR": par})
    if public:
        return Client(
            Issuer(settings),
            client_id="public-client",
            redirect_uri=REDIRECT_URI,
            token_endpoint_auth_method="none",
        )
    return Client(
        Issuer(settings),
        client_id=fake_issuer.client_id,
        client_secret=fake_issuer.client_secret,
        redirect_uri=REDIRECT_URI,
    )


def answer_push(fake_issuer, status: int = 201, body=None):
    fake_issuer.script(
        "par", Reply(status, body if body is not None else {"request_uri": REQUEST_URI, "expires_in": 60})
    )


def test_auto_pushes_every_parameter_and_sends_the_browser_with_client_id_and_request_uri(fake_issuer):
    answer_push(fake_issuer)
    log = FlowLog()
    client = narrating(par_client(fake_issuer, "auto"), log)
    url, pending = build_authorization_request(client, "openid profile", extra={"prompt": "login"})

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == fake_issuer.url("authorize")
    assert parse_qs(parts.query) == {"client_id": [fake_issuer.client_id], "request_uri": [REQUEST_URI]}
    pushed = fake_issuer.last("par")
    assert pushed.method == "POST" and pushed.query == {}
    assert pushed.form == {
        "response_type": "code",
        "client_id": fake_issuer.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": pending["state"],
        "nonce": pending["nonce"],
        "code_challenge": code_challenge_s256(pending["code_verifier"]),
        "code_challenge_method": "S256",
        "prompt": "login",
    }
    # The client's own authentication (RFC 9126 §2.1): here client_secret_basic.
    basic = base64.b64encode(f"{fake_issuer.client_id}:{fake_issuer.client_secret}".encode()).decode()
    assert pushed.headers["Authorization"] == f"Basic {basic}"
    assert pending["par"]["request_uri"] == REQUEST_URI and pending["par"]["expires_in"] == 60
    assert abs(pending["par"]["expires_at"] - (time.time() + 60)) < 5
    # The inspector shows the push (request and answer) and then the short URL.
    push_step, browser_step = log.steps[-2:]
    assert push_step["title"].startswith("Pushed authorization request")
    assert push_step["request"]["params"]["code_challenge_method"] == "S256"
    assert push_step["response"] == {"status": 201, "body": {"request_uri": REQUEST_URI, "expires_in": 60}}
    assert browser_step["request"]["url"] == url and "60 s" in browser_step["explanation"]


def test_a_public_client_pushes_with_its_client_id_only_once(fake_issuer, monkeypatch):
    answer_push(fake_issuer)
    client = par_client(fake_issuer, "on", public=True)
    bodies = []
    real_request = client.http.request

    def recording(method, url, **kwargs):
        bodies.append(kwargs.get("data"))
        return real_request(method, url, **kwargs)

    monkeypatch.setattr(client.http, "request", recording)
    build_authorization_request(client, "openid")
    pushed = fake_issuer.last("par")
    assert "Authorization" not in pushed.headers and pushed.form["client_id"] == "public-client"
    # Authlib's "none" encoding adds client_id itself: it must not be there twice (RFC 6749 §3.1).
    assert [name for name, _ in parse_qsl(bodies[-1])].count("client_id") == 1


def test_auto_without_the_endpoint_does_not_push(fake_issuer):
    url, pending = build_authorization_request(par_client(fake_issuer, "auto", advertise=False), "openid")
    assert "code_challenge" in parse_qs(urlsplit(url).query) and "par" not in pending
    assert fake_issuer.count("par") == 0


def test_off_does_not_push_even_when_offered(fake_issuer):
    url, pending = build_authorization_request(par_client(fake_issuer, "off"), "openid")
    assert "state" in parse_qs(urlsplit(url).query) and "par" not in pending and fake_issuer.count("par") == 0


def test_on_without_the_endpoint_is_one_clear_error(fake_issuer):
    with pytest.raises(FlowError) as caught:
        build_authorization_request(par_client(fake_issuer, "on", advertise=False), "openid")
    assert (
        caught.value.error == "par_unsupported"
        and "pushed_authorization_request_endpoint" in caught.value.description
    )


def test_off_when_the_issuer_requires_par_fails_before_anything_is_sent(fake_issuer):
    with pytest.raises(FlowError) as caught:
        build_authorization_request(par_client(fake_issuer, "off", require=True), "openid")
    assert caught.value.error == "par_required" and "PAR=off" in caught.value.description
    assert fake_issuer.count("par") == 0


def test_auto_pushes_when_the_issuer_requires_it(fake_issuer):
    answer_push(fake_issuer)
    url, _ = build_authorization_request(par_client(fake_issuer, "auto", require=True), "openid")
    assert "request_uri" in parse_qs(urlsplit(url).query)


def test_a_refused_push_is_a_clear_error_quoting_the_issuer_as_plain_text(fake_issuer):
    answer_push(
        fake_issuer, 400, {"error": "invalid_request", "error_description": "redirect_uri\x00 <b>bad</b>"}
    )
    with pytest.raises(FlowError) as caught:
        build_authorization_request(par_client(fake_issuer, "on"), "openid")
    assert caught.value.error == "par_refused" and "HTTP 400, invalid_request" in caught.value.description
    assert "\x00" not in caught.value.description


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 60},
        {"request_uri": REQUEST_URI},
        {"request_uri": REQUEST_URI, "expires_in": "60"},
        {"request_uri": REQUEST_URI, "expires_in": 0},
        {"request_uri": REQUEST_URI, "expires_in": True},
        {"request_uri": 5, "expires_in": 60},
    ],
)
def test_an_answer_without_a_usable_request_uri_or_expires_in_is_refused(fake_issuer, body):
    answer_push(fake_issuer, 201, body)
    with pytest.raises(FlowError) as caught:
        build_authorization_request(par_client(fake_issuer, "on"), "openid")
    assert caught.value.error == "par_error"


def _pushed_pending(fake_issuer, client, lapsed: bool):
    answer_push(fake_issuer)
    _, pending = build_authorization_request(client, "openid")
    if lapsed:
        pending["par"]["expires_at"] = time.time() - 1
    return pending


@pytest.mark.parametrize("error, lapsed", [("invalid_request_uri", False), ("invalid_request", True)])
def test_a_refused_request_uri_at_the_callback_says_try_again(fake_issuer, error, lapsed):
    client = par_client(fake_issuer, "on")
    pending = _pushed_pending(fake_issuer, client, lapsed)
    answer = {"state": pending["state"], "iss": fake_issuer.issuer, "error": error, "error_description": "x"}
    with pytest.raises(FlowError) as caught:
        check_authorization_response(client, answer, pending)
    assert caught.value.error == "request_uri_expired" and "Try again" in caught.value.hint


def test_other_errors_of_a_pushed_sign_in_stay_the_issuers(fake_issuer):
    client = par_client(fake_issuer, "on")
    pending = _pushed_pending(fake_issuer, client, lapsed=False)
    answer = {
        "state": pending["state"],
        "iss": fake_issuer.issuer,
        "error": "invalid_request",
        "error_description": "no",
    }
    with pytest.raises(FlowError) as caught:
        check_authorization_response(client, answer, pending)
    assert caught.value.error == "invalid_request" and "no" in caught.value.description
