"""DPoP in the clients (common/dpop_client.py, common/client.py, common/tokens.py, common/api.py).

Against the fake issuer scripted by tests/dpop_fakes.py: an Okta-like token
endpoint that demands its nonce (RFC 9449 §8) and issues DPoP-bound tokens,
and an API stand-in that accepts them only with a proof (§7.1).
"""

from __future__ import annotations

import pytest

from common import api
from common.authorization import build_authorization_request
from common.client import Client
from common.config import load_settings
from common.dpop import DPoPKey, access_token_hash
from common.dpop_client import NONCES, new_dpop_key, remember_dpop_key
from common.errors import FlowError
from common.inspector import FlowLog, decode_unverified
from common.issuer import Issuer
from common.keys import generate_private_key, private_key_pem, public_jwk
from common.logout import revoke_token
from common.recorder import FlowRecorder
from common.tokens import TokenEndpointError, client_credentials, holding_key, password_grant, refresh_tokens
from common.userinfo import userinfo
from tests.dpop_fakes import DPoPFakeIssuer
from tests.fake_issuer import Reply
from tests.relying_party import complete_sign_in, narrating

from .conftest import REDIRECT_URI


@pytest.fixture(autouse=True)
def no_remembered_nonces():
    """Each test starts without the nonces an earlier test's issuer sent (the book is per process)."""
    NONCES._nonces.clear()
    yield
    NONCES._nonces.clear()


def dpop_client(fake_issuer, mode: str = "auto", **kwargs) -> Client:
    settings = load_settings(
        {"ISSUER": fake_issuer.issuer, "HTTP_TIMEOUT": "2", "CLOCK_LEEWAY": "60", "DPOP": mode}
    )
    return Client(
        Issuer(settings),
        client_id=kwargs.pop("client_id", fake_issuer.client_id),
        client_secret=kwargs.pop("client_secret", fake_issuer.client_secret),
        redirect_uri=REDIRECT_URI,
        **kwargs,
    )


def dpop_sign_in(client: Client, fake_issuer, log: FlowLog | None = None):
    """As the web app does: a key when the sign-in starts, kept with the pending sign-in; the callback."""
    key = new_dpop_key(client)
    url, pending = build_authorization_request(client, "openid profile email offline_access")
    remember_dpop_key(pending, key)
    return key, complete_sign_in(client, fake_issuer.authorize(url), pending, log=log)


def test_code_exchange_retries_once_with_the_issuers_nonce_and_gets_a_bound_token(fake_issuer):
    fake = DPoPFakeIssuer(fake_issuer, nonce="n-1")
    log = FlowLog()
    key, tokens = dpop_sign_in(dpop_client(fake_issuer), fake_issuer, log)
    token_requests = [r for r in fake_issuer.requests if r.endpoint == "token"]
    assert len(token_requests) == 2  # no nonce -> 400 use_dpop_nonce -> one retry
    assert [claims.get("nonce") for endpoint, claims in fake.proofs if endpoint == "token"] == [None, "n-1"]
    assert tokens.token_type == "DPoP" and tokens.dpop_bound
    assert DPoPKey.from_jwk(tokens.dpop_jwk).thumbprint == key.thumbprint
    assert decode_unverified(tokens.access_token)[1]["cnf"] == {"jkt": key.thumbprint}
    titles = [step["title"] for step in log.steps]
    assert "The issuer asked for a DPoP nonce" in titles
    exchange = next(s for s in log.steps if s["title"] == "Token request (authorization code)")
    # The inspector shows the proof decoded, with the checks a server runs; never the private key.
    assert (
        exchange["proofs"][0]["header"]["typ"] == "dpop+jwt"
        and "d" not in exchange["proofs"][0]["header"]["jwk"]
    )
    assert exchange["proofs"][0]["claims"]["nonce"] == "n-1"
    assert {c["check"] for c in exchange["proofs"][0]["checks"]} >= {
        "typ",
        "alg",
        "jwk",
        "htm",
        "htu",
        "iat",
        "jti",
    }
    assert all(c["ok"] for c in exchange["proofs"][0]["checks"])
    assert "dpop_jwk" not in str(log.to_list()) and key.to_jwk()["d"] not in str(log.to_list())


