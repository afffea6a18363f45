"""The dev issuer's device authorization grant (RFC 8628), over real HTTP.

The device's requests are ``requests`` POSTs; the person's visit to
``/activate`` is a ``requests.Session`` through the real pages (CSRF
tokens, the sign-in form, Allow and Deny).  Tokens are verified with PyJWT
against the published JWKS (``conftest.Issuer.verify``).
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.device_helpers import (
    DEVICE_CODE_GRANT,
    USER_CODE,
    approve,
    base_of,
    device_authorize,
    enter_code,
    poll,
    text_of,
)

pytestmark = pytest.mark.usefixtures("dev_issuer")


def users(issuer) -> list[tuple[str, str]]:
    """The seeded extra users (``DEV_ISSUER_EXTRA_USERS`` of the test suite)."""
    return list(issuer.settings.dev_issuer_extra_users)


def new_device(issuer, client_id=None) -> dict:
    answer = device_authorize(issuer.url, client_id or issuer.settings.native_client_id)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_metadata_and_the_native_client_offer_the_grant(issuer):
    assert issuer.metadata["device_authorization_endpoint"] == f"{issuer.url}/v1/device/authorize"
    assert DEVICE_CODE_GRANT in issuer.metadata["grant_types_supported"]
    page = requests.get(base_of(issuer.url) + "/admin/apps", timeout=10).text
    native = page[page.index('id="app-native"') :]
    assert DEVICE_CODE_GRANT in native[: native.index("</section>")]
    web = page[page.index('id="app-web"') :]
    assert DEVICE_CODE_GRANT not in web[: web.index("</section>")]


def test_device_authorization_response_has_okta_shaped_codes(issuer):
    data = new_device(issuer)
    assert USER_CODE.match(data["user_code"]), data["user_code"]
    assert data["expires_in"] == 600 and data["interval"] == 5
    assert data["verification_uri"] == base_of(issuer.url) + "/activate"
    assert data["verification_uri_complete"] == f"{data['verification_uri']}?user_code={data['user_code']}"
    assert len(data["device_code"]) >= 43
    assert new_device(issuer)["user_code"] != data["user_code"]


def test_a_client_without_the_grant_gets_no_codes(issuer):
    s = issuer.settings
    refused = requests.post(
        f"{issuer.url}/v1/device/authorize",
        data={"scope": "openid"},
        auth=(s.web_client_id, s.web_client_secret),
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    assert device_authorize(issuer.url, "no-such-client").json()["error"] == "invalid_client"
    assert device_authorize(issuer.url, s.native_client_id, scope="openid customScope").json()["error"] == (
        "invalid_scope"
    )


def test_a_device_authorization_request_for_two_clients_at_once_is_refused(issuer):
    s = issuer.settings
    # RFC 6749 §2.3: one client, authenticated once; Authlib alone would take the first that passes.
    mixed = requests.post(
        f"{issuer.url}/v1/device/authorize",
        data={"client_id": s.native_client_id, "scope": "openid"},
        auth=(s.web_client_id, s.web_client_secret),
        timeout=10,
    )
    assert mixed.status_code == 400 and mixed.json()["error"] == "invalid_request"
    two = requests.post(
        f"{issuer.url}/v1/device/authorize",
        data=[("client_id", s.native_client_id), ("client_id", s.spa_client_id), ("scope", "openid")],
        timeout=10,
    )
    assert two.status_code == 400 and two.json()["error"] == "invalid_request"


def test_polling_faster_than_the_interval_answers_slow_down_and_the_interval_grows(issuer):
    data = new_device(issuer)
    client_id = issuer.settings.native_client_id
    first = poll(issuer.url, client_id, data["device_code"])
    assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
    assert poll(issuer.url, client_id, data["device_code"]).json()["error"] == "slow_down"
    # RFC 8628 §3.5: after slow_down the interval is 5 s longer (10 s): 5.5 s later is still too soon.
    time.sleep(5.5)
    assert poll(issuer.url, client_id, data["device_code"]).json()["error"] == "slow_down"
    # And now 15 s from that poll; a poll that waits long enough is answered as usual.
    time.sleep(15.2)
    assert poll(issuer.url, client_id, data["device_code"]).json()["error"] == "authorization_pending"


def test_approval_gives_tokens_once_for_the_user_who_allowed(issuer):
    username, password = users(issuer)[0]
    data = new_device(issuer)
    done = approve(base_of(issuer.url), data["user_code"].lower().replace("-", ""), username, password)
    assert done.status_code == 200 and text_of(done.text, "activate-done")
    assert "signed in as " + username in text_of(done.text, "activate-result")
    tokens = poll(issuer.url, issuer.settings.native_client_id, data["device_code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["refresh_token"] and body["scope"] == "openid profile email offline_access"
    claims = issuer.verify(body["id_token"], issuer.settings.native_client_id)
    assert claims["email"] == username
    assert issuer.verify(body["access_token"], issuer.settings.api_audience)["sub"] == username
    # One device code, one set of tokens.
    again = poll(issuer.url, issuer.settings.native_client_id, data["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # The user code was used: entering it again is a wrong code.
    http = requests.Session()
    assert enter_code(http, base_of(issuer.url), data["user_code"]).status_code == 400


def test_denial_answers_access_denied(issuer):
    username, password = users(issuer)[1]
    data = new_device(issuer)
    done = approve(base_of(issuer.url), data["user_code"], username, password, decision="deny")
    assert "You denied the request" in text_of(done.text, "activate-result")
    denied = poll(issuer.url, issuer.settings.native_client_id, data["device_code"])
    assert denied.status_code == 400 and denied.json()["error"] == "access_denied"


def test_another_clients_device_code_is_an_invalid_grant(issuer):
    data = new_device(issuer)
    s = issuer.settings
    answer = requests.post(
        f"{issuer.url}/v1/token",
        data={
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": data["device_code"],
            "client_id": s.spa_client_id,
        },
        timeout=10,
    )
    assert answer.json()["error"] in {"unauthorized_client", "invalid_grant"}
    unknown = poll(issuer.url, s.native_client_id, "not-a-device-code")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"


def test_a_wrong_code_is_refused_on_the_page_and_the_link_only_fills_the_form(issuer):
    base = base_of(issuer.url)
    http = requests.Session()
    wrong = enter_code(http, base, "BCDF-<b>X")
    assert wrong.status_code == 400
    assert "not valid" in text_of(wrong.text, "activate-error")
    assert "<b>X" not in wrong.text  # escaped
    data = new_device(issuer)
    linked = http.get(f"{base}/activate", params={"user_code": data["user_code"]}, timeout=10)
    # The link fills the form in; nothing is decided before the person presses Next (RFC 8628 §5.4).
    assert f'value="{data["user_code"]}"' in linked.text and 'id="activate-next"' in linked.text
    assert poll(issuer.url, issuer.settings.native_client_id, data["device_code"]).json()["error"] == (
        "authorization_pending"
    )


def test_five_wrong_codes_from_one_browser_session_then_429_even_for_a_right_code(issuer):
    base = base_of(issuer.url)
    http = requests.Session()
    for _ in range(5):
        assert enter_code(http, base, "BBBB-BBBB").status_code == 400
    data = new_device(issuer)
    limited = enter_code(http, base, data["user_code"])
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "too_many_attempts" in limited.text and "Too many wrong codes" in limited.text
    # Another browser (session) is not held back by this one's mistakes.
    assert enter_code(requests.Session(), base, data["user_code"]).status_code == 303


def test_the_decision_needs_the_pages_csrf_token_and_a_signed_in_user(issuer):
    username, password = users(issuer)[2]
    base = base_of(issuer.url)
    data = new_device(issuer)
    http = requests.Session()
    entered = enter_code(http, base, data["user_code"])
    assert entered.status_code == 303
    # Not signed in: the confirm page sends the browser to the sign-in form, coming back after.
    confirm = http.get(f"{base}/activate/confirm", allow_redirects=False, timeout=10)
    assert confirm.status_code == 303 and confirm.headers["Location"].endswith(
        "/signin?next=/activate/confirm"
    )
    forged = http.post(f"{base}/activate/confirm", data={"decision": "allow"}, timeout=10)
    assert forged.status_code == 400
    assert poll(issuer.url, issuer.settings.native_client_id, data["device_code"]).json()["error"] == (
        "authorization_pending"
    )
    done = approve(base, data["user_code"], username, password, http=requests.Session())
    assert done.status_code == 200
