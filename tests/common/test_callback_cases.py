"""The shared table of callback cases (tests/cases/callback_cases.json), run against common/authorization.py.

The SPA's oidc.js is tested with the same table in Chromium, so both
relying parties keep the same rules in the same order: repeated parameters,
then ``state``, then RFC 9207 ``iss``, then the issuer's ``error``, then the code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest

from common.authorization import check_authorization_response
from common.client import Client
from common.config import load_settings
from common.errors import FlowError
from common.issuer import Issuer

TABLE = json.loads((Path(__file__).parents[1] / "cases" / "callback_cases.json").read_text())

#: The text every hostile error_description of the table carries.
SPOOFED_TEXT = "555-0100"


class TableIssuer(Issuer):
    """An issuer whose discovery document is given, not fetched."""

    def __init__(self, settings, document: dict):
        super().__init__(settings)
        self.document = document

    def metadata(self, recorder=None) -> dict:
        return self.document


def client_for(case: dict) -> Client:
    settings = load_settings({"ISSUER": TABLE["issuer"]})
    document = {
        "issuer": TABLE["issuer"],
        "authorization_response_iss_parameter_supported": case["iss_supported"],
    }
    return Client(
        TableIssuer(settings, document),
        client_id="table-client",
        client_secret="s",
        redirect_uri="https://app.test/callback",
    )


def answer_of(case: dict) -> list[tuple[str, str]]:
    query = case["query"].replace("{state}", TABLE["state"])
    query = query.replace("{issuer}", quote(TABLE["issuer"], safe=""))
    return parse_qsl(query, keep_blank_values=True)


@pytest.mark.parametrize("case", TABLE["cases"], ids=[case["name"] for case in TABLE["cases"]])
def test_callback_case(case):
    pending = {
        "state": TABLE["state"],
        "nonce": "n-1",
        "code_verifier": "v" * 43,
        "redirect_uri": "https://app.test/callback",
        "created_at": int(time.time()),
        "scope": "openid",
    }
    client = client_for(case)
    if case["expect"] == "ok":
        assert check_authorization_response(client, answer_of(case), pending) == case["code"]
        return
    with pytest.raises(FlowError) as info:
        check_authorization_response(client, answer_of(case), pending)
    assert info.value.error == case["expect"]
    shown = f"{info.value.description} {info.value.hint}"
    if case.get("shows_description") is False:
        assert SPOOFED_TEXT not in shown
    if case.get("shows_description") is True:
        description = dict(answer_of(case))["error_description"]
        assert description in shown
