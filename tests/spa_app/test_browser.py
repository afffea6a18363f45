"""The single-page app clicked through in Chromium, in both modes.

Sign in → profile → call the API → sign out, once with Authorization Code
+ PKCE and once with the legacy Implicit flow; then the failures: a
tampered state, a forged fragment, a nonce this tab did not send, an issuer
error, an expired token at the API.  Every failure must end with a clear
message and no tokens; no token may ever reach the browser's storage.
"""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from selenium.webdriver.common.by import By

from tests.spa_app.conftest import SpaActions
from tests.support import screenshot_dir

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def call_api_and_check(spa: SpaActions):
    spa.driver.find_element(By.ID, "call-api").click()
    result = spa.visible("api-result")
    spa.wait(lambda d: "HTTP 200" in result.text)
    assert spa.settings.spa_client_id in result.text  # the API saw the SPA's token
    assert not spa.driver.find_element(By.ID, "spa-error").is_displayed()


def sign_out_and_check(spa: SpaActions, mode: str):
    spa.driver.find_element(By.ID, "sign-out").click()
    # RP-initiated logout at the issuer, then back to post_logout_redirect_uri.
    spa.wait_ready_on_spa()
    notice = spa.visible("spa-notice")
    assert "signed out" in notice.text.lower()
    assert spa.driver.current_url == spa.base_url + "/"  # the logout state was wiped from the URL
    assert spa.driver.find_element(By.ID, f"mode-{mode}").is_selected()
    spa.assert_no_tokens()
    assert spa.storage()["session"] == {}
    # The issuer's session ended too: signing in again asks for credentials.
    spa.start_sign_in()


def test_pkce_click_through(spa):
    spa.sign_in("pkce")
    # The code and state left the address bar and history at once.
    assert spa.driver.current_url == spa.base_url + "/"
    profile = spa.driver.find_element(By.ID, "profile").text
    assert spa.settings.demo_username in profile
    # Tokens are in memory only: nothing in any storage once the callback is done.
    assert spa.storage() == {"local": {}, "session": {}, "cookies": ""}
    titles = spa.inspector_titles()
    assert titles[:2] == ["Discovery", "Authorization request (code + PKCE)"]
    assert "Token request (code exchange)" in titles and "ID token validated" in titles
    checks = spa.driver.find_elements(By.CSS_SELECTOR, "#inspector .checks li")
    assert {c.text.split()[0] for c in checks} >= {"signature", "iss", "aud", "exp", "nonce"}
    assert not spa.driver.find_elements(By.CSS_SELECTOR, "#inspector .check-bad")
    # The verifier never appears on screen; the challenge does.
    inspector = spa.driver.find_element(By.ID, "inspector").text
    assert "code_challenge_method" in inspector and "S256" in inspector
    assert "code_verifier\n[redacted]" in inspector or "code_verifier [redacted]" in inspector

    call_api_and_check(spa)
    spa.screenshot(SCREENSHOTS / "spa_app-pkce.png")

    # Rotating refresh token: a new one replaces the spent one.
    spa.driver.find_element(By.ID, "refresh-tokens").click()
    spa.wait(lambda d: "Refresh (manual)" in spa.inspector_titles())
    step = [text for title, text in spa.inspector_steps() if title == "Refresh (manual)"][0]
    assert "rotated" in step
    assert "Refreshed ID token validated" in spa.inspector_titles()
    call_api_and_check(spa)  # with the new access token
    assert spa.storage() == {"local": {}, "session": {}, "cookies": ""}

    sign_out_and_check(spa, "pkce")


