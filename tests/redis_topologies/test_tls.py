"""``rediss://`` with a password: a Redis that speaks only TLS, its certificate
signed by a CA the test makes (``cryptography``), and ``requirepass``.

The CA is named in the URL (redis-py's ``ssl_ca_certs`` query option); the
certificate is verified, so a Redis whose certificate that CA did not sign is
refused, and a wrong password is refused too: in both cases the app answers
503, never a session made without Redis.
"""

from __future__ import annotations

import pytest
import redis

from common.redis_client import connect_redis
from common.session import load_stored_session
from dev_issuer import create_app as create_issuer
from tests.common.test_session import make_app
from tests.redis_topologies.topologies import PASSWORD, TlsRedis, make_certificates


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    server = TlsRedis(tmp_path_factory.mktemp("tls-redis")).start()
    yield server
    server.stop()


def test_a_session_round_trips_over_tls_with_a_password(tls_redis):
    app = make_app(tls_redis.url)
    client = app.test_client()
    client.get("/set/over-tls")
    sid = client.get_cookie("demo_app_session").value
    stored = connect_redis(tls_redis.url).get(f"demo_app:session:{sid}")
    assert stored is not None and load_stored_session(stored)["value"] == "over-tls"
    assert client.get("/get").text == "over-tls"
    # Only TLS is spoken there: the same address without TLS gets no answer.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=tls_redis.port, password=PASSWORD, socket_timeout=2).ping()


def test_the_dev_issuer_keeps_its_keys_on_redis_over_tls(tls_redis):
    """A second component on the same URL: the issuer's signing keys live in the TLS Redis."""
    issuer = create_issuer({"ISSUER": "http://127.0.0.1:9999/oauth2/default", "REDIS_URL": tls_redis.url})
    answer = issuer.test_client().get("/oauth2/default/v1/keys", base_url="http://127.0.0.1:9999")
    assert answer.status_code == 200 and answer.json["keys"]
    assert connect_redis(tls_redis.url).exists("dev_issuer:keys")


def test_a_redis_certificate_from_another_ca_is_refused(tls_redis, tmp_path):
    other_ca, _, _ = make_certificates(tmp_path / "other")
    url = tls_redis.url.replace(str(tls_redis.ca), str(other_ca))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        connect_redis(url).ping()
    answer = make_app(url).test_client().get("/set/x")
    assert answer.status_code == 503 and "session store" in answer.text
    assert not answer.headers.get("Set-Cookie")


def test_a_wrong_redis_password_is_refused(tls_redis):
    url = tls_redis.url.replace(PASSWORD, "not-the-password")
    with pytest.raises(redis.AuthenticationError):
        connect_redis(url).ping()
    answer = make_app(url).test_client().get("/set/x")
    assert answer.status_code == 503 and not answer.headers.get("Set-Cookie")
