"""The issuer's app factory: each app its own authorization server, no process-wide switches.

These build issuers in the test process (Flask's test client, a real Redis),
several in a row, which is exactly what a module-level server or an
environment switch set by ``create_app`` would get wrong.
"""

import os
import re

import pytest
import redis

from dev_issuer import create_app
from dev_issuer.keys import ROTATION_INTERVAL
from dev_issuer.state import SERVER_EXTENSION, STATE_EXTENSION

#: A Redis database no other test uses (the suite uses 0, 1, 3, 7 and 9).
FACTORY_TEST_DB = 11

LOOPBACK_ISSUER = "http://127.0.0.1:9999/oauth2/default"
HTTPS_ISSUER = "https://issuer.test/oauth2/default"


@pytest.fixture
def redis_url(redis_server):
    """The suite's Redis, in a database of its own, emptied afterwards."""
    url = redis_server.url.rsplit("/", 1)[0] + f"/{FACTORY_TEST_DB}"
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def make_issuer(redis_url, monkeypatch):
    """Build issuer apps in this process, starting from an environment without Authlib's switch."""
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)

    def make(issuer: str):
        return create_app({"ISSUER": issuer, "REDIS_URL": redis_url, "TESTING": True})

    return make


def service_token(app, base_url: str):
    """A client-credentials request to ``app``'s token endpoint, as addressed by ``base_url``."""
    settings = app.extensions[STATE_EXTENSION].settings
    return app.test_client().post(
        "/oauth2/default/v1/token",
        base_url=base_url,
        data={"grant_type": "client_credentials"},
        auth=(settings.service_client_id, settings.service_client_secret),
    )


def test_create_app_sets_no_environment_switch(make_issuer):
    make_issuer(LOOPBACK_ISSUER)
    assert "AUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_each_app_has_its_own_server_and_every_grant(make_issuer):
    first, second = make_issuer(LOOPBACK_ISSUER), make_issuer(LOOPBACK_ISSUER)
    assert first.extensions[SERVER_EXTENSION] is not second.extensions[SERVER_EXTENSION]
    assert first.extensions[STATE_EXTENSION] is not second.extensions[STATE_EXTENSION]
    for app in (first, second):
        response = service_token(app, "http://127.0.0.1:9999")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert "access_token" in response.get_json()


def test_loopback_http_issuer_serves_plain_http_at_its_own_host_only(make_issuer):
    """Plain http at the issuer's own host and port; any other ``Host`` is refused before Authlib runs.

    (It used to be served under any ``Host``; the Host check of ``common/hosts.py``,
    against DNS rebinding, now refuses other names, loopback aliases included.)
    """
    app = make_issuer(LOOPBACK_ISSUER)
    assert service_token(app, "http://127.0.0.1:9999").status_code == 200
    for base_url in ("http://localhost:9999", "http://127.0.0.1:9998", "http://issuer.test"):
        refused = service_token(app, base_url)
        assert refused.status_code == 400, base_url
        assert b"invalid_host" in refused.get_data() and b"access_token" not in refused.get_data()


def test_https_issuer_refuses_plain_http_even_after_a_loopback_issuer(make_issuer):
    make_issuer(LOOPBACK_ISSUER)
    app = make_issuer(HTTPS_ISSUER)
    assert service_token(app, "https://issuer.test").status_code == 200
    # RFC 6749 §3.2: the token endpoint requires TLS (Authlib's own check).
    refused = service_token(app, "http://issuer.test")
    assert refused.status_code != 200 and b"access_token" not in refused.get_data()


def test_http_issuer_off_this_machine_does_not_start(make_issuer):
    with pytest.raises(ValueError, match="https"):
        make_issuer("http://issuer.test/oauth2/default")


def test_rotate_keys_command_is_registered(make_issuer):
    result = make_issuer(LOOPBACK_ISSUER).test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "now signing with:" in result.output and "published next:" in result.output


def test_a_second_rotation_at_once_is_refused_with_429_page_and_cli_line(make_issuer):
    """Key rotation is rate-limited for the page and the CLI alike (shared through Redis)."""
    app = make_issuer(LOOPBACK_ISSUER)
    client = app.test_client()
    page = client.get("/admin/keys", base_url="http://127.0.0.1:9999").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def rotate():
        return client.post("/admin/keys/rotate", base_url="http://127.0.0.1:9999", data={"csrf_token": csrf})

    assert rotate().status_code == 302
    refused = rotate()
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= ROTATION_INTERVAL
    assert b"rotation_refused" in refused.get_data() and b"try again in" in refused.get_data()
    result = app.test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 1 and "rotation refused" in result.output and "Traceback" not in result.output