def test_implicit_click_through(spa):
    spa.open()
    label = spa.driver.find_element(By.CSS_SELECTOR, "label[for=mode-implicit]").text
    assert "Implicit (legacy, deprecated — RFC 9700 §2.1.2)" in label
    assert "fragment" in spa.driver.find_element(By.ID, "implicit-reason").text
    spa.choose_mode("implicit")
    spa.start_sign_in()
    request = spa.authorization_request()
    assert request["response_type"] == "id_token token"
    assert request["nonce"] and "code_challenge" not in request
    spa.submit_credentials()
    spa.wait_ready_on_spa()
    spa.visible("profile")
    # The fragment with the tokens is gone from the address bar.
    assert spa.driver.current_url == spa.base_url + "/"
    assert spa.driver.execute_script("return location.hash") == ""
    assert spa.settings.demo_username in spa.driver.find_element(By.ID, "profile").text
    assert spa.storage() == {"local": {}, "session": {}, "cookies": ""}
    spa.open_inspector()  # folded until asked for
    checks = [c.text for c in spa.driver.find_elements(By.CSS_SELECTOR, "#inspector .checks li.check-ok")]
    assert any(c.startswith("signature") and "WebCrypto" in c for c in checks)
    assert any(c.startswith("at_hash") for c in checks)
    assert any(c.startswith("nonce") for c in checks)
    assert not spa.driver.find_element(By.ID, "refresh-tokens").is_displayed()  # no refresh token in Implicit

    call_api_and_check(spa)
    spa.screenshot(SCREENSHOTS / "spa_app-implicit.png")
    sign_out_and_check(spa, "implicit")


def test_reload_keeps_no_tokens(spa):
    spa.sign_in("pkce")
    spa.driver.refresh()
    spa.wait_ready()
    # Memory is gone, and nothing was ever written elsewhere.
    spa.assert_no_tokens()
    assert spa.storage() == {"local": {}, "session": {}, "cookies": ""}
    assert spa.driver.find_element(By.ID, "claims").get_attribute("textContent") == ""


def test_tampered_state_ends_in_an_error_without_tokens(spa):
    spa.open()
    spa.start_sign_in()
    spa.resubmit_authorization_request(state="attacker-chosen-state")
    spa.submit_credentials()
    spa.wait_ready_on_spa()
    assert spa.error_code() == "state_mismatch"
    assert spa.driver.current_url == spa.base_url + "/"  # the foreign code left the address bar too
    spa.assert_no_tokens()
    assert spa.storage()["session"] == {}  # the pending request was single-use
    assert "Token request (code exchange)" not in spa.inspector_titles()  # the code was never exchanged


def test_nonce_mismatch_ends_in_an_error_without_tokens(spa):
    """A genuine, correctly signed ID token, but for a nonce this tab never sent."""
    spa.open()
    spa.choose_mode("implicit")
    spa.start_sign_in()
    spa.resubmit_authorization_request(nonce="someone-elses-nonce")
    spa.submit_credentials()
    spa.wait_ready_on_spa()
    assert spa.error_code() == "nonce_mismatch"
    spa.assert_no_tokens()
    assert spa.storage()["session"] == {}


def test_forged_fragment_without_a_pending_sign_in(spa):
    spa.open()
    spa.open(
        "/login/callback#"
        + urlencode({"access_token": "forged", "id_token": "a.b.c", "token_type": "Bearer", "state": "guess"})
    )
    assert spa.error_code() == "state_missing"
    assert spa.driver.current_url == spa.base_url + "/"
    spa.assert_no_tokens()


