"""DPoP at the dev issuer's token endpoint (RFC 9449 §4.3, §5, §6, §8), over HTTP against gunicorn.

Proofs are made with ``common.dpop.DPoPKey`` (honest ones) and joserfc
(forged ones); issued tokens are checked with PyJWT (``conftest.Issuer.verify``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import redis
import requests
from joserfc.jwk import OctKey

from common.config import DEFAULTS
from common.dpop import PROOF_ALGORITHMS, DPoPKey, ServerNonces
from dev_issuer.dpop import NONCE_LIFETIME, NONCE_SECRET_NAME
from dev_issuer.storage import Store
from tests.dev_issuer.conftest import _issuer
from tests.dev_issuer.dpop_support import (
    TIMEOUT,
    current_nonce,
    decoded,
    dpop_token_request,
    forged,
    post_with_proof,
    proof_claims,
    refresh_request,
    service_auth,
    sign_in_for_code,
    unsigned,
)
from tests.issuer_helpers import callback_params, sign_in_and_get_redirect
from tests.support import free_port, gunicorn

#: A Redis database of its own for the issuer that requires DPoP (others use 1, 3, 7-9, 11, 12).
REQUIRE_DPOP_DB = 13

CLIENT_CREDENTIALS = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def another_worker(suite_env, dev_issuer):
    """One more worker process of the shared issuer: same ``ISSUER``, same Redis, another port.

    gunicorn hands a connection to whichever of its workers accepts first,
    so a test cannot choose the worker; a request sent here (with the
    issuer's ``Host``) is certain to be answered by another process.
    """
    service = gunicorn(
        "dev_issuer_dpop_worker",
        "dev_issuer:create_app()",
        suite_env,
        free_port(),
        workers=1,
        health_path="/healthz",
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def requiring_issuer(suite_env, redis_server):
    """A dev issuer whose DEV_ISSUER_REQUIRE_DPOP names the service and the SPA (Okta: "Require DPoP")."""
    port = free_port()
    env = {
        **suite_env,
        "ISSUER": f"http://127.0.0.1:{port}/oauth2/default",
        "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + f"/{REQUIRE_DPOP_DB}",
        "DEV_ISSUER_REQUIRE_DPOP": f"{DEFAULTS['SERVICE_CLIENT_ID']}, {DEFAULTS['SPA_CLIENT_ID']}",
    }
    service = gunicorn(
        "dev_issuer_require_dpop",
        "dev_issuer:create_app()",
        env,
        port,
        workers=2,
        health_path="/oauth2/default/.well-known/openid-configuration",
    ).start()
    yield _issuer(env["ISSUER"], env)
    service.stop()


def test_the_metadata_advertises_the_proof_algorithms(issuer):
    """RFC 9449 §5.1: a client with DPOP=auto finds DPoP here."""
    assert issuer.metadata["dpop_signing_alg_values_supported"] == list(PROOF_ALGORITHMS)
    assert "none" not in issuer.metadata["dpop_signing_alg_values_supported"]


def test_the_nonce_round_trip_then_a_bound_access_token(issuer):
    """§8: a proof without the nonce is answered use_dpop_nonce (code untouched); the retry gets cnf.jkt."""
    key = DPoPKey.generate()
    grant = sign_in_for_code(issuer, "spa")
    url = issuer.endpoint("token")
    first = post_with_proof(url, grant["data"], key.proof("POST", url))
    assert first.status_code == 400, first.text
    assert first.json()["error"] == "use_dpop_nonce"
    assert first.headers["DPoP-Nonce"] and first.headers["Cache-Control"] == "no-store"

    retry = post_with_proof(url, grant["data"], key.proof("POST", url, nonce=first.headers["DPoP-Nonce"]))
    assert retry.status_code == 200, retry.text
    token = retry.json()
    assert token["token_type"] == "DPoP"
    claims = issuer.verify(token["access_token"], issuer.settings.api_audience)
    # §6.1: the thumbprint (RFC 7638) of the key that signed the proof.
    assert claims["cnf"] == {"jkt": key.thumbprint}

    # §6.2: the introspection answer says the same, for the access and the refresh token.
    introspected = issuer.introspect(token["access_token"], client_id=issuer.settings.spa_client_id)
    assert introspected["active"] and introspected["cnf"] == {"jkt": key.thumbprint}
    assert introspected["token_type"] == "DPoP"
    refresh = issuer.introspect(token["refresh_token"], client_id=issuer.settings.spa_client_id)
    assert refresh["cnf"] == {"jkt": key.thumbprint}


def test_without_a_proof_the_token_stays_a_bearer_token(issuer):
    """A client that does not use DPoP (and is not required to) gets what it got before."""
    answer = issuer.client_credentials()
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer"
    assert "cnf" not in decoded(answer.json()["access_token"])[1]


def _honest(key, url, nonce):
    return {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}, proof_claims("POST", url, nonce)


def _hostile_proof(case: str, url: str, nonce: str) -> str:
    """A proof that fails exactly one check of RFC 9449 §4.3, with the right nonce."""
    key, other = DPoPKey.generate(), DPoPKey.generate()
    header, claims = _honest(key, url, nonce)
    if case == "wrong htm":
        return key.proof("GET", url, nonce=nonce)
    if case == "wrong htu":
        return key.proof("POST", url.replace("/v1/token", "/v1/userinfo"), nonce=nonce)
    if case == "htu with a query":
        return forged(header, {**claims, "htu": url + "?grant_type=client_credentials"}, key.key, "ES256")
    if case == "stale iat":
        return key.proof("POST", url, nonce=nonce, now=time.time() - 600)
    if case == "future iat":
        return key.proof("POST", url, nonce=nonce, now=time.time() + 600)
    if case == "signed by another key":
        return forged(header, claims, other.key, "ES256")
    if case == "private key in the jwk":
        return forged({**header, "jwk": key.key.as_dict(private=True)}, claims, key.key, "ES256")
    if case == "alg none":
        return unsigned({**header, "alg": "none"}, claims)
    if case == "HS256":
        secret = OctKey.generate_key(256)
        return forged({**header, "alg": "HS256", "jwk": secret.as_dict()}, claims, secret, "HS256")
    if case == "missing typ":
        return forged({k: v for k, v in header.items() if k != "typ"}, claims, key.key, "ES256")
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("wrong htm", "htm"),
        ("wrong htu", "htu"),
        ("htu with a query", "htu"),
        ("stale iat", "iat"),
        ("future iat", "iat"),
        ("signed by another key", "signature"),
        ("private key in the jwk", "private"),
        ("alg none", "algorithm"),
        ("HS256", "algorithm"),
        ("missing typ", "typ"),
    ],
)
def test_a_hostile_proof_is_refused_with_invalid_dpop_proof(issuer, case, said):
    """RFC 9449 §4.3, §5: each bad proof gets 400 invalid_dpop_proof and no token."""
    url = issuer.endpoint("token")
    proof = _hostile_proof(case, url, current_nonce(issuer))
    answer = post_with_proof(url, CLIENT_CREDENTIALS, proof, service_auth(issuer))
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_dpop_proof" and "access_token" not in body
    assert said in body["error_description"], body


def test_a_proof_replayed_at_another_worker_is_refused(issuer, another_worker):
    """§11.1: the jti is single use in Redis, so another process refuses what one accepted."""
    url = issuer.endpoint("token")
    proof = DPoPKey.generate().proof("POST", url, nonce=current_nonce(issuer))
    accepted = post_with_proof(url, CLIENT_CREDENTIALS, proof, service_auth(issuer))
    assert accepted.status_code == 200, accepted.text
    other_url = f"{another_worker.url}{urlsplit(url).path}"
    replayed = post_with_proof(
        other_url, CLIENT_CREDENTIALS, proof, service_auth(issuer), headers={"Host": urlsplit(url).netloc}
    )
    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error"] == "invalid_dpop_proof"
    assert "already used" in replayed.json()["error_description"]


def test_of_concurrent_replays_across_both_workers_exactly_one_wins(issuer):
    """Twelve copies of one proof at once, over two workers and their threads: one token, eleven refusals."""
    url = issuer.endpoint("token")
    proof = DPoPKey.generate().proof("POST", url, nonce=current_nonce(issuer))
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(
            pool.map(
                lambda _: post_with_proof(url, CLIENT_CREDENTIALS, proof, service_auth(issuer)), range(12)
            )
        )
    assert sorted(a.status_code for a in answers) == [200] + [400] * 11
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_dpop_proof"}


def _nonces(suite_env) -> ServerNonces:
    """The shared issuer's nonces, computed from the secret its workers share in Redis."""
    secret = redis.Redis.from_url(suite_env["REDIS_URL"]).get(Store.PREFIX + NONCE_SECRET_NAME)
    assert secret, "the issuer has not made its nonce secret yet"
    return ServerNonces(secret, lifetime=NONCE_LIFETIME)


def test_an_expired_nonce_is_answered_with_a_new_one(issuer, suite_env):
    """§8: a nonce from long ago is no nonce: use_dpop_nonce again, with the current one."""
    current_nonce(issuer)
    old = _nonces(suite_env).current(time.time() - 5 * NONCE_LIFETIME)
    url = issuer.endpoint("token")
    key = DPoPKey.generate()
    answer = post_with_proof(url, CLIENT_CREDENTIALS, key.proof("POST", url, nonce=old), service_auth(issuer))
    assert answer.status_code == 400 and answer.json()["error"] == "use_dpop_nonce", answer.text
    assert answer.headers["DPoP-Nonce"] != old


def test_a_fresh_nonce_comes_with_the_token_when_one_is_due(issuer, suite_env):
    """§8.2: the previous slot's nonce still works, and the answer hands out the current one."""
    current_nonce(issuer)
    nonces = _nonces(suite_env)
    previous = nonces.current(time.time() - NONCE_LIFETIME)
    url = issuer.endpoint("token")
    key = DPoPKey.generate()
    answer = post_with_proof(
        url, CLIENT_CREDENTIALS, key.proof("POST", url, nonce=previous), service_auth(issuer)
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("DPoP-Nonce") in {nonces.current(), nonces.current(time.time() + 1)}
    same = dpop_token_request(issuer, key, CLIENT_CREDENTIALS, service_auth(issuer))
    assert same.status_code == 200


def test_a_public_clients_refresh_token_works_only_with_its_key(issuer):
    """§5: the SPA's refresh token is bound to its key: another key, or no proof, gets invalid_grant."""
    key, thief = DPoPKey.generate(), DPoPKey.generate()
    grant = sign_in_for_code(issuer, "spa")
    token = dpop_token_request(issuer, key, grant["data"]).json()
    refresh = refresh_request(grant, token["refresh_token"])

    stolen = dpop_token_request(issuer, thief, refresh)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.text
    bare = requests.post(issuer.endpoint("token"), data=refresh, timeout=TIMEOUT)
    assert bare.status_code == 400 and bare.json()["error"] == "invalid_grant", bare.text

    # Neither attempt used the token up: its owner still refreshes, and the new tokens are bound too.
    renewed = dpop_token_request(issuer, key, refresh)
    assert renewed.status_code == 200, renewed.text
    assert decoded(renewed.json()["access_token"])[1]["cnf"] == {"jkt": key.thumbprint}
    again = dpop_token_request(issuer, thief, refresh_request(grant, renewed.json()["refresh_token"]))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_confidential_clients_refresh_binds_the_new_access_token_to_the_proof(issuer):
    """§5: the web app's refresh token is bound to its client authentication, not to a key."""
    key, next_key = DPoPKey.generate(), DPoPKey.generate()
    grant = sign_in_for_code(issuer, "web")
    token = dpop_token_request(issuer, key, grant["data"], grant["auth"]).json()
    assert token["token_type"] == "DPoP"
    renewed = dpop_token_request(
        issuer, next_key, refresh_request(grant, token["refresh_token"]), grant["auth"]
    )
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    assert decoded(renewed.json()["access_token"])[1]["cnf"] == {"jkt": next_key.thumbprint}


def test_require_dpop_refuses_a_token_request_without_a_proof(requiring_issuer):
    """DEV_ISSUER_REQUIRE_DPOP (RFC 9449 §5.2, Okta's "Require DPoP"): no proof, no token."""
    answer = requiring_issuer.client_credentials()
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "DPoP proof JWT header is missing.",
    }
    bound = dpop_token_request(
        requiring_issuer, DPoPKey.generate(), CLIENT_CREDENTIALS, service_auth(requiring_issuer)
    )
    assert bound.status_code == 200 and bound.json()["token_type"] == "DPoP", bound.text


def test_require_dpop_leaves_the_code_for_the_retry_with_a_proof(requiring_issuer):
    """The refusal comes before the code is redeemed: the SPA's retry with a proof gets the tokens."""
    grant = sign_in_for_code(requiring_issuer, "spa")
    refused = requests.post(requiring_issuer.endpoint("token"), data=grant["data"], timeout=TIMEOUT)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text
    answer = dpop_token_request(requiring_issuer, DPoPKey.generate(), grant["data"])
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP", answer.text


def test_the_applications_page_shows_which_apps_require_dpop(requiring_issuer, issuer):
    """The Applications page, like Okta's app settings, says where DPoP is required."""
    page = requests.get(
        f"{urlsplit(requiring_issuer.url)._replace(path='').geturl()}/admin/apps", timeout=TIMEOUT
    )
    assert page.status_code == 200
    assert '<td class="dpop" id="dpop-service"><span class="badge">required</span>' in page.text
    assert '<td class="dpop" id="dpop-spa"><span class="badge">required</span>' in page.text
    assert '<td class="dpop" id="dpop-web">optional' in page.text
    shared = requests.get(f"{urlsplit(issuer.url)._replace(path='').geturl()}/admin/apps", timeout=TIMEOUT)
    assert '<td class="dpop" id="dpop-service">optional' in shared.text


@pytest.mark.parametrize("response_type", ["token", "id_token token"])
def test_require_dpop_refuses_an_implicit_access_token(requiring_issuer, response_type):
    """An implicit access token carries no proof, so it cannot be bound: a "Require DPoP" app gets none."""
    s = requiring_issuer.settings
    url = requiring_issuer.authorize_url(
        s.spa_client_id, s.spa_redirect_uri, response_type=response_type, scope="openid"
    )
    location = sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    params = callback_params(location)
    assert params.get("error") == "unauthorized_client", params
    assert "access_token" not in params


def test_an_implicit_id_token_alone_stays_open_to_a_require_dpop_app(requiring_issuer):
    """``response_type=id_token`` issues no access token, so nothing is left unbound."""
    s = requiring_issuer.settings
    url = requiring_issuer.authorize_url(s.spa_client_id, s.spa_redirect_uri, response_type="id_token")
    params = callback_params(
        sign_in_and_get_redirect(requests.Session(), url, s.demo_username, s.demo_password)
    )
    assert "id_token" in params and "access_token" not in params, params
