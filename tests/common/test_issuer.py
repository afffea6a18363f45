"""The issuer (common/issuer.py): discovery, its cache and the exact issuer check, against the fake issuer."""

from __future__ import annotations

import pytest

from common.authorization import build_authorization_request
from common.client import Client
from common.config import load_settings
from common.errors import FlowError
from common.issuer import Issuer
from common.tokens import exchange_code
from tests.relying_party import error_of

from .conftest import REDIRECT_URI


def test_discovery_is_cached(client, fake_issuer):
    client.issuer.metadata()
    client.issuer.metadata()
    assert fake_issuer.count("discovery") == 1


def test_discovery_issuer_mismatch(client, fake_issuer):
    fake_issuer.discovery_overrides["issuer"] = fake_issuer.issuer + "/"
    with pytest.raises(FlowError) as info:
        client.issuer.metadata()
    assert error_of(info) == "issuer_misconfigured"


@pytest.mark.parametrize("script", ["fail", "html", "hang"])
def test_discovery_unreachable(client, fake_issuer, script):
    getattr(fake_issuer, script)("discovery")
    with pytest.raises(FlowError) as info:
        client.issuer.metadata()
    assert error_of(info) == "issuer_unreachable"
    assert info.value.hint


def test_issuer_down(settings):
    closed = load_settings({"ISSUER": "http://127.0.0.1:9/oauth2/default", "HTTP_TIMEOUT": "0.5"})
    client = Client(Issuer(closed), client_id="c", client_secret="s", redirect_uri=REDIRECT_URI)
    with pytest.raises(FlowError) as info:
        build_authorization_request(client, "openid")
    assert error_of(info) == "issuer_unreachable"


def test_non_https_endpoint_refused(client, fake_issuer):
    fake_issuer.discovery_overrides["token_endpoint"] = "http://issuer.example.com/token"
    with pytest.raises(FlowError) as info:
        exchange_code(client, "c", {"code_verifier": "v"})
    assert error_of(info) == "issuer_misconfigured"