def test_forged_id_token_signature_is_rejected(spa, issuer_url):
    """Right state, right nonce, right claims, right kid — but the attacker's key."""
    spa.open()
    spa.choose_mode("implicit")
    spa.start_sign_in()
    request = spa.authorization_request()
    jwks = requests.get(f"{issuer_url}/v1/keys", timeout=5).json()
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    access_token = "forged-access-token"
    now = int(time.time())
    id_token = jwt.encode(
        {
            "iss": issuer_url,
            "aud": spa.settings.spa_client_id,
            "sub": "victim",
            "iat": now,
            "exp": now + 300,
            "nonce": request["nonce"],
            "at_hash": at_hash(access_token),
            "email": "victim@example.com",
        },
        attacker_key,
        algorithm="RS256",
        headers={"kid": jwks["keys"][0]["kid"]},
    )
    spa.driver.get(
        spa.settings.spa_redirect_uri
        + "#"
        + urlencode(
            {
                "access_token": access_token,
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": "3600",
                "state": request["state"],
                "iss": issuer_url,
            }
        )
    )
    spa.wait_ready()
    assert spa.error_code() == "invalid_signature"
    assert spa.driver.current_url == spa.base_url + "/"
    spa.assert_no_tokens()
    assert spa.storage()["session"] == {}
    assert "ID token rejected" in spa.inspector_titles()


def test_issuer_error_in_the_callback(spa):
    """The issuer answers with an error (here: the user declined), RFC 6749 §4.1.2.1."""
    spa.open()
    spa.start_sign_in()
    state = spa.authorization_request()["state"]
    # As the issuer sends it: with its iss (RFC 9207), which the dev issuer announces and the SPA
    # therefore requires, in error answers too.
    spa.driver.get(
        spa.settings.spa_redirect_uri
        + "?"
        + urlencode(
            {
                "error": "access_denied",
                "error_description": "The user <b>declined</b>.",
                "state": state,
                "iss": spa.settings.issuer,
            }
        )
    )
    spa.wait_ready()
    assert spa.error_code() == "access_denied"
    # Shown as text, never as markup.
    assert spa.driver.find_element(By.ID, "spa-error-description").text == "The user <b>declined</b>."
    assert not spa.driver.find_elements(By.CSS_SELECTOR, "#spa-error b")
    spa.assert_no_tokens()


