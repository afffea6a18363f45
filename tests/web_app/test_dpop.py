"""DPoP in the web app (RFC 9449), in-process against the DPoP-speaking fake issuer and the real Redis.

One key per user session, made when the sign-in starts, kept in the
server-side pending sign-in and then beside the tokens in the Redis
session; never in a cookie.  The API is called with the DPoP scheme and a
proof of that key; sign-out revokes with a proof and the key goes with
the session.
"""

from __future__ import annotations

import pytest

from common.dpop import DPoPKey
from common.inspector import decode_unverified
from tests.dpop_fakes import DPoPFakeIssuer
from tests.web_app.conftest import form_csrf, make_client
from tests.web_app.test_auth import COOKIE, _session_data, _start_login


@pytest.fixture
def dpop(fake_issuer):
    """The fake issuer and its API stand-in, speaking DPoP (with an Okta-like token-endpoint nonce)."""
    return DPoPFakeIssuer(fake_issuer)


def _every_cookie(client) -> str:
    return " ".join(f"{cookie.key}={cookie.value}" for cookie in client._cookies.values())


def test_each_session_has_its_own_key_server_side_and_never_in_a_cookie(app, fake_issuer, dpop):
    thumbprints = []
    for _ in range(2):
        client = make_client(app)
        login, params = _start_login(client)
        pending = _session_data(app, client)["pending_logins"][params["state"]]["pending"]
        key = DPoPKey.from_jwk(pending["dpop_jwk"])  # made when the sign-in started
        response = client.get(
            "/authorization-code/callback", query_string=fake_issuer.authorize(login.headers["Location"])
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        tokens = _session_data(app, client)["tokens"]
        assert tokens["token_type"] == "DPoP"
        assert DPoPKey.from_jwk(tokens["dpop_jwk"]).thumbprint == key.thumbprint
        assert decode_unverified(tokens["access_token"])[1]["cnf"]["jkt"] == key.thumbprint
        cookies = _every_cookie(client)
        assert key.to_jwk()["d"] not in cookies and "dpop" not in cookies.lower()
        assert list(client._cookies) == [(client._cookies[next(iter(client._cookies))].domain, "/", COOKIE)]
        thumbprints.append(key.thumbprint)
    assert thumbprints[0] != thumbprints[1]  # a key per session, not per process


def test_the_api_is_called_with_the_sessions_key_and_sign_out_revokes_with_it(app, client, fake_issuer, dpop):
    login, _ = _start_login(client)
    client.get("/authorization-code/callback", query_string=fake_issuer.authorize(login.headers["Location"]))
    key = DPoPKey.from_jwk(_session_data(app, client)["tokens"]["dpop_jwk"])
    csrf = form_csrf(client.get("/profile").get_data(as_text=True))
    answer = client.post("/call-api", data={"csrf_token": csrf})
    assert answer.status_code == 303
    api_request = fake_issuer.last("api")
    assert api_request.headers["Authorization"].startswith("DPoP ")
    assert dpop.proofs[-1][0] == "api" and "ath" in dpop.proofs[-1][1]
    assert "hello from the fake API, with DPoP" in client.get("/profile").get_data(as_text=True)
    inspector = client.get("/inspector").get_data(as_text=True)
    assert (
        "bound to this app&#39;s key (cnf.jkt)" in inspector and 'class="step-proof dpop-proof"' in inspector
    )
    assert key.to_jwk()["d"] not in inspector

    sid = client.get_cookie(COOKIE).value
    client.post("/logout", data={"csrf_token": csrf})
    assert dpop.proofs[-1][0] == "revoke"
    assert not app.config["SESSION_REDIS"].exists(f"web_app:session:{sid}")  # the key went with it


def test_dpop_on_with_an_issuer_without_dpop_stops_at_login_with_one_line(suite_env, fake_issuer):
    from web_app import create_app

    app = create_app(
        {
            **suite_env,
            "ISSUER": fake_issuer.issuer,
            "WEB_CLIENT_ID": fake_issuer.client_id,
            "WEB_CLIENT_SECRET": fake_issuer.client_secret,
            "HTTP_TIMEOUT": "2",
            "DPOP": "on",
            "TESTING": True,
        }
    )
    client = make_client(app)
    response = client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 502 and "Location" not in response.headers
    assert f"DPOP=on, but the issuer {fake_issuer.issuer} does not advertise DPoP" in page
    assert fake_issuer.count("authorize") == 0 and fake_issuer.count("token") == 0
