"""Unit tests of :mod:`common.device`: the client's side of RFC 8628 against scripted answers.

The issuer here is an in-process script of ``(status, body)`` answers (a
unit test: no network); the integration tests beside this file run the
same code against the real dev issuer.  Sleeping and the clock are handed
in, so the intervals the client waits are asserted, not slept.
"""

from __future__ import annotations

import copy

import pytest

from common.device import DeviceAuthorization, DeviceFlowEnded, poll_for_tokens, request_device_authorization
from common.errors import FlowError
from common.inspector import FlowLog
from common.recorder import NULL_RECORDER, FlowRecorder
from common.tokens import TokenEndpointError

TOKENS = {"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": "a.b.c"}


def pending(error: str = "authorization_pending") -> tuple[int, dict]:
    return 400, {"error": error}


class ScriptedClient:
    """Just enough of :class:`common.client.Client` for the device steps: scripted ``post_form`` answers."""

    #: No DPoP key (RFC 9449): these answers are Bearer tokens.
    dpop_key = None

    def __init__(self, answers: list[tuple[int, dict]], recorder: FlowRecorder = NULL_RECORDER):
        self.answers = list(answers)
        self.recorder = recorder
        self.sent: list[tuple[str, dict]] = []

    def with_recorder(self, recorder: FlowRecorder) -> "ScriptedClient":
        bound = copy.copy(self)
        bound.recorder = recorder
        return bound

    def post_form(self, endpoint_name: str, params: dict, *, what: str, step: str, **_) -> tuple[int, dict]:
        self.sent.append((endpoint_name, params))
        status, body = self.answers.pop(0)
        self.recorder.step(
            step, request={"method": "POST", "params": params}, response={"status": status, "body": body}
        )
        return status, body


def authorization(interval: int = 5, expires_at: float = 1e12) -> DeviceAuthorization:
    return DeviceAuthorization(
        "dc", "BCDF-GHJK", "https://issuer.test/activate", None, 600, interval, expires_at
    )


def test_slow_down_adds_five_seconds_to_this_and_every_later_wait():
    client = ScriptedClient([pending(), pending("slow_down"), pending(), pending("slow_down"), (200, TOKENS)])
    slept, polls = [], []
    tokens = poll_for_tokens(client, authorization(), sleep=slept.append, on_poll=lambda *a: polls.append(a))
    assert tokens.access_token == "at"
    assert slept == [5, 5, 10, 10, 15]
    assert polls == [
        ("authorization_pending", 5),
        ("slow_down", 10),
        ("authorization_pending", 10),
        ("slow_down", 15),
    ]
    assert all(params["device_code"] == "dc" for _, params in client.sent)
    assert {params["grant_type"] for _, params in client.sent} == {
        "urn:ietf:params:oauth:grant-type:device_code"
    }


@pytest.mark.parametrize("answer", ["access_denied", "expired_token"])
def test_a_final_answer_ends_the_flow(answer):
    client = ScriptedClient([pending(), pending(answer)])
    with pytest.raises(DeviceFlowEnded) as ended:
        poll_for_tokens(client, authorization(), sleep=lambda _: None)
    assert ended.value.reason == answer and ended.value.error == answer
    assert not client.answers


def test_other_refusals_are_token_errors_as_for_every_grant():
    client = ScriptedClient([pending("invalid_grant")])
    with pytest.raises(TokenEndpointError) as refused:
        poll_for_tokens(client, authorization(), sleep=lambda _: None)
    assert refused.value.issuer_error == "invalid_grant"


def test_the_client_stops_by_itself_once_the_codes_have_expired():
    # An issuer that keeps saying "pending" after expires_in: the client gives up on its own.
    client = ScriptedClient([pending()] * 50)
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(DeviceFlowEnded) as ended:
        poll_for_tokens(client, authorization(expires_at=60), sleep=sleep, clock=lambda: now[0])
    assert ended.value.reason == "expired_token"
    assert len(client.sent) == 13  # polls at 5, 10, ... 65 s: one interval past expiry, then no more


def test_only_the_first_pending_poll_is_narrated_and_pending_is_no_failure():
    log = FlowLog(max_steps=50)
    client = ScriptedClient([pending()] * 5 + [(200, TOKENS)], FlowRecorder(log))
    poll_for_tokens(client, authorization(), sleep=lambda _: None)
    titles = [step["title"] for step in log.to_list()]
    assert titles == [
        "Token request (device code)",
        "Token request (device code)",
        "Polling (authorization_pending 4 more times)",
    ]
    assert not any(step.get("error") for step in log.to_list())


def device_answer(**changes) -> dict:
    answer = {
        "device_code": "dc",
        "user_code": "BCDF-GHJK",
        "verification_uri": "https://issuer.test/activate",
        "verification_uri_complete": "https://issuer.test/activate?user_code=BCDF-GHJK",
        "expires_in": 600,
    }
    answer.update(changes)
    return {k: v for k, v in answer.items() if v is not None}


def test_the_device_authorization_answer_is_read_with_the_rfcs_default_interval():
    client = ScriptedClient([(200, device_answer())])
    got = request_device_authorization(client, "openid")
    assert (got.user_code, got.interval, got.expires_in) == ("BCDF-GHJK", 5, 600)
    assert client.sent == [("device_authorization_endpoint", {"scope": "openid"})]


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"verification_uri": "http://phish.example.com/activate"}, "issuer_misconfigured"),
        ({"verification_uri_complete": "http://phish.example.com/a?user_code=X"}, "issuer_misconfigured"),
        ({"user_code": "BCDF\x1b[2J"}, "invalid_response"),
        ({"user_code": None}, "invalid_response"),
        ({"device_code": None}, "invalid_response"),
        ({"expires_in": "soon"}, "invalid_response"),
        ({"interval": 0}, "invalid_response"),
        ({"interval": "5; rm"}, "invalid_response"),
    ],
)
def test_an_unusable_device_authorization_answer_is_a_clear_error(changes, error):
    with pytest.raises(FlowError) as failed:
        request_device_authorization(ScriptedClient([(200, device_answer(**changes))]), "openid")
    assert failed.value.error == error


def test_a_refused_device_authorization_says_how_to_enable_the_grant():
    client = ScriptedClient([(400, {"error": "unauthorized_client", "error_description": "no <b>grant</b>"})])
    with pytest.raises(FlowError) as failed:
        request_device_authorization(client, "openid")
    assert failed.value.error == "device_authorization_error"
    assert failed.value.issuer_error == "unauthorized_client"
    assert "Device Authorization" in failed.value.hint
