"""With ``TRUSTED_PROXIES=0`` (the default) no forwarded header counts, in the app or in gunicorn.

Direct requests to the servers, as anybody who can reach a backend port
could send them: a forged ``X-Forwarded-Host`` / ``-Proto`` / ``-Port``
changes nothing, and a foreign ``Host`` is refused.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from common.config import DEFAULTS
from tests.support import free_port, gunicorn

TIMEOUT = 10

FORGED = {"X-Forwarded-Host": "evil.test", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}


def test_forged_forwarded_headers_leave_the_sign_in_unchanged(web_app, suite_env):
    """The authorization redirect and its redirect_uri are the configured ones; no 'evil.test' anywhere."""
    base = suite_env["WEB_BASE_URL"]
    direct = f"http://127.0.0.1:{urlsplit(base).port}"
    own_host = {"Host": urlsplit(base).netloc}
    plain = requests.get(direct + "/login", headers=own_host, allow_redirects=False, timeout=TIMEOUT)
    forged = requests.get(
        direct + "/login", headers={**own_host, **FORGED}, allow_redirects=False, timeout=TIMEOUT
    )
    # Not refused (ProxyFix would have made the Host evil.test, and the Host check refuse it).
    assert forged.status_code == plain.status_code == 302, forged.text[:500]
    location = forged.headers["Location"]
    assert location.startswith(suite_env["ISSUER"] + "/") and "evil" not in location
    query = parse_qs(urlsplit(location).query)
    configured = base + "/authorization-code/callback"
    assert query.get("redirect_uri", [configured]) == [configured]
    assert "Secure" not in forged.headers["Set-Cookie"]  # still the http base URL's cookie


def test_a_foreign_host_is_refused_by_every_app(web_app, spa_app, service_app, resource_server, dev_issuer):
    """Host: evil.test gets the 400 invalid_host answer; /healthz answers any Host (load balancers)."""
    for service in (web_app, spa_app, service_app, resource_server, dev_issuer):
        refused = requests.get(service.url + "/", headers={"Host": "evil.test"}, timeout=TIMEOUT)
        assert refused.status_code == 400 and "invalid_host" in refused.text, service.name
        assert refused.headers["Cache-Control"] == "no-store"
        health = requests.get(service.url + "/healthz", headers={"Host": "evil.test"}, timeout=TIMEOUT)
        assert health.status_code == 200, service.name


@pytest.fixture
def https_issuer_backend(suite_env, redis_server):
    """A dev issuer whose ISSUER is https (as behind a TLS proxy), reached directly at its bind address."""
    public = free_port()
    # Not a loopback name: Authlib lets plain http through on localhost and 127.0.0.1.
    env = {**suite_env, "ISSUER": f"https://issuer.test:{public}/oauth2/default", "TRUSTED_PROXIES": "0"}
    service = gunicorn(
        "https-issuer-backend", "dev_issuer:create_app()", env, free_port(), health_path="/healthz"
    )
    service.start()
    yield service, f"issuer.test:{public}"
    service.stop()


def test_gunicorn_does_not_take_x_forwarded_proto_from_loopback(https_issuer_backend, suite_env):
    """A plain-http token request stays plain http (RFC 6749 §3.2 refuses it), whatever it claims.

    Gunicorn's default trusts X-Forwarded-Proto from 127.0.0.1; common/gunicorn_conf.py turns that off.
    """
    service, host = https_issuer_backend
    response = requests.post(
        service.url + "/oauth2/default/v1/token",
        headers={"Host": host, "X-Forwarded-Proto": "https"},
        data={"grant_type": "client_credentials", "scope": DEFAULTS["SERVICE_SCOPE"]},
        auth=(DEFAULTS["SERVICE_CLIENT_ID"], DEFAULTS["SERVICE_CLIENT_SECRET"]),
        timeout=TIMEOUT,
    )
    assert response.status_code != 200 and "access_token" not in response.text, response.text
    assert response.status_code == 400 and response.json()["error"] == "invalid_request", response.text
    assert "TRUSTED_PROXIES" in response.json()["error_description"]
    # The same request marked https by a header that does count (TLS at the socket) would be served:
    # it is the scheme, not the credentials, that is refused.