def test_the_nonce_retry_happens_once_not_in_a_loop(fake_issuer):
    DPoPFakeIssuer(fake_issuer)
    fake_issuer.reset("token")
    fake_issuer.script(
        "token",
        Reply(400, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": "always-another"}),
    )
    with pytest.raises(TokenEndpointError) as info:
        dpop_sign_in(dpop_client(fake_issuer), fake_issuer)
    assert info.value.issuer_error == "use_dpop_nonce"
    assert fake_issuer.count("token") == 2


def test_the_latest_nonce_is_remembered_for_the_next_request(fake_issuer):
    fake = DPoPFakeIssuer(fake_issuer, nonce="n-2")
    client = dpop_client(fake_issuer)
    _, tokens = dpop_sign_in(client, fake_issuer)
    before = fake_issuer.count("token")
    refresh_tokens(holding_key(client, tokens), tokens.refresh_token, previous=tokens)
    assert fake_issuer.count("token") == before + 1  # the remembered nonce: no second round trip
    assert fake.proofs[-1] == ("token", fake.proofs[-1][1]) and fake.proofs[-1][1]["nonce"] == "n-2"


def test_dpop_on_without_issuer_support_fails_with_one_clear_line(fake_issuer):
    client = dpop_client(fake_issuer, "on")  # the fake advertises no DPoP by default
    with pytest.raises(FlowError) as info:
        new_dpop_key(client)
    message = info.value.description
    assert info.value.error == "dpop_unsupported"
    assert "\n" not in message and "DPOP=on" in message and fake_issuer.issuer in message
    assert fake_issuer.count("token") == 0


def test_dpop_on_refuses_a_bearer_answer_to_a_proof(fake_issuer):
    DPoPFakeIssuer(fake_issuer)
    fake_issuer.reset("token")
    fake_issuer.script("token", lambda request: fake_issuer._token(request))  # ignores the proof
    with pytest.raises(FlowError) as info:
        dpop_sign_in(dpop_client(fake_issuer, "on"), fake_issuer)
    assert info.value.error == "dpop_unsupported" and "Bearer" in info.value.description


def test_auto_uses_bearer_where_the_issuer_has_no_dpop_and_off_never_sends_a_proof(fake_issuer):
    assert new_dpop_key(dpop_client(fake_issuer, "auto")) is None
    DPoPFakeIssuer(fake_issuer)
    assert new_dpop_key(dpop_client(fake_issuer, "off")) is None
    _, tokens = dpop_sign_in(dpop_client(fake_issuer, "off"), fake_issuer)
    assert tokens.token_type == "Bearer" and tokens.dpop_jwk is None
    assert all("DPoP" not in r.headers for r in fake_issuer.requests)


def test_a_dpop_token_answer_to_a_request_without_proof_is_refused(fake_issuer):
    fake_issuer.token_extra = {"token_type": "DPoP"}
    url, pending = build_authorization_request(dpop_client(fake_issuer), "openid")
    with pytest.raises(FlowError) as info:
        complete_sign_in(dpop_client(fake_issuer), fake_issuer.authorize(url), pending)
    assert info.value.error == "token_error" and "no DPoP proof" in info.value.description


def test_refresh_and_revocation_carry_a_proof_of_the_sessions_key(fake_issuer):
    fake = DPoPFakeIssuer(fake_issuer)
    client = dpop_client(fake_issuer)
    key, tokens = dpop_sign_in(client, fake_issuer)
    fresh = refresh_tokens(holding_key(client, tokens), tokens.refresh_token, previous=tokens)
    assert fresh.dpop_bound and DPoPKey.from_jwk(fresh.dpop_jwk).thumbprint == key.thumbprint
    assert revoke_token(holding_key(client, fresh), fresh.refresh_token) is True
    assert fake.proofs[-1][0] == "revoke" and fake.proofs[-1][1]["htm"] == "POST"
    # A refresh with another key is refused by the issuer (RFC 9449 §5): the key really matters.
    other = client.with_dpop_key(DPoPKey.generate())
    _, again = dpop_sign_in(client, fake_issuer)
    with pytest.raises(TokenEndpointError):
        refresh_tokens(other, again.refresh_token, previous=again)


def test_client_credentials_and_password_grant_send_proofs(fake_issuer):
    DPoPFakeIssuer(fake_issuer)
    client = dpop_client(fake_issuer)
    key = new_dpop_key(client)
    token = client_credentials(client.with_dpop_key(key), "customScope")
    assert token.dpop_bound and decode_unverified(token.access_token)[1]["cnf"]["jkt"] == key.thumbprint
    tokens = password_grant(
        client.with_dpop_key(key), fake_issuer.user["email"], fake_issuer.password, "openid"
    )
    assert tokens.dpop_bound


def test_the_nonce_retry_makes_a_fresh_client_assertion(fake_issuer):
    private = generate_private_key()
    fake_issuer.clients["jwt-client"] = {"secret": None, "jwk": public_jwk(private)}
    DPoPFakeIssuer(fake_issuer)
    path = fake_issuer_tmp_key(private)
    client = dpop_client(
        fake_issuer,
        client_id="jwt-client",
        client_secret=None,
        token_endpoint_auth_method="private_key_jwt",
        private_key_path=path,
    )
    token = client_credentials(client.with_dpop_key(new_dpop_key(client)), "customScope")
    assert token.dpop_bound
    assertions = [r.form["client_assertion"] for r in fake_issuer.requests if r.endpoint == "token"]
    jtis = [decode_unverified(assertion)[1]["jti"] for assertion in assertions]
    assert len(jtis) == 2 and jtis[0] != jtis[1]  # a client assertion is single use too


def fake_issuer_tmp_key(private) -> str:
    import tempfile  # noqa: PLC0415

    handle = tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False)
    handle.write(private_key_pem(private))
    handle.close()
    return handle.name