def test_the_page_runs_under_its_csp_without_violations(spa):
    """Strict CSP and Trusted Types hold for the whole flow: no violation is reported."""
    spa.open()
    spa.driver.execute_script(
        "window.__violations = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    spa.choose_mode("implicit")
    spa.choose_mode("pkce")
    assert spa.driver.execute_script("return window.__violations") == []
    logs = [
        entry
        for entry in spa.driver.get_log("browser")
        if "Content Security Policy" in entry["message"] and "favicon" not in entry["message"]
    ]
    assert logs == []


# -- refreshes that overlap: with each other, with sign-out ------------------------------------------

# Wraps the page's fetch() (oidc.js calls the global one) to log each call to
# the token and revocation endpoints and, on request, to hold the token
# endpoint's answer until the test releases it: a refresh "on the wire".
INSTRUMENT_FETCH = """
    const [hold, withoutEndSession, done] = arguments;
    (async () => {
      const oidc = await import('/static/js/oidc.js');  // the module app.js uses, metadata cache and all
      const config = await (await fetch('/config.json')).json();
      const metadata = await oidc.discover(config.issuer);
      if (withoutEndSession) delete metadata.end_session_endpoint;  // sign-out ends here, on this page
      window.__calls = [];
      window.__hold = hold ? new Promise(resolve => { window.__release = resolve; }) : null;
      const realFetch = window.fetch;
      window.fetch = async (url, init) => {
        const kind = String(url) === metadata.token_endpoint ? 'token'
          : String(url) === metadata.revocation_endpoint ? 'revoke' : 'other';
        window.__calls.push(kind);
        const response = await realFetch(url, init);
        if (kind === 'token' && window.__hold) await window.__hold;
        return response;
      };
    })().then(() => done(), e => done(String(e)));
"""


def instrument_fetch(spa: SpaActions, *, hold=False, without_end_session=False):
    assert spa.driver.execute_async_script(INSTRUMENT_FETCH, hold, without_end_session) is None


def fetch_calls(spa: SpaActions, kind: str) -> int:
    return spa.driver.execute_script("return window.__calls.filter(k => k === arguments[0]).length", kind)


def test_overlapping_refreshes_send_one_request(spa):
    """Single-flight refresh (RFC 9700 §4.14.2): a second refresh while one is
    under way joins it instead of sending the refresh token the first just spent
    (which the dev issuer, detecting reuse, answers by revoking the whole grant)."""
    spa.sign_in("pkce")
    instrument_fetch(spa)
    # Two refreshes at once, as when the button is clicked while the timer's refresh is in flight.
    spa.driver.execute_script(
        "const button = document.getElementById('refresh-tokens'); button.click(); button.click();"
    )
    spa.wait(lambda d: "Tokens refreshed" in d.find_element(By.ID, "spa-notice").text)
    call_api_and_check(spa)  # the grant is alive: the new access token works
    assert fetch_calls(spa, "token") == 1
    assert spa.inspector_titles().count("Refresh (manual)") == 1
    assert not spa.driver.find_element(By.ID, "spa-error").is_displayed()
    # Once it has settled, the next refresh is a new one, with the rotated refresh token.
    spa.driver.find_element(By.ID, "refresh-tokens").click()
    spa.wait(lambda d: spa.inspector_titles().count("Refresh (manual)") == 2)
    assert fetch_calls(spa, "token") == 2
    step = [text for title, text in spa.inspector_steps() if title == "Refresh (manual)"][-1]
    assert "rotated" in step
    call_api_and_check(spa)


def test_sign_out_during_a_refresh_keeps_nothing(spa):
    """A refresh answered after sign-out must not put the session back; the
    refresh token it brought is revoked (RFC 7009) rather than left alive."""
    spa.sign_in("pkce")
    instrument_fetch(spa, hold=True, without_end_session=True)
    spa.driver.find_element(By.ID, "refresh-tokens").click()
    spa.wait(lambda d: fetch_calls(spa, "token") == 1)  # the refresh request is out
    spa.driver.find_element(By.ID, "sign-out").click()
    spa.wait(lambda d: "Signed out of this app" in d.find_element(By.ID, "spa-notice").text)
    assert fetch_calls(spa, "revoke") == 1  # sign-out revoked the refresh token it held
    spa.driver.execute_script("window.__release()")  # now the refresh's answer arrives
    # The late answer is dropped and its fresh refresh token revoked too.
    spa.wait(lambda d: fetch_calls(spa, "revoke") == 2)
    assert spa.driver.find_element(By.ID, "nav-status").text == "Signed out"
    spa.assert_no_tokens()
    assert spa.storage() == {"local": {}, "session": {}, "cookies": ""}
    assert "Refresh (manual)" not in spa.inspector_titles()
    assert not spa.driver.find_element(By.ID, "spa-error").is_displayed()
    assert fetch_calls(spa, "token") == 1


# -- what only time shows: short-lived access tokens --------------------------------------------


@pytest.fixture
def short_spa(browser, short_lived_stack):
    return SpaActions(browser, short_lived_stack)


def test_refresh_token_keeps_the_page_signed_in(short_spa):
    short_spa.sign_in("pkce")
    # Access tokens live 3 s here; the page renews them by itself.
    short_spa.wait(lambda d: short_spa.inspector_titles().count("Refresh (automatic)") >= 2, timeout=15)
    automatic = [text for title, text in short_spa.inspector_steps() if title == "Refresh (automatic)"]
    assert all("rotated" in text for text in automatic)
    call_api_and_check(short_spa)
    assert short_spa.storage() == {"local": {}, "session": {}, "cookies": ""}


def test_api_401_ends_the_session_with_a_message(short_spa):
    short_spa.sign_in("implicit")  # no refresh token: the access token simply expires
    time.sleep(4)
    short_spa.driver.find_element(By.ID, "call-api").click()
    assert short_spa.error_code() == "invalid_token"
    assert "401" in short_spa.driver.find_element(By.ID, "spa-error-description").text
    short_spa.assert_no_tokens()
