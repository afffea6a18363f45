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


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_failed_discovery_backs_off_briefly_then_recovers(settings, fake_issuer):
    """Nothing cached: a failure is the answer for ``retry_backoff`` (1 s), then the issuer is asked again."""
    clock = Clock()
    issuer = Issuer(settings, clock=clock)
    fake_issuer.fail("discovery", 503, times=1)
    for _ in range(3):
        with pytest.raises(FlowError) as info:
            issuer.metadata()
        assert error_of(info) == "issuer_unreachable"
    assert fake_issuer.count("discovery") == 1
    clock.now += 1.1
    assert issuer.metadata()["issuer"] == fake_issuer.issuer
    assert fake_issuer.count("discovery") == 2


def test_stale_discovery_refresh_failure_backs_off_for_refresh_backoff(settings, fake_issuer):
    clock = Clock()
    issuer = Issuer(settings, clock=clock, metadata_ttl=60)
    cached = issuer.metadata()
    clock.now += 61
    fake_issuer.fail("discovery", 503)
    assert issuer.metadata() == cached and fake_issuer.count("discovery") == 2
    clock.now += 29
    assert issuer.metadata() == cached and fake_issuer.count("discovery") == 2
    fake_issuer.reset("discovery")
    clock.now += 2
    assert issuer.metadata() == cached and fake_issuer.count("discovery") == 3
    assert issuer.metadata() is not cached  # the refreshed document
