"""TRUSTED_PROXIES, the Host allowlist and HSTS, on a tiny app composed like every app of the suite.

Unit tests (Flask's test client, no network): the rules of common/web.py
and common/hosts.py, which every app factory and the dev issuer share
through ``init_settings``.
"""

from __future__ import annotations

import flask
import pytest
from flask import jsonify, request

from common.config import load_settings
from common.errors import init_error_pages
from common.hosts import host_allowed
from common.web import init_health, init_security_headers, init_settings, init_templates

FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.test",
    "X-Forwarded-Port": "443",
}


def make_app(base_url: str, trusted_proxies: str = "0", **kwargs) -> flask.Flask:
    """An app of ``init_settings`` + error pages + headers, with a view that echoes what it was told."""
    test_config = {"WEB_BASE_URL": base_url, "TRUSTED_PROXIES": trusted_proxies}
    app = flask.Flask(__name__)
    settings = load_settings(test_config, component="web_app")
    init_settings(app, settings, app_name="demo", base_url=base_url, test_config=test_config, **kwargs)
    init_templates(app, title="Demo")
    init_error_pages(app, answer="html")
    init_security_headers(app)
    init_health(app)

    @app.get("/echo")
    def echo():
        """What the app believes about the request."""
        return jsonify(scheme=request.scheme, host=request.host, remote_addr=request.remote_addr)

    return app


def test_with_no_trusted_proxy_forwarded_headers_count_for_nothing():
    client = make_app("http://app.example.test").test_client()
    answer = client.get("/echo", base_url="http://app.example.test", headers=FORWARDED)
    assert answer.status_code == 200
    assert answer.json == {"scheme": "http", "host": "app.example.test", "remote_addr": "127.0.0.1"}
    # A forged X-Forwarded-Host is not a way around the Host check either.
    sneaky = client.get(
        "/echo", base_url="http://app.example.test", headers={"X-Forwarded-Host": "evil.test"}
    )
    assert sneaky.status_code == 200 and sneaky.json["host"] == "app.example.test"


def test_one_trusted_proxy_gives_the_clients_scheme_host_and_address():
    """Behind one proxy (TRUSTED_PROXIES=1) the app sees https, the public host, the client's address."""
    client = make_app("https://app.example.test", trusted_proxies="1").test_client()
    answer = client.get("/echo", base_url="http://127.0.0.1:8001", headers=FORWARDED)
    assert answer.status_code == 200, answer.text
    assert answer.json == {"scheme": "https", "host": "app.example.test", "remote_addr": "203.0.113.7"}
    # A value the client put before the proxy's own is not believed: only the last one counts.
    chained = {**FORWARDED, "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    assert client.get("/echo", base_url="http://127.0.0.1:8001", headers=chained).json["remote_addr"] == (
        "203.0.113.7"
    )


def test_a_forwarded_host_that_is_not_ours_is_refused_behind_a_trusted_proxy():
    client = make_app("https://app.example.test", trusted_proxies="1").test_client()
    forged = client.get(
        "/echo", base_url="http://127.0.0.1:8001", headers={**FORWARDED, "X-Forwarded-Host": "evil.test"}
    )
    assert forged.status_code == 400 and b"invalid_host" in forged.data
    assert b"https://app.example.test" in forged.data  # the page names the right address
    assert forged.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("host", ["evil.test", "app.example.test.evil.test", "app.example.test:8443", ""])
def test_a_foreign_host_is_refused_and_healthz_answers_any(host):
    client = make_app("https://app.example.test").test_client()
    refused = client.get("/echo", base_url="https://app.example.test", headers={"Host": host})
    assert refused.status_code == 400 and b"invalid_host" in refused.data
    assert client.get("/healthz", headers={"Host": host or "x"}).status_code == 200


def test_loopback_base_urls_accept_the_other_loopback_names_only_for_apps():
    """An app on http://localhost:5001 is also reached as 127.0.0.1 (then moved to its base URL)."""
    for host in ("localhost:5001", "localhost", "127.0.0.1:5001", "[::1]:5001", "127.0.0.1:9"):
        assert host_allowed(host, "http://localhost:5001", loopback_aliases=True), host
    for host in ("rebind.test:5001", "localhost.evil.test", "[::1]x", "127.0.0.2:5001", "localhost:x"):
        assert not host_allowed(host, "http://localhost:5001", loopback_aliases=True), host
    # The dev issuer (loopback_aliases=False): its exact host and port only.
    assert host_allowed("127.0.0.1:9000", "http://127.0.0.1:9000", loopback_aliases=False)
    assert not host_allowed("localhost:9000", "http://127.0.0.1:9000", loopback_aliases=False)
    # A public name never has aliases; its default port may be left out.
    assert host_allowed("app.example.test", "https://app.example.test:443", loopback_aliases=True)
    assert not host_allowed("localhost", "https://app.example.test", loopback_aliases=True)


def test_hsts_on_https_public_urls_only():
    public = make_app("https://app.example.test").test_client()
    answer = public.get("/healthz", base_url="https://app.example.test")
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    # On a loopback name: short, since HSTS covers every port of the host (make run-https).
    local = make_app("https://localhost:8441").test_client()
    assert local.get("/healthz").headers["Strict-Transport-Security"] == "max-age=300"
    plain = make_app("http://localhost:5001").test_client()
    assert "Strict-Transport-Security" not in plain.get("/healthz").headers