def test_api_call_uses_the_dpop_scheme_with_ath_and_answers_the_apis_nonce(fake_issuer):
    fake = DPoPFakeIssuer(fake_issuer, api_nonce="api-n-1")
    client = dpop_client(fake_issuer)
    key, tokens = dpop_sign_in(client, fake_issuer)
    log = FlowLog()
    answer = api.call_api(
        fake_issuer.base_url + "/api/messages?x=1",
        tokens.access_token,
        recorder=FlowRecorder(log),
        dpop_key=key,
    )
    assert answer.status == 200, answer
    api_requests = [r for r in fake_issuer.requests if r.endpoint == "api"]
    assert len(api_requests) == 2 and api_requests[-1].headers["Authorization"].startswith("DPoP ")
    claims = [c for endpoint, c in fake.proofs if endpoint == "api"][-1]
    assert claims["ath"] == access_token_hash(tokens.access_token) and claims["nonce"] == "api-n-1"
    assert claims["htu"] == fake_issuer.base_url + "/api/messages"  # no query (RFC 9449 §4.2)
    assert [s["title"] for s in log.steps] == [
        "The API asked for a DPoP nonce",
        f"Call the API: GET {fake_issuer.base_url}/api/messages?x=1",
    ]
    assert {c["check"] for c in log.steps[-1]["proofs"][0]["checks"]} >= {"ath", "nonce"}


def test_a_bound_token_as_bearer_is_refused_by_a_dpop_api(fake_issuer):
    """The stand-in really checks: without the key, the token alone does not work."""
    DPoPFakeIssuer(fake_issuer)
    _, tokens = dpop_sign_in(dpop_client(fake_issuer), fake_issuer)
    assert api.call_api(fake_issuer.base_url + "/api/messages", tokens.access_token).status == 401
    thief = DPoPKey.generate()
    stolen = api.call_api(fake_issuer.base_url + "/api/messages", tokens.access_token, dpop_key=thief)
    assert stolen.status == 401 and "invalid_dpop_proof" in stolen.www_authenticate


def test_userinfo_with_a_bound_token(fake_issuer):
    fake = DPoPFakeIssuer(fake_issuer)
    client = dpop_client(fake_issuer)
    _, tokens = dpop_sign_in(client, fake_issuer)
    log = FlowLog()
    claims = userinfo(
        narrating(holding_key(client, tokens), log), tokens.access_token, expected_sub=fake_issuer.user["sub"]
    )
    assert claims["sub"] == fake_issuer.user["sub"]
    assert fake.proofs[-1][0] == "userinfo" and "ath" in fake.proofs[-1][1]
    assert log.steps[-1]["proofs"][0]["claims"]["htm"] == "GET"


def test_a_zero_clock_leeway_still_accepts_a_proof_made_a_moment_ago():
    """CLOCK_LEEWAY=0 is a valid setting; iat has whole seconds, so the window is never under 5 s."""
    from common.dpop import InvalidProof, verify_proof
    from tests.dpop_fakes import MemoryReplay

    key = DPoPKey.generate()
    url = "https://api.test/api/messages"
    now = 1_800_000_000.9
    fresh = key.proof("GET", url, now=now - 1)  # iat = now - 1.9 s, after int()
    assert verify_proof(fresh, method="GET", url=url, replay=MemoryReplay(), leeway=0, now=now).jkt
    stale = key.proof("GET", url, now=now - 30)
    with pytest.raises(InvalidProof) as info:
        verify_proof(stale, method="GET", url=url, replay=MemoryReplay(), leeway=0, now=now)
    assert info.value.check == "iat"
