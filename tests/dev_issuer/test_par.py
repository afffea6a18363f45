"""The dev issuer's pushed authorization requests (RFC 9126): ``/v1/par``, then ``request_uri``.

Against a private dev issuer (gunicorn, two workers, real Redis) whose
``request_uri`` lives 2 seconds (``DEV_ISSUER_PAR_LIFETIME``, so the
expiry test waits seconds, not a minute) and which requires PAR of the
native app only (``DEV_ISSUER_REQUIRE_PAR``).
"""

from __future__ import annotations

import re
import time
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.dev_issuer.conftest import TIMEOUT, _issuer
from tests.issuer_helpers import callback_params, pkce_pair, sign_in, sign_in_and_get_redirect
from tests.support import free_port, gunicorn

LIFETIME = 2


@pytest.fixture(scope="module")
def par_issuer(suite_env, redis_server):
    """A dev issuer with 2-second request_uris that requires PAR of the native client."""
    from common.config import load_settings

    port = free_port()
    native_id = load_settings(suite_env).native_client_id
    env = {
        **suite_env,
        "ISSUER": f"http://127.0.0.1:{port}/oauth2/default",
        "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/3",
        "DEV_ISSUER_PAR_LIFETIME": str(LIFETIME),
        "DEV_ISSUER_REQUIRE_PAR": native_id,
    }
    service = gunicorn(
        "dev_issuer_par", "dev_issuer:create_app()", env, port, workers=2, health_path="/healthz"
    ).start()
    yield _issuer(env["ISSUER"], env)
    service.stop()


def push(issuer, client: str = "web", auth=None, **overrides) -> requests.Response:
    """POST a complete authorization request to /v1/par as ``client`` (web: Basic; native: client_id only)."""
    s = issuer.settings
    client_id = {"web": s.web_client_id, "native": s.native_client_id}[client]
    redirect_uri = {"web": s.web_redirect_uri, "native": s.native_redirect_uri()}[client]
    verifier, challenge = pkce_pair()
    form = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "openid profile email",
        "state": "st-" + str(time.monotonic_ns()),
        "nonce": "n-" + str(time.monotonic_ns()),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    form.update(overrides)
    form = {k: v for k, v in form.items() if v is not None}
    if auth is None and client == "web":
        auth = (s.web_client_id, s.web_client_secret)
    response = requests.post(issuer.endpoint("par"), data=form, auth=auth, timeout=TIMEOUT)
    response.verifier, response.form = verifier, form
    return response


def short_url(issuer, client_id: str, request_uri: str, **extra) -> str:
    """The browser's authorization URL after a push (RFC 9126 §4)."""
    return (
        issuer.endpoint("authorize")
        + "?"
        + urlencode({"client_id": client_id, "request_uri": request_uri, **extra})
    )


def error_page(response: requests.Response) -> tuple[str, str]:
    """``(error code, description)`` of the issuer's error page."""
    assert response.status_code == 400 and "text/html" in response.headers["Content-Type"], response.text[
        :500
    ]
    code = re.search(r'id="error-code">([^<]*)<', response.text).group(1)
    description = re.search(r'id="error-description">([^<]*)<', response.text).group(1)
    return code, unescape(description)


def test_metadata_names_the_endpoint_and_the_applications_page_who_must_push(par_issuer):
    metadata = par_issuer.metadata
    assert metadata["pushed_authorization_request_endpoint"] == par_issuer.endpoint("par")
    assert "require_pushed_authorization_requests" not in metadata  # only the native app must
    page = requests.get(par_issuer.url.rsplit("/oauth2", 1)[0] + "/admin/apps", timeout=TIMEOUT).text
    native = page.split('id="app-native"', 1)[1].split("</section>", 1)[0]
    web = page.split('id="app-web"', 1)[1].split("</section>", 1)[0]
    assert "required" in re.search(r'class="par">(.*?)</td>', native, re.S).group(1)
    assert "optional" in re.search(r'class="par">(.*?)</td>', web, re.S).group(1)


