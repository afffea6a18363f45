"""What a user or a developer reads names no Python exception class ("(ConnectionError)")."""

from __future__ import annotations

import base64
import json
import re

import pytest
import requests

from common.api import call_api
from common.errors import FlowError
from common.failures import failure_reason
from tests.support import free_port

#: A Python exception class name, as a message used to end: "(ConnectionError)".
CLASS_NAME = re.compile(r"\(\w*(Error|Exception|Timeout)\)")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_the_apis_answer_when_the_issuer_is_down_names_no_exception_class(suite_env):
    """The resource server cannot fetch the issuer's metadata: a sentence, not a class name."""
    from resource_server import create_app

    dead_issuer = f"http://127.0.0.1:{free_port()}/oauth2/default"
    app = create_app({**suite_env, "ISSUER": dead_issuer, "HTTP_TIMEOUT": "2", "TESTING": True})
    token = f"{_b64({'alg': 'RS256', 'kid': 'k1'})}.{_b64({'sub': 'someone'})}.c2ln"
    answer = app.test_client().get("/api/messages", headers={"Authorization": f"Bearer {token}"})
    body = answer.get_json()
    assert answer.status_code == 503 and body["error"] == "temporarily_unavailable", body
    assert "could not be reached: the connection was refused or dropped" in body["error_description"]
    assert not CLASS_NAME.search(body["error_description"]), body


def test_calling_an_unreachable_api_names_no_exception_class():
    with pytest.raises(FlowError) as info:
        call_api(f"http://127.0.0.1:{free_port()}/api/messages", "token")
    assert info.value.error == "api_unreachable"
    assert "could not be reached: the connection was refused or dropped" in info.value.description
    assert not CLASS_NAME.search(info.value.description), info.value.description


@pytest.mark.parametrize(
    "exc, words",
    [
        (requests.exceptions.SSLError(), "TLS handshake"),
        (requests.exceptions.ReadTimeout(), "did not answer in time"),
        (requests.exceptions.ConnectTimeout(), "did not answer in time"),
        (requests.exceptions.MissingSchema(), "URL is not valid"),
        (requests.exceptions.ChunkedEncodingError(), "cut off"),
        (requests.RequestException(), "the request failed"),
    ],
)
def test_failure_reasons_are_words(exc, words):
    assert words in failure_reason(exc)
