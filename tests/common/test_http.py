"""Outbound HTTP rules (common/http.py): timeouts and the transport check."""

from __future__ import annotations

import time

import pytest

from common.config import load_settings
from common.errors import FlowError
from common.http import IssuerUnreachable, get_json, http_session, is_local_or_test_host, require_secure_url


@pytest.mark.parametrize("host,ok", [
    ("localhost", True), ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("issuer.test", True),
    ("example.com", False), ("10.0.0.1", False), ("test.example.com", False), ("", False), (None, False),
])
def test_local_or_test_host(host, ok):
    assert is_local_or_test_host(host) is ok


@pytest.mark.parametrize("url,ok", [
    ("https://example.com/token", True), ("http://localhost:9000/token", True), ("http://[::1]:9000/t", True),
    ("http://issuer.test/t", True), ("http://example.com/token", False), ("ftp://example.com/", False),
    ("javascript:alert(1)", False), ("", False),
])
def test_require_secure_url(url, ok):
    if ok:
        assert require_secure_url(url, "endpoint") == url
    else:
        with pytest.raises(FlowError) as info:
            require_secure_url(url, "endpoint")
        assert info.value.error == "issuer_misconfigured"


def test_session_has_default_timeout_and_user_agent(fake_issuer):
    http = http_session(load_settings({"HTTP_TIMEOUT": "0.3"}))
    assert http.timeout == 0.3
    fake_issuer.hang("discovery", 2)
    started = time.monotonic()
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http, fake_issuer.url("discovery"), "discovery document")
    assert time.monotonic() - started < 1.5
    assert info.value.status == 502 and "in time" in info.value.description
    fake_issuer.reset()
    get_json(http, fake_issuer.url("discovery"), "discovery document")
    assert "oauth-flask-samples" in fake_issuer.last("discovery").headers["User-Agent"]


def test_connection_refused_is_issuer_unreachable():
    with pytest.raises(IssuerUnreachable) as info:
        get_json(http_session(timeout=0.5), "http://127.0.0.1:9/x", "discovery document")
    assert info.value.error == "issuer_unreachable"
