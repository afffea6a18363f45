"""The suite on Redis Sentinel: a signed-in user stays signed in across a failover.

One master, one replica and three ``redis-sentinel`` processes on loopback,
with a Redis password (the sentinels take none); the dev issuer, the API and
the web app (two gunicorn workers each) on ``redis+sentinel://…/mymaster``.
"""

from __future__ import annotations

import pytest
import requests

from tests.redis_topologies.flows import call_api, session_key, sign_out, signed_in
from tests.redis_topologies.topologies import SentinelTopology, wait_until
from tests.support import WebStack
from tests.web_app.conftest import element_text


@pytest.fixture(scope="module")
def sentinel_suite(tmp_path_factory):
    suite = WebStack("sentinel", SentinelTopology(tmp_path_factory.mktemp("sentinel"))).start()
    yield suite
    suite.stop()


def test_a_signed_in_user_stays_signed_in_across_a_sentinel_failover(sentinel_suite):
    topology: SentinelTopology = sentinel_suite.redis
    base = sentinel_suite.web_base_url
    http, page = signed_in(sentinel_suite)
    call_api(sentinel_suite, http, page)
    old_master = topology.master_port_now()

    # Replication is asynchronous: a write the replica has not received when
    # the master goes is lost (README "Deploying").  Here we wait for the
    # replica to catch up, so the test shows what a failover keeps.
    wait_until(topology.in_sync, 30, "the replica did not catch up")
    new_master = topology.failover()
    assert new_master != old_master
    # The old master is now a replica: a client that still wrote to it would
    # get READONLY; the apps asked the sentinels and moved to the new one.
    wait_until(lambda: topology.server(old_master).info("replication")["role"] == "slave", 30, "no demotion")
    assert topology.server(new_master).exists(session_key(http))

    profile = http.get(base + "/profile", timeout=30)
    assert profile.status_code == 200 and "/profile" in profile.url, profile.text[:2000]
    assert element_text(profile.text, "claims")
    answer = call_api(sentinel_suite, http, profile)

    # A new sign-in after the failover: the issuer's codes and sessions are
    # written to the new master.
    other, other_page = signed_in(sentinel_suite)
    call_api(sentinel_suite, other, other_page)
    sign_out(sentinel_suite, other, other_page)

    key = session_key(http)
    sign_out(sentinel_suite, http, answer)
    assert not topology.server(new_master).exists(key)
    assert "sign-in" in requests.get(base + "/", cookies=http.cookies, timeout=30).text
