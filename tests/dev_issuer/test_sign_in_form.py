"""The issuer's sign-in form over HTTP: post/redirect/get, the SSO session skipping it, no caching.

The Back-button behaviour these make possible is shown in Chromium by
``tests/dev_issuer/test_browser.py``.
"""

import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from dev_issuer.auth import reauthentication_requested
from tests.issuer_helpers import _hidden, callback_params, pkce_pair, sign_in_and_get_redirect

TIMEOUT = 10


def base_of(issuer) -> str:
    return issuer.url.split("/oauth2")[0]


def web_authorize_url(issuer, **params) -> str:
    s = issuer.settings
    _, challenge = pkce_pair()
    return issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256", **params
    )


def form(session: requests.Session, issuer, next_url: str) -> requests.Response:
    page = session.get(base_of(issuer) + "/signin", params={"next": next_url}, timeout=TIMEOUT)
    assert page.status_code == 200 and 'id="sign-in-form"' in page.text, page.text[:500]
    return page


def post_form(session, issuer, page, username, password) -> requests.Response:
    data = {
        "csrf_token": _hidden(page.text, "csrf_token"),
        "next": _hidden(page.text, "next"),
        "username": username,
        "password": password,
    }
    return session.post(base_of(issuer) + "/signin", data=data, allow_redirects=False, timeout=TIMEOUT)


def test_failed_sign_in_redirects_to_the_form_keeping_next(issuer):
    """Post/redirect/get: the failed POST answers 303 to the form, so Back never resubmits it."""
    s = issuer.settings
    http = requests.Session()
    next_url = urlsplit(web_authorize_url(issuer))
    next_path = f"{next_url.path}?{next_url.query}"
    posted = post_form(http, issuer, form(http, issuer, next_path), s.demo_username, "wrong-password")
    assert posted.status_code == 303, posted.text[:500]
    location = urljoin(posted.url, posted.headers["Location"])
    assert urlsplit(location).path == "/signin"
    assert parse_qs(urlsplit(location).query)["next"] == [next_path]
    # The form the browser lands on shows the error and the login typed ...
    landed = http.get(location, allow_redirects=False, timeout=TIMEOUT)
    assert landed.status_code == 200 and 'id="sign-in-error"' in landed.text
    assert f'value="{s.demo_username}"' in landed.text and _hidden(landed.text, "next") == next_path
    # ... once: a reload is a clean form.
    again = http.get(location, allow_redirects=False, timeout=TIMEOUT)
    assert again.status_code == 200 and 'id="sign-in-error"' not in again.text
    # Then the right password goes on to the authorization request.
    signed_in = post_form(http, issuer, again, s.demo_username, s.demo_password)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == next_path


def test_a_live_sso_session_skips_the_form_and_goes_on_to_next(issuer):
    """Back to the form after signing in: no password form, on to the authorization request."""
    s = issuer.settings
    http = requests.Session()
    sign_in_and_get_redirect(http, web_authorize_url(issuer), s.demo_username, s.demo_password)
    url = urlsplit(web_authorize_url(issuer))
    next_path = f"{url.path}?{url.query}"
    page = http.get(base_of(issuer) + "/signin", params={"next": next_path}, allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"] == next_path
    code = http.get(urljoin(page.url, next_path), allow_redirects=False, timeout=TIMEOUT)
    assert code.status_code == 302 and "code" in callback_params(code.headers["Location"])
    # next stays same-origin, session or not.
    for target in ("//evil.test/", "https://evil.test/", "/\\evil.test"):
        off_site = http.get(base_of(issuer) + "/signin", params={"next": target}, allow_redirects=False)
        assert off_site.status_code == 302 and off_site.headers["Location"] == "/", target


def test_prompt_login_still_shows_the_form_to_a_signed_in_user(issuer):
    """OIDC Core 3.1.2.1: prompt=login must prompt for the password, SSO session or not."""
    s = issuer.settings
    http = requests.Session()
    sign_in_and_get_redirect(http, web_authorize_url(issuer), s.demo_username, s.demo_password)
    forced = http.get(web_authorize_url(issuer, prompt="login"), timeout=TIMEOUT)
    assert forced.status_code == 200 and 'id="sign-in-form"' in forced.text


@pytest.mark.parametrize(
    "query, age, expected",
    [
        ("client_id=x", 10_000, False),
        ("prompt=login", 0, True),
        ("prompt=consent+login", 0, True),
        ("prompt=consent", 0, False),
        ("max_age=3600", 100, False),
        ("max_age=10", 100, True),
        ("max_age=soon", 0, True),
    ],
)
def test_reauthentication_requested(query, age, expected):
    """The form is skipped only when the authorization request would not send the user back to it."""
    assert (
        reauthentication_requested(f"/oauth2/default/v1/authorize?{query}", int(time.time()) - age)
        is expected
    )


def test_sign_in_pages_are_never_cached(issuer):
    """The form sets the session cookie and carries the CSRF token: ``no-store`` on every answer."""
    s = issuer.settings
    http = requests.Session()
    page = form(http, issuer, "/")
    assert "Set-Cookie" in page.headers and page.headers["Cache-Control"] == "no-store"
    failed = post_form(http, issuer, page, "nobody@example.test", "wrong-password")
    assert failed.status_code == 303 and failed.headers["Cache-Control"] == "no-store"
    again = http.get(urljoin(failed.url, failed.headers["Location"]), timeout=TIMEOUT)
    assert again.headers["Cache-Control"] == "no-store"
    signed_in = post_form(http, issuer, again, s.demo_username, s.demo_password)
    assert signed_in.status_code == 302 and "Set-Cookie" in signed_in.headers
    assert signed_in.headers["Cache-Control"] == "no-store"


def test_sign_in_hint_points_at_make_run_and_the_readme_not_a_dotenv(issuer):
    """A newcomer has no ``.env``: the hint names what they do have."""
    text = form(requests.Session(), issuer, "/").text
    hint = text[text.index('id="sign-in-hint"') :].split("</p>", 1)[0]
    assert ".env" not in hint
    assert "make run" in hint and "The development issuer" in hint and issuer.settings.demo_username in hint
