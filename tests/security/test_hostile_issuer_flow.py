"""A hostile or broken issuer around the ID token: discovery, the callback, the token endpoint, UserInfo.

Each case is run against every app it applies to (web_app, native_sim,
spa_app, service_app) through the drivers in ``conftest.py``.  For every
case: a clear error, no session and no stored tokens, and no further call
to the issuer or the API after the failure.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
import requests

from common.errors import FlowError
from common.userinfo import userinfo
from tests.security.conftest import PAYLOAD, NativeDriver, callback_params

EVIL_ISSUER = "http://evil.test/oauth2/default"


def _assert_no_session(outcome):
    assert not outcome.ok, outcome.text
    assert not outcome.stored, "no session and no stored tokens"


# -- discovery: the document's issuer is not ours (OIDC Discovery 1.0 §4.3) ------------------


@pytest.mark.parametrize("driver", ["web", "bff", "native", "service"], indirect=True)
def test_discovery_issuer_mismatch(driver, issuer):
    issuer.discovery_overrides = {"issuer": EVIL_ISSUER}
    outcome = driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error == "issuer_misconfigured", outcome.text
    assert "evil.test" in outcome.text  # says which issuer the document named
    # Nothing after discovery: no authorization request, no token request, no keys, no API.
    assert issuer.count("discovery") >= 1
    for endpoint in ("authorize", "token", "jwks", "userinfo", "api"):
        assert issuer.count(endpoint) == 0, endpoint


@pytest.mark.browser
def test_spa_discovery_issuer_mismatch(spa_driver, issuer):
    issuer.discovery_overrides = {"issuer": EVIL_ISSUER}
    outcome = spa_driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error == "issuer_misconfigured", outcome.text
    for endpoint in ("authorize", "token", "jwks", "api"):
        assert issuer.count(endpoint) == 0, endpoint


# -- the callback (RFC 6749 §4.1.2, §10.12; RFC 9207) ------------------------------------------


def _error_with_script(params):
    return {
        "error": "access_denied",
        "error_description": PAYLOAD,
        "state": params.get("state", ""),
        **({"iss": params["iss"]} if "iss" in params else {}),
    }


def _without_state(params):
    return {k: v for k, v in params.items() if k != "state"}


def _foreign_state(params):
    return {**params, "state": "a-state-this-client-never-sent"}


def _wrong_iss(params):
    return {**params, "iss": EVIL_ISSUER}


CALLBACK_CASES = {
    "error_description_with_script": (_error_with_script, "access_denied"),
    "state_missing": (_without_state, "state_missing"),
    "state_foreign": (_foreign_state, "state_mismatch"),
    "rfc9207_iss_missing": (None, "iss_mismatch"),
    "rfc9207_iss_wrong": (_wrong_iss, "iss_mismatch"),
}


def _script_callback(issuer, case):
    hook, expected = CALLBACK_CASES[case]
    if hook is None:
        issuer.send_iss = False  # still advertised in discovery
        assert issuer.discovery()["authorization_response_iss_parameter_supported"] is True
    else:
        issuer.authorize_hook = hook
    return expected


def _assert_nothing_exchanged(issuer):
    for endpoint in ("token", "jwks", "userinfo", "api"):
        assert issuer.count(endpoint) == 0, endpoint


@pytest.mark.parametrize("case", list(CALLBACK_CASES))
def test_web_app_refuses_hostile_callback(web_driver, issuer, case):
    expected = _script_callback(issuer, case)
    outcome = web_driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error == expected, outcome.text
    _assert_nothing_exchanged(issuer)
    assert PAYLOAD not in outcome.raw and "<script>window.__pwned" not in outcome.raw
    if case == "error_description_with_script":
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in outcome.raw  # shown, as text


@pytest.mark.parametrize("case", list(CALLBACK_CASES))
def test_spa_bff_refuses_hostile_callback(bff_driver, issuer, case):
    """The SPA's backend for frontend: the same callback checks, in the same order, as the web app."""
    expected = _script_callback(issuer, case)
    outcome = bff_driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error == expected, outcome.text
    _assert_nothing_exchanged(issuer)
    assert PAYLOAD not in outcome.raw and "<script>window.__pwned" not in outcome.raw
    if case == "error_description_with_script":
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in outcome.raw  # shown, as text


