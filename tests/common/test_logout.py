"""Revocation and the RP-initiated logout URL (common/logout.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from common.client import Client
from common.inspector import FlowLog
from common.issuer import Issuer
from common.logout import end_session_url, revoke_token
from tests.fake_issuer import Reply
from tests.relying_party import complete_sign_in, narrating


def test_revoke_is_best_effort(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    assert revoke_token(client, tokens.refresh_token) is True
    assert fake_issuer.revoked == [tokens.refresh_token]
    fake_issuer.hang("revoke", 2)
    log = FlowLog()
    outcome = revoke_token(narrating(client, log), tokens.refresh_token)  # does not raise
    assert outcome is not True and "did not answer in time" in outcome
    assert log.steps[-1]["error"]["error"] == "issuer_unreachable"


@pytest.mark.parametrize(
    "reply,expected",
    [
        (Reply(200, ""), True),  # RFC 7009 §2.2: the body of a success is ignored
        (Reply(400, {"error": "unsupported_token_type"}), "HTTP 400"),
        (Reply(503, ""), "HTTP 503"),
    ],
)
def test_revoke_reports_its_outcome(client, fake_issuer, reply, expected):
    fake_issuer.script("revoke", reply)
    outcome = revoke_token(client, "a-refresh-token")
    assert outcome is True if expected is True else expected in outcome


def test_end_session_url(client, fake_issuer):
    url = end_session_url(client, "id.token.hint", "http://localhost:5001/", "st")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(fake_issuer.url("end_session"))
    assert query == {
        "client_id": fake_issuer.client_id,
        "id_token_hint": "id.token.hint",
        "post_logout_redirect_uri": "http://localhost:5001/",
        "state": "st",
    }
    fake_issuer.discovery_overrides["end_session_endpoint"] = None
    fresh = Client(Issuer(client.settings), client_id="c", client_secret="s")
    assert end_session_url(fresh, "x", "http://localhost:5001/", "st") is None
