"""Token introspection (common/introspection.py, RFC 7662)."""

from __future__ import annotations

from common.introspection import introspect
from tests.relying_party import complete_sign_in


def test_introspect(client, fake_issuer, sign_in):
    tokens = complete_sign_in(client, *sign_in())
    assert introspect(client, tokens.access_token, "access_token")["active"] is True
    assert introspect(client, "nonsense") == {"active": False}
