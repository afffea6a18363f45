"""RP-initiated logout: only the signed-in user's ID token, issued to a registered client, skips confirmation.

RP-Initiated Logout 1.0 §2, §4, §6: any other ``id_token_hint`` (another
user's ID token, an access token, a token for an audience that is not a
registered client) gets the confirmation page, a form POST with a CSRF
token, and the issuer session lives on until the user confirms.
"""

import re
import time

import pytest
import redis
import requests
from joserfc import jwt

from dev_issuer.keys import Keyring
from tests.issuer_helpers import callback_params, pkce_pair, sign_in_and_get_redirect

TIMEOUT = 10

#: One of the suite's extra users (tests/conftest.py).
OTHER_USER = ("user0@example.test", "Dev-Only-Pass-0")


def authorize_url(issuer) -> tuple[str, str]:
    s = issuer.settings
    verifier, challenge = pkce_pair()
    url = issuer.authorize_url(
        s.web_client_id, s.web_redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    return url, verifier


def tokens_of(issuer, username: str, password: str, session: requests.Session | None = None) -> dict:
    """Sign ``username`` in for the web app and redeem the code."""
    s = issuer.settings
    url, verifier = authorize_url(issuer)
    location = sign_in_and_get_redirect(session or requests.Session(), url, username, password)
    response = issuer.redeem("web", callback_params(location)["code"], s.web_redirect_uri, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def signed_in(issuer, session: requests.Session) -> bool:
    """Whether ``session`` still has its issuer session (an authorization request skips the form)."""
    response = session.get(authorize_url(issuer)[0], allow_redirects=False, timeout=TIMEOUT)
    return response.status_code == 302 and "code=" in response.headers["Location"]


def logout(issuer, session: requests.Session, hint: str) -> requests.Response:
    return session.get(
        issuer.endpoint("logout"),
        params={
            "id_token_hint": hint,
            "post_logout_redirect_uri": issuer.settings.web_post_logout_redirect_uri,
            "state": "s1",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def assert_asks_first(response: requests.Response, reason: str) -> None:
    assert response.status_code == 200 and "Location" not in response.headers
    assert 'id="confirm-sign-out"' in response.text and 'name="csrf_token"' in response.text
    assert 'id="logout-hint-refused"' in response.text and reason in response.text


@pytest.fixture
def signed_in_session(issuer):
    """A browser signed in at the issuer as the demo user, and its tokens."""
    session = requests.Session()
    tokens = issuer.code_flow("web", session=session)
    assert signed_in(issuer, session)
    return session, tokens


def test_another_users_id_token_asks_for_confirmation(issuer, signed_in_session):
    session, _ = signed_in_session
    other = tokens_of(issuer, *OTHER_USER)
    page = logout(issuer, session, other["id_token"])
    assert_asks_first(page, "another user")
    assert signed_in(issuer, session)
    # Confirming (the form's POST, with its CSRF token) ends it, without a redirect.
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    confirmed = session.post(
        issuer.endpoint("logout"), data={"csrf_token": csrf, "confirm": "yes"}, timeout=TIMEOUT
    )
    assert confirmed.status_code == 200 and 'id="signed-out"' in confirmed.text
    assert not signed_in(issuer, session)


def test_an_access_token_as_hint_asks_for_confirmation(issuer, signed_in_session):
    session, tokens = signed_in_session
    assert_asks_first(logout(issuer, session, tokens["access_token"]), "access token")
    assert signed_in(issuer, session)


def mint(redis_url: str, claims: dict, typ: str = "JWT") -> str:
    """A JWT signed with the shared issuer's current key (it keeps its keys in this Redis)."""
    key = Keyring(redis.Redis.from_url(redis_url)).signing_key()
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": typ}, claims, key, algorithms=["RS256"])


def test_a_hint_for_no_registered_client_or_typed_at_jwt_asks_for_confirmation(
    issuer, signed_in_session, suite_env
):
    session, tokens = signed_in_session
    s = issuer.settings
    own = issuer.verify(tokens["id_token"], s.web_client_id)
    now = int(time.time())
    claims = {"iss": issuer.url, "sub": own["sub"], "iat": now, "exp": now + 300}
    unregistered = mint(suite_env["REDIS_URL"], {**claims, "aud": "no-such-client"})
    assert_asks_first(logout(issuer, session, unregistered), "not issued to an application registered here")
    typed = mint(suite_env["REDIS_URL"], {**claims, "aud": s.web_client_id}, typ="at+jwt")
    assert_asks_first(logout(issuer, session, typed), "access token")
    assert signed_in(issuer, session)
    # The same claims as a plain ID token of the web app: signed out at once, and sent back.
    good = logout(issuer, session, mint(suite_env["REDIS_URL"], {**claims, "aud": s.web_client_id}))
    assert good.status_code == 302
    assert good.headers["Location"] == s.web_post_logout_redirect_uri + "?state=s1"
    assert not signed_in(issuer, session)


def test_own_id_token_ends_the_session_at_once_and_without_one_nothing_to_confirm(issuer, signed_in_session):
    session, tokens = signed_in_session
    good = logout(issuer, session, tokens["id_token"])
    assert good.status_code == 302 and not signed_in(issuer, session)
    # No issuer session left: another user's hint has nothing to end; the RP gets its user back.
    other = tokens_of(issuer, *OTHER_USER)
    again = logout(issuer, requests.Session(), other["id_token"])
    assert again.status_code == 302