@pytest.mark.parametrize("case", list(CALLBACK_CASES))
def test_native_sim_refuses_hostile_callback(native_driver, issuer, case):
    expected = _script_callback(issuer, case)
    outcome = native_driver.sign_in(wait=2)
    _assert_no_session(outcome)
    _assert_nothing_exchanged(issuer)
    assert "<script>window.__pwned" not in native_driver.loopback_page  # the browser's page is escaped
    if case in ("state_missing", "state_foreign"):
        # The loopback listener ignores an answer it did not ask for and keeps
        # waiting for the real one (RFC 8252 §8.1); none comes, so it times out.
        assert "still waiting" in outcome.text and "Timed out" in outcome.text, outcome.text
        assert outcome.error == "exit 4"
    else:
        assert outcome.error == expected, outcome.text
    if case == "error_description_with_script":
        # The browser's page only says "return to the terminal"; the terminal shows the text.
        assert "access_denied" in native_driver.loopback_page
        assert "window.__pwned=1" in outcome.text


@pytest.mark.browser
@pytest.mark.parametrize("case", list(CALLBACK_CASES))
def test_spa_refuses_hostile_callback(spa_driver, issuer, case):
    expected = _script_callback(issuer, case)
    outcome = spa_driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error == expected, outcome.text
    _assert_nothing_exchanged(issuer)
    assert spa_driver.driver.execute_script("return window.__pwned === undefined")
    if case == "error_description_with_script":
        assert "<script>window.__pwned=1</script>" in outcome.text  # shown as text, not run


# -- replays: state and code are single use ---------------------------------------------------------


def test_web_app_state_replayed(web_driver, issuer):
    _, authorization_url = web_driver.start()
    callback = web_driver.at_issuer(authorization_url)
    assert web_driver.callback(callback).ok
    # The same callback again, in the same browser (a reload: the signed-in user goes to the
    # profile, the spent answer unread) and in another one (refused).
    again = web_driver.callback(callback)
    assert again.ok, again.text
    other = web_driver.make_client()
    replay = web_driver.callback(callback, client=other)
    assert replay.error == "state_missing" and not replay.stored
    assert issuer.count("token") == 1  # the code was never sent again


def test_web_app_code_replayed(web_driver, issuer):
    _, authorization_url = web_driver.start()
    callback = web_driver.at_issuer(authorization_url)
    assert web_driver.callback(callback).ok
    jwks_before = issuer.count("jwks")
    # An attacker's own sign-in (own state) with the victim's already-used code.
    attacker = web_driver.make_client()
    _, attacker_url = web_driver.start(client=attacker)
    attacker_state = callback_params(attacker_url)["state"]
    victim = callback_params(callback)
    forged = f"/authorization-code/callback?{urlencode({**victim, 'state': attacker_state})}"
    outcome = web_driver.callback(forged, client=attacker)
    assert outcome.error == "token_error" and "invalid_grant" in outcome.text, outcome.text
    assert not web_driver.tokens_stored(attacker)
    assert issuer.count("token") == 2  # the issuer refused the second redemption
    assert issuer.count("jwks") == jwks_before and issuer.count("api") == 0


def test_native_sim_callback_replayed(native_driver, issuer, tmp_path):
    run = native_driver.start("--timeout", "5")
    response = requests.get(run.authorization_url(), allow_redirects=False, timeout=5)
    callback = response.headers["Location"]
    assert requests.get(callback, timeout=5).status_code == 200
    code, out, err = run.finish()
    assert code == 0, err
    # The listener accepted one answer and closed: a replay finds nobody listening.
    with pytest.raises(requests.ConnectionError):
        requests.get(callback, timeout=2)
    # The used code with the state of a new sign-in (an attacker who sees the URL): refused.
    second = NativeDriver(issuer, tmp_path / "second")
    run2 = second.start("--timeout", "5")
    try:
        request = callback_params(run2.authorization_url())
        old = callback_params(callback)
        requests.get(f"{request['redirect_uri']}?{urlencode({**old, 'state': request['state']})}", timeout=5)
        outcome = second.finish(run2)
    finally:
        second.stop()
    assert outcome.error == "token_error" and "invalid_grant" in outcome.text, outcome.text
    assert not outcome.stored
    assert issuer.count("token") == 2 and issuer.count("api") == 0


