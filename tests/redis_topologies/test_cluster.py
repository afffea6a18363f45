"""The suite on a three-master Redis Cluster (``redis-cli --cluster create``, a password).

The dev issuer, the API, the web app and the service app run on
``redis+cluster://…``: sign-in, API calls, refresh with rotation, sign-out,
the service token, the dev issuer's codes and refresh-token families.  A
multi-key command whose keys sit in different hash slots fails on a cluster
(``CROSSSLOT`` from the server, "must map to the same key slot" from
redis-py); no log of any process may show one.
"""

from __future__ import annotations

import re

import pytest
import requests
from redis.cluster import RedisCluster

from common.session import load_stored_session
from tests.common.test_session import make_app
from tests.dev_issuer.conftest import _issuer
from tests.redis_topologies.flows import (
    call_api,
    cross_slot_lines,
    sign_out,
    signed_in,
    stored_tokens,
    wait_until_expired,
)
from tests.redis_topologies.topologies import ClusterTopology
from tests.support import WebStack, free_port, gunicorn

TIMEOUT = 30


@pytest.fixture(scope="module")
def cluster_suite(tmp_path_factory):
    """The suite with two-second access tokens (every API call after a pause refreshes) on a cluster."""
    topology = ClusterTopology(tmp_path_factory.mktemp("cluster"))
    suite = WebStack("cluster", topology, {"DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "2", "CLOCK_LEEWAY": "0"})
    port = free_port()
    suite.env["SERVICE_BASE_URL"] = f"http://localhost:{port}"
    suite.service = gunicorn(
        "cluster-service_app", "service_app:create_app()", suite.env, port, workers=2, health_path="/healthz"
    )
    suite.start()
    try:
        suite.service.start()
    except Exception:
        suite.stop()
        raise
    yield suite
    suite.service.stop()
    suite.stop()


def assert_no_cross_slot(suite) -> None:
    """No process of the suite, and no cluster node, logged a cross-slot command."""
    logs = [
        part.log_path.read_text(errors="replace")
        for part in (suite.issuer, suite.api, suite.web, suite.service)
    ]
    assert not cross_slot_lines(*logs, suite.redis.processes.logs())


def test_the_session_store_uses_the_cluster_client_it_is_given(cluster_suite):
    """Our SessionInterface keeps the client it was handed: a RedisCluster stays a RedisCluster.

    (Flask-Session 0.8, which the suite no longer uses, replaced any client
    that was not a plain ``redis.Redis`` with one on localhost.)
    """
    app = make_app(cluster_suite.env["REDIS_URL"])
    assert isinstance(app.session_interface.client, RedisCluster)
    assert app.config["SESSION_REDIS"] is app.session_interface.client
    client = app.test_client()
    client.get("/set/on-the-cluster")
    sid = client.get_cookie("demo_app_session").value
    stored = cluster_suite.redis.client().get(f"demo_app:session:{sid}")
    assert stored is not None and load_stored_session(stored)["value"] == "on-the-cluster"
    assert client.get("/get").text == "on-the-cluster"


def test_sign_in_api_refresh_and_sign_out_on_a_cluster(cluster_suite):
    http, page = signed_in(cluster_suite)
    first = stored_tokens(cluster_suite, http)
    page = call_api(cluster_suite, http, page)
    wait_until_expired(first)
    # The expired access token is renewed with the refresh token, under the
    # session lock (a Redis lock, one key), and the refresh token rotates.
    page = call_api(cluster_suite, http, page)
    second = stored_tokens(cluster_suite, http)
    assert second.access_token != first.access_token and second.refresh_token != first.refresh_token
    issuer = _issuer(cluster_suite.env["ISSUER"], cluster_suite.env)
    assert issuer.introspect(first.refresh_token)["active"] is False
    assert issuer.introspect(second.refresh_token)["active"] is True
    sign_out(cluster_suite, http, page)
    assert issuer.introspect(second.refresh_token)["active"] is False
    assert_no_cross_slot(cluster_suite)


def test_the_dev_issuers_codes_and_refresh_families_on_a_cluster(cluster_suite):
    """A replayed code and a reused refresh token each revoke their grant (RFC 6749 §4.1.2, RFC 9700 §4.14.2).

    The code's record and its used marker are read with one MGET and used
    up with one script: both keys carry the code's digest as hash tag.
    """
    issuer = _issuer(cluster_suite.env["ISSUER"], cluster_suite.env)
    tokens = issuer.code_flow("web")
    replay = issuer.redeem("web", tokens["_code"], tokens["_redirect_uri"], tokens["_verifier"])
    assert replay.status_code == 400 and "already used" in replay.json()["error_description"]
    assert issuer.introspect(tokens["refresh_token"])["active"] is False

    fresh = issuer.code_flow("web")
    s = issuer.settings
    rotated = requests.post(
        issuer.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]},
        auth=(s.web_client_id, s.web_client_secret),
        timeout=TIMEOUT,
    )
    assert rotated.status_code == 200, rotated.text
    new_refresh = rotated.json()["refresh_token"]
    assert issuer.introspect(new_refresh)["active"] is True
    reused = requests.post(
        issuer.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]},
        auth=(s.web_client_id, s.web_client_secret),
        timeout=TIMEOUT,
    )
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert issuer.introspect(new_refresh)["active"] is False  # the whole family
    assert_no_cross_slot(cluster_suite)


def test_the_service_token_on_a_cluster(cluster_suite):
    """The service app's token, its lock, its discard script and its call counter on a cluster."""
    base = cluster_suite.env["SERVICE_BASE_URL"]
    http = requests.Session()
    for _ in range(2):
        page = http.get(base + "/", timeout=TIMEOUT).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        answer = http.post(base + "/call", data={"csrf_token": csrf}, timeout=TIMEOUT)
        assert answer.status_code == 200 and 'id="api-status">200<' in answer.text, answer.text[:2000]
        # (Counted per token; the suite's tokens live two seconds, so a call may start a new count.)
        assert int(re.search(r'id="calls-made">(\d+)<', answer.text).group(1)) >= 1
    # Counted in Redis (``service_app:token:…:calls:…``), whichever worker answered.
    assert cluster_suite.redis.keys("service_app:token:*:calls:*")
    assert_no_cross_slot(cluster_suite)


def test_a_cluster_that_stops_answering_is_a_503_not_a_500(tmp_path):
    """redis-py reports an unreachable cluster with an exception outside ``redis.RedisError``;
    the factory's client turns it into a ``ConnectionError``, which every component answers with 503."""
    topology = ClusterTopology(tmp_path / "cluster").start()
    try:
        app = make_app(topology.url)
        client = app.test_client()
        assert client.get("/set/before").status_code == 200
    finally:
        topology.stop()
    answer = client.get("/get")
    assert answer.status_code == 503 and "session store" in answer.text
    assert not answer.headers.get("Set-Cookie")
