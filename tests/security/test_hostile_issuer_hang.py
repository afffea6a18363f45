"""A hung issuer must not serialize token checks (README "Security checks").

The issuer here is the scriptable test issuer (``tests/fake_issuer.py``): real
HTTP on loopback, whose discovery document or JWKS answers only after a
delay, or not at all before the client's timeout.  Six callers check at once,
in threads, as a gunicorn worker's threads do:

* with a cached (but stale) discovery document or JWKS, one caller refreshes
  and every other one answers at once from the cache (stale-while-revalidate);
* with nothing cached, one fetch serves every waiting caller, so six callers
  wait about one delay, not six in a row;
* a failed fetch backs off: the next callers neither wait nor refetch.
"""

from __future__ import annotations

import threading
import time

import pytest

from common.config import load_settings
from common.errors import FlowError
from common.http import http_session
from common.issuer import Issuer
from common.jwks import KeySet, KeysUnavailable, decode_jwt
from resource_server.validation import JWTValidator
from tests.fake_issuer import FakeIssuer, Reply

CALLERS = 6
DELAY = 1.0  # how long the hung issuer takes to answer
AT_ONCE = 0.5  # what "at once" means on a busy test machine


@pytest.fixture
def issuer():
    """A test issuer of its own (these tests leave it hanging)."""
    server = FakeIssuer().start()
    yield server
    server.stop()


def _settings(issuer: FakeIssuer, timeout: float):
    return load_settings(
        {"ISSUER": issuer.issuer, "HTTP_TIMEOUT": str(timeout), "API_AUDIENCE": "api://default"},
        component="resource_server",
    )


def _at_once(call, n: int = CALLERS) -> tuple[list[float], list, float]:
    """Run ``call(i)`` in ``n`` threads started together: each one's duration, results, and the total."""
    barrier = threading.Barrier(n)
    durations: list[float] = [0.0] * n
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each caller got
            results[i] = exc
        durations[i] = time.monotonic() - started

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(durations), results, time.monotonic() - started


def _slow(document_of, delay: float = DELAY):
    """A scripted answer: the compliant document, after ``delay`` seconds."""
    return lambda request: Reply(200, document_of(), delay=delay)


# -- discovery ---------------------------------------------------------------------------------


def test_stale_discovery_is_served_at_once_while_one_caller_refreshes(issuer):
    """Before the fix six callers took 1, 2 ... 6 s: each refetched in turn under the issuer's lock."""
    oidc = Issuer(_settings(issuer, timeout=5))
    cached = oidc.metadata()
    oidc.metadata_ttl = 0  # the document is past its TTL from now on
    issuer.script("discovery", _slow(issuer.discovery))
    durations, results, total = _at_once(lambda i: oidc.metadata())
    assert all(isinstance(r, dict) and r["issuer"] == cached["issuer"] for r in results), results
    assert durations[-2] < AT_ONCE, durations  # everyone but the refreshing caller answered at once
    assert total < DELAY + AT_ONCE + 0.5, durations
    assert issuer.count("discovery") == 2  # the first fetch and one refresh


def test_a_failing_discovery_refresh_backs_off_and_keeps_the_cached_document(issuer):
    oidc = Issuer(_settings(issuer, timeout=0.5))
    cached = oidc.metadata()
    oidc.metadata_ttl = 0
    issuer.hang("discovery", 3)  # longer than the timeout: the refresh fails
    durations, results, total = _at_once(lambda i: oidc.metadata())
    assert all(r == cached for r in results), results
    assert durations[-2] < AT_ONCE, durations
    for _ in range(CALLERS):  # and afterwards: the back-off, not a refetch per call
        started = time.monotonic()
        assert oidc.metadata() == cached
        assert time.monotonic() - started < AT_ONCE
    assert issuer.count("discovery") == 2


def test_without_a_cached_document_one_fetch_serves_every_waiting_caller(issuer):
    oidc = Issuer(_settings(issuer, timeout=0.5))
    issuer.hang("discovery", 3)
    durations, results, total = _at_once(lambda i: oidc.metadata())
    assert all(isinstance(r, FlowError) and r.error == "issuer_unreachable" for r in results), results
    assert total < 2 * 0.5 + AT_ONCE + 0.5, durations  # about one timeout, not six
    with pytest.raises(FlowError) as info:  # the back-off answers at once, without a fetch
        oidc.metadata()
    assert info.value.error == "issuer_unreachable"
    assert issuer.count("discovery") == 1


# -- the key set -------------------------------------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_stale_keys_verify_at_once_while_one_caller_refreshes(issuer):
    """Before the fix the JWKS refresh ran under the key set's lock, and cached keys waited behind it."""
    clock = Clock()
    keyset = KeySet(issuer.url("jwks"), http=http_session(timeout=5), ttl=300, clock=clock)
    tokens = [issuer.mint_id_token({"nonce": str(i)}) for i in range(CALLERS)]
    decode_jwt(tokens[0], keyset)
    clock.now += 301  # past the TTL
    issuer.script("jwks", _slow(issuer.jwks))
    durations, results, total = _at_once(lambda i: decode_jwt(tokens[i], keyset)[1]["nonce"])
    assert results == [str(i) for i in range(CALLERS)], results
    assert durations[-2] < AT_ONCE, durations
    assert total < DELAY + AT_ONCE + 0.5, durations
    assert issuer.count("jwks") == 2


def test_keys_never_fetched_one_fetch_serves_every_waiting_caller(issuer):
    keyset = KeySet(issuer.url("jwks"), http=http_session(timeout=0.5))
    issuer.hang("jwks", 3)
    token = issuer.mint_id_token()
    durations, results, total = _at_once(lambda i: decode_jwt(token, keyset))
    assert all(isinstance(r, KeysUnavailable) for r in results), results
    assert total < 2 * 0.5 + AT_ONCE + 0.5, durations
    with pytest.raises(KeysUnavailable):  # backing off: no new fetch
        decode_jwt(token, keyset)
    assert issuer.count("jwks") == 1


# -- the resource server -------------------------------------------------------------------------


def test_resource_server_checks_tokens_at_once_while_the_issuer_hangs(issuer):
    """The API's validator (one per gunicorn worker, shared by its threads), discovery and JWKS stale."""
    validator = JWTValidator(_settings(issuer, timeout=5))
    validator.validate(issuer.mint_access_token())
    validator.issuer.metadata_ttl = 0
    validator.issuer.keyset.ttl = 0
    issuer.script("discovery", _slow(issuer.discovery))
    issuer.script("jwks", _slow(issuer.jwks))
    tokens = [issuer.mint_access_token({"jti": f"AT.{i}"}) for i in range(CALLERS)]
    durations, results, total = _at_once(lambda i: validator.validate(tokens[i]).claims["jti"])
    assert results == [f"AT.{i}" for i in range(CALLERS)], results
    # One caller refreshes discovery, one the JWKS; every other one answers from the cache.
    assert durations[-3] < AT_ONCE, durations
    assert total < 2 * DELAY + AT_ONCE + 0.5, durations