def test_a_push_answers_201_and_the_short_request_signs_in_once(par_issuer):
    pushed = push(par_issuer)
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert (
        body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
        and body["expires_in"] == LIFETIME
    )
    assert pushed.headers["Cache-Control"] == "no-store"

    url = short_url(par_issuer, pushed.form["client_id"], body["request_uri"])
    browser = requests.Session()
    s = par_issuer.settings
    # The sign-in form comes in between (a round trip through /signin and back): the form's
    # own "next" carries client_id and request_uri only, not the pushed parameters.
    form_page = browser.get(url, timeout=TIMEOUT)
    next_url = unescape(re.search(r'name="next" value="([^"]*)"', form_page.text).group(1))
    assert set(parse_qs(urlsplit(next_url).query)) == {"client_id", "request_uri"}
    location = sign_in_and_get_redirect(browser, url, s.demo_username, s.demo_password)
    params = callback_params(location)
    assert location.startswith(s.web_redirect_uri) and params["state"] == pushed.form["state"]
    token = par_issuer.redeem("web", params["code"], s.web_redirect_uri, pushed.verifier)
    assert token.status_code == 200, token.text
    claims = par_issuer.verify(token.json()["id_token"], s.web_client_id)
    assert claims["nonce"] == pushed.form["nonce"]

    # Single use. This browser again (Back, reload): back to the app with an error and the
    # pushed state, which the app knows it has completed; no second code.
    again = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert again.is_redirect and again.headers["Location"].startswith(s.web_redirect_uri)
    repeat = callback_params(again.headers["Location"])
    assert repeat["error"] == "invalid_request_uri" and "code" not in repeat
    assert repeat["state"] == pushed.form["state"] and repeat["iss"] == par_issuer.url
    # Any other browser: refused on the issuer's page, never redirected.
    elsewhere = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert error_page(elsewhere)[0] == "invalid_request_uri" and "used already" in error_page(elsewhere)[1]
    assert "Location" not in elsewhere.headers


def test_while_one_browser_signs_in_another_cannot_use_the_same_request_uri(par_issuer):
    """Claimed at the first arrival, held in that browser's issuer session only."""
    s = par_issuer.settings
    pushed = push(par_issuer)
    url = short_url(par_issuer, s.web_client_id, pushed.json()["request_uri"])
    first = requests.Session()
    assert 'id="sign-in-form"' in first.get(url, timeout=TIMEOUT).text
    other = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert error_page(other)[0] == "invalid_request_uri" and "used already" in error_page(other)[1]
    # The first browser still finishes its sign-in with it.
    location = sign_in_and_get_redirect(first, url, s.demo_username, s.demo_password)
    assert callback_params(location)["state"] == pushed.form["state"]


def test_a_request_uri_of_another_client_is_refused_on_the_issuer_page(par_issuer):
    pushed = push(par_issuer).json()
    answer = requests.get(
        short_url(par_issuer, par_issuer.settings.spa_client_id, pushed["request_uri"]),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    code, description = error_page(answer)
    assert code == "invalid_request_uri" and "another client" in description
    # Not used up by the attempt: its own client can still use it.
    own = requests.get(
        short_url(par_issuer, par_issuer.settings.web_client_id, pushed["request_uri"]), timeout=TIMEOUT
    )
    assert 'id="sign-in-form"' in own.text


def test_an_expired_request_uri_is_refused_with_a_link_back_to_the_app(par_issuer):
    pushed = push(par_issuer).json()
    time.sleep(LIFETIME + 0.5)  # the lifetime itself is what is tested
    answer = requests.get(
        short_url(par_issuer, par_issuer.settings.web_client_id, pushed["request_uri"]),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    code, description = error_page(answer)
    assert code == "invalid_request_uri" and "expired" in description
    back = re.search(r'id="try-again" href="([^"]*)"', answer.text).group(1)
    assert back == par_issuer.settings.web_base_url + "/"


def test_an_unknown_request_uri_is_refused(par_issuer):
    answer = requests.get(
        short_url(par_issuer, par_issuer.settings.web_client_id, "urn:ietf:params:oauth:request_uri:nope"),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert error_page(answer)[0] == "invalid_request_uri" and "unknown" in error_page(answer)[1]


def test_a_query_parameter_that_contradicts_the_pushed_request_is_refused(par_issuer):
    pushed = push(par_issuer)
    s = par_issuer.settings
    url = short_url(
        par_issuer, s.web_client_id, pushed.json()["request_uri"], redirect_uri="https://evil.test/cb"
    )
    code, description = error_page(requests.get(url, allow_redirects=False, timeout=TIMEOUT))
    assert code == "invalid_request_uri" and "'redirect_uri'" in description
    # Repeating a pushed value is allowed (a client may send scope and response_type again).
    same = short_url(
        par_issuer, s.web_client_id, push(par_issuer).json()["request_uri"], scope="openid profile email"
    )
    assert 'id="sign-in-form"' in requests.get(same, timeout=TIMEOUT).text


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"redirect_uri": "https://evil.test/callback"}, "invalid_request"),
        ({"response_type": "token"}, "invalid_client"),  # as /v1/authorize: not this client's response type
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"request_uri": "urn:ietf:params:oauth:request_uri:x"}, "invalid_request"),
    ],
)
def test_a_bad_push_is_refused_at_push_time_as_json(par_issuer, overrides, error):
    answer = push(par_issuer, **overrides)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"] == error and answer.json()["error_description"]


