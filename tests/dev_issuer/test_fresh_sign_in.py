"""``prompt=login`` and ``max_age``: only a sign-in made for this very request, just now, counts as fresh.

OpenID Connect Core 3.1.2.1: the OP MUST re-authenticate.  A sign-in made at
the issuer's own page, one made for another authorization request, one
already used, or one older than ``FRESH_SIGN_IN_WINDOW`` satisfies nothing.
"""

import html
import re
import time
import types
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from dev_issuer import freshness
from tests.issuer_helpers import pkce_pair

TIMEOUT = 10


def origin(issuer) -> str:
    parts = urlsplit(issuer.url)
    return f"{parts.scheme}://{parts.netloc}"


def spa_request(issuer, **params) -> str:
    s = issuer.settings
    _, challenge = pkce_pair()
    return issuer.authorize_url(
        s.spa_client_id, s.spa_redirect_uri, code_challenge=challenge, code_challenge_method="S256", **params
    )


def hidden(page: str, name: str) -> str:
    return html.unescape(re.search(rf'name="{name}" value="([^"]*)"', page).group(1))


def submit_sign_in(issuer, session: requests.Session, page_url: str) -> requests.Response:
    """Fill in the sign-in form at ``page_url`` with the demo user; the answer is not followed."""
    page = session.get(page_url, timeout=TIMEOUT).text
    s = issuer.settings
    form = {
        "csrf_token": hidden(page, "csrf_token"),
        "next": hidden(page, "next"),
        "username": s.demo_username,
        "password": s.demo_password,
    }
    posted = session.post(origin(issuer) + "/signin", data=form, allow_redirects=False, timeout=TIMEOUT)
    assert posted.status_code == 302, posted.text
    return posted


def answer(session: requests.Session, url: str) -> str:
    """``"code"`` when the issuer answers the client at once, ``"sign-in"`` when it asks for the password."""
    response = session.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.text
    location = urljoin(url, response.headers["Location"])
    if urlsplit(location).path == "/signin":
        return "sign-in"
    assert "code" in parse_qs(urlsplit(location).query), location
    return "code"


@pytest.fixture
def signed_in(issuer):
    """A browser with an SSO session at the issuer (signed in for the web app)."""
    session = requests.Session()
    issuer.code_flow("web", session=session)
    return session


@pytest.mark.parametrize("fresh_param", [{"prompt": "login"}, {"max_age": "0"}])
def test_a_sign_in_at_the_issuers_own_page_is_not_fresh_for_a_later_request(issuer, fresh_param):
    session = requests.Session()
    submit_sign_in(issuer, session, origin(issuer) + "/signin")
    assert answer(session, spa_request(issuer, **fresh_param)) == "sign-in"


def test_a_fresh_sign_in_serves_its_own_request_once(issuer, signed_in):
    # No nonce: its replay check would refuse the repeated request before the sign-in is looked at.
    request = re.sub(r"&nonce=[^&]*", "", spa_request(issuer, prompt="login"))
    assert "nonce=" not in request
    to_sign_in = signed_in.get(request, allow_redirects=False, timeout=TIMEOUT)
    sign_in_url = urljoin(to_sign_in.url, to_sign_in.headers["Location"])
    back = urljoin(sign_in_url, submit_sign_in(issuer, signed_in, sign_in_url).headers["Location"])
    assert freshness.CHALLENGE_PARAMETER in parse_qs(urlsplit(back).query)
    assert answer(signed_in, back) == "code"
    # The same request again (Back, a reload): the sign-in was used.
    assert answer(signed_in, back) == "sign-in"


def test_a_fresh_sign_in_for_one_request_does_not_serve_another(issuer, signed_in):
    to_sign_in = signed_in.get(spa_request(issuer, prompt="login"), allow_redirects=False, timeout=TIMEOUT)
    submit_sign_in(issuer, signed_in, urljoin(to_sign_in.url, to_sign_in.headers["Location"]))
    # The redirect back is not followed; another request asks for a fresh sign-in.
    assert answer(signed_in, spa_request(issuer, prompt="login")) == "sign-in"
    assert answer(signed_in, spa_request(issuer, max_age="0")) == "sign-in"
    # Without prompt=login or max_age, the SSO session is enough.
    assert answer(signed_in, spa_request(issuer)) == "code"


def test_a_fresh_sign_in_expires(issuer, suite_env, monkeypatch):
    """Followed later than FRESH_SIGN_IN_WINDOW, the sign-in made for a request no longer counts.

    The issuer runs in other processes; the test moves the clock of an
    in-process issuer app instead, which shares its Redis and sessions.
    """
    from dev_issuer import create_app

    app = create_app({**suite_env, "TESTING": True})
    client = app.test_client()
    base = origin(issuer)
    to_sign_in = client.get(spa_request(issuer, prompt="login"), base_url=base)
    sign_in_url = to_sign_in.headers["Location"]
    page = client.get(sign_in_url, base_url=base).get_data(as_text=True)
    s = issuer.settings
    posted = client.post(
        "/signin",
        base_url=base,
        data={
            "csrf_token": hidden(page, "csrf_token"),
            "next": hidden(page, "next"),
            "username": s.demo_username,
            "password": s.demo_password,
        },
    )
    assert posted.status_code == 302
    back = posted.headers["Location"]
    later = time.time() + freshness.FRESH_SIGN_IN_WINDOW + 1
    monkeypatch.setattr(freshness, "time", types.SimpleNamespace(time=lambda: later))
    again = client.get(back, base_url=base)
    assert again.status_code == 302 and urlsplit(again.headers["Location"]).path == "/signin"