@pytest.mark.browser
def test_spa_callback_replayed(spa_driver, issuer):
    seen = []
    issuer.authorize_hook = lambda params: seen.append(params) or params
    assert spa_driver.sign_in().ok
    spa_driver.driver.execute_script("window.__before = true")
    spa_driver.driver.get(f"{spa_driver.base_url}/login/callback?{urlencode(seen[0])}")
    outcome = spa_driver.settle()
    assert outcome.error == "state_missing" and not outcome.stored
    assert issuer.count("token") == 1


# -- the token endpoint: down, not JSON, hanging, no access token ----------------------------------

TOKEN_CASES = {
    "http_503": (lambda i: i.fail("token", 503), {"issuer_unreachable", "token_error"}),
    "html_page": (lambda i: i.html("token"), {"issuer_unreachable", "token_error"}),
    "hang": (lambda i: i.hang("token", 2.5), {"issuer_unreachable"}),
    "200_without_access_token": (lambda i: i.token_extra.update(access_token=None), {"token_error"}),
}


@pytest.mark.parametrize("case", list(TOKEN_CASES))
@pytest.mark.parametrize("driver", ["web", "bff", "native", "service"], indirect=True)
def test_token_endpoint_failure(driver, issuer, case):
    script, expected = TOKEN_CASES[case]
    script(issuer)
    outcome = driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error in expected, (outcome.error, outcome.text)
    assert "Traceback" not in outcome.raw
    # No keys, no UserInfo, no API after a failed token request.
    assert issuer.count("jwks") == 0 and issuer.count("userinfo") == 0 and issuer.count("api") == 0
    if driver.name == "service_app":
        assert 1 <= issuer.count("token") <= 3  # bounded retries of an unreachable issuer
    else:
        assert issuer.count("token") == 1


@pytest.mark.browser
@pytest.mark.parametrize("case", ["http_503", "200_without_access_token"])
def test_spa_token_endpoint_failure(spa_driver, issuer, case):
    script, expected = TOKEN_CASES[case]
    script(issuer)
    outcome = spa_driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error in expected | {"token_error"}, (outcome.error, outcome.text)
    assert issuer.count("token") == 1 and issuer.count("jwks") == 0 and issuer.count("api") == 0


@pytest.mark.browser
def test_spa_token_endpoint_hang_times_out(spa_driver, issuer):
    """fetch() has no timeout of its own: the SPA bounds every call by HTTP_TIMEOUT (2 s here)."""
    issuer.hang("token", 6)
    started = time.monotonic()
    outcome = spa_driver.sign_in()
    _assert_no_session(outcome)
    assert outcome.error == "issuer_unreachable" and "did not answer" in outcome.text, outcome.text
    assert time.monotonic() - started < 5.5  # it gave up before the issuer answered
    assert issuer.count("token") == 1 and issuer.count("jwks") == 0 and issuer.count("api") == 0


# -- UserInfo about someone else (OIDC Core 5.3.2) --------------------------------------------------


def test_userinfo_with_another_sub_is_refused(web_driver, issuer):
    """No app calls UserInfo in its flow; the shared client every app would use refuses the answer."""
    assert web_driver.sign_in().ok
    issuer.userinfo_claims = {**issuer.user, "sub": "00u-someone-else"}
    client = web_driver.app.extensions["oidc_client"]
    access_token = next(iter(issuer.access_tokens))
    with pytest.raises(FlowError) as info:
        userinfo(client, access_token, expected_sub=issuer.user["sub"])
    assert info.value.error == "invalid_userinfo"
    assert issuer.count("userinfo") == 1 and issuer.count("api") == 0