def test_a_push_needs_the_clients_authentication(par_issuer):
    s = par_issuer.settings
    wrong = push(par_issuer, auth=(s.web_client_id, "not-the-secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    # A confidential client cannot pass as public by sending its client_id only.
    bare = requests.post(par_issuer.endpoint("par"), data=push(par_issuer).form, timeout=TIMEOUT)
    assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"
    assert requests.get(par_issuer.endpoint("par"), timeout=TIMEOUT).status_code == 405


def test_a_public_clients_push_needs_pkce(par_issuer):
    answer = push(par_issuer, "native", code_challenge=None, code_challenge_method=None)
    assert answer.status_code == 400 and "PKCE" in answer.json()["error_description"]
    assert push(par_issuer, "native").status_code == 201


def test_a_client_that_must_push_is_refused_an_unpushed_request(par_issuer):
    s = par_issuer.settings
    verifier, challenge = pkce_pair()
    url = par_issuer.authorize_url(
        s.native_client_id, s.native_redirect_uri(), code_challenge=challenge, code_challenge_method="S256"
    )
    answer = sign_in(requests.Session(), url, s.demo_username, s.demo_password)
    # Client and redirect URI are verified: the refusal goes back to the app (RFC 9126 §5).
    assert answer.is_redirect, answer.text[:500]
    params = callback_params(answer.headers["Location"])
    assert params["error"] == "invalid_request" and "push" in params["error_description"]
    # The same request, pushed, is accepted.
    pushed = push(par_issuer, "native").json()
    location = sign_in_and_get_redirect(
        requests.Session(),
        short_url(par_issuer, s.native_client_id, pushed["request_uri"]),
        s.demo_username,
        s.demo_password,
    )
    assert "code" in callback_params(location)


def test_prompt_login_in_a_pushed_request_asks_for_the_password_again(par_issuer):
    """The re-authentication round trip (freshness.py) works with the short request too."""
    s = par_issuer.settings
    browser = requests.Session()
    first = push(par_issuer).json()["request_uri"]
    sign_in_and_get_redirect(
        browser, short_url(par_issuer, s.web_client_id, first), s.demo_username, s.demo_password
    )
    # Signed in at the issuer (SSO) now: without prompt=login the next request would skip the form.
    pushed = push(par_issuer, prompt="login")
    url = short_url(par_issuer, s.web_client_id, pushed.json()["request_uri"])
    assert 'id="sign-in-form"' in browser.get(url, timeout=TIMEOUT).text
    location = sign_in_and_get_redirect(browser, url, s.demo_username, s.demo_password)
    assert callback_params(location)["state"] == pushed.form["state"] and "code" in callback_params(location)


def test_the_sign_in_form_prefills_the_pushed_login_hint(par_issuer):
    pushed = push(par_issuer, login_hint="user3@example.test").json()
    form = requests.get(
        short_url(par_issuer, par_issuer.settings.web_client_id, pushed["request_uri"]), timeout=TIMEOUT
    )
    assert re.search(r'id="username" name="username" value="user3@example.test"', form.text), form.text[:1500]
