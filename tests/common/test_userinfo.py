"""The UserInfo request (common/userinfo.py, OIDC Core 5.3)."""

from __future__ import annotations

import pytest

from common.errors import FlowError
from common.inspector import FlowLog
from common.userinfo import userinfo
from tests.relying_party import complete_sign_in, error_of, narrating


def test_userinfo(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    assert (
        userinfo(client, tokens.access_token, expected_sub=tokens.sub)["email"] == fake_issuer.user["email"]
    )
    fake_issuer.userinfo_claims = {"sub": "someone-else", "email": "evil@example.com"}
    log = FlowLog()
    with pytest.raises(FlowError) as info:
        userinfo(narrating(client, log), tokens.access_token, expected_sub=tokens.sub)
    assert error_of(info) == "invalid_userinfo"
    assert log.steps[-1]["error"]["error"] == "invalid_userinfo"
    with pytest.raises(FlowError) as info:
        userinfo(client, "not-a-token", expected_sub=tokens.sub)
    assert error_of(info) == "token_error"
