"""common/api.py: the one Bearer call to the API, over real HTTP to the scriptable test issuer."""

from __future__ import annotations

import json

import pytest

from common.api import MAX_TEXT_BODY, call_api
from common.errors import FlowError
from common.http import http_session
from common.inspector import FlowLog
from common.recorder import FlowRecorder
from tests.fake_issuer import Reply
from tests.support import free_port

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.a-secret-signature-part"


@pytest.fixture
def http():
    return http_session(timeout=1)


def test_bearer_token_in_the_header_and_redacted_in_the_log(fake_issuer, http):
    fake_issuer.script("api", Reply(200, {"messages": []}))
    log = FlowLog()
    answer = call_api(fake_issuer.url("api"), TOKEN, http=http, recorder=FlowRecorder(log))
    assert fake_issuer.last("api").headers["Authorization"] == f"Bearer {TOKEN}"
    assert answer.status == 200 and answer.ok and isinstance(answer.body, dict)
    step = log.steps[-1]
    assert step["title"].startswith("Call the API: GET ")
    assert step["response"]["status"] == 200
    assert TOKEN not in json.dumps(log.to_list())


def test_refusal_carries_www_authenticate(fake_issuer, http):
    challenge = 'Bearer error="invalid_token", error_description="expired"'
    fake_issuer.script("api", Reply(401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge}))
    answer = call_api(fake_issuer.url("api"), TOKEN, http=http)
    assert answer.status == 401 and not answer.ok and answer.www_authenticate == challenge


def test_text_answer_is_bounded(fake_issuer, http):
    fake_issuer.script("api", Reply(502, "x" * (MAX_TEXT_BODY * 3)))
    answer = call_api(fake_issuer.url("api"), TOKEN, http=http)
    assert answer.status == 502 and answer.body == "x" * MAX_TEXT_BODY


def test_redirects_are_not_followed(fake_issuer, http):
    """The token goes only where we sent it."""
    fake_issuer.script("api", Reply(302, "", {"Location": fake_issuer.url("userinfo")}))
    assert call_api(fake_issuer.url("api"), TOKEN, http=http).status == 302
    assert fake_issuer.count("userinfo") == 0


@pytest.mark.parametrize("hang", [False, True])
def test_unreachable_api(fake_issuer, http, hang):
    if hang:
        fake_issuer.hang("api", 2)
        url = fake_issuer.url("api")
    else:
        url = f"http://127.0.0.1:{free_port()}/api/messages"
    log = FlowLog()
    with pytest.raises(FlowError) as info:
        call_api(url, TOKEN, http=http, recorder=FlowRecorder(log))
    assert info.value.error == "api_unreachable" and info.value.status == 502 and info.value.hint
    assert log.steps[-1]["error"]["error"] == "api_unreachable"
