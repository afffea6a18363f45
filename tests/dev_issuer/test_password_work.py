"""An unknown username costs the same password work as a known one (no timing oracle for who exists).

The work is counted, not timed: every scrypt check goes through
``dev_issuer.users.check_password_hash``, which these tests wrap to record
the hash each call checks against.  An unknown user must cause exactly one
check, with the same method and cost parameters (``scrypt:N:r:p``) as the
real users' hashes.  Both the password grant (RFC 6749 §4.3.2, §10.10) and
the sign-in form are checked; the issuer runs in this process, on a real
Redis.
"""

import re

import pytest
import redis

import dev_issuer.users
from dev_issuer import create_app
from dev_issuer.state import STATE_EXTENSION

#: A Redis database of these tests' own (test_app_factory.py uses 11).
PASSWORD_WORK_DB = 12


@pytest.fixture
def app(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + f"/{PASSWORD_WORK_DB}"
    yield create_app(
        {
            "ISSUER": "http://127.0.0.1:9999/oauth2/default",
            "REDIS_URL": url,
            "TRUSTED_MODE": "true",
            "TESTING": True,
        }
    )
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def checks(monkeypatch):
    """The hashes every password check compared against, in order."""
    seen = []
    real = dev_issuer.users.check_password_hash

    def counting(pwhash, password):
        seen.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(dev_issuer.users, "check_password_hash", counting)
    return seen


def cost(pwhash: str) -> str:
    """The method and its work parameters: ``scrypt:32768:8:1``."""
    return pwhash.split("$", 1)[0]


def demo_hash(app) -> str:
    settings = app.extensions[STATE_EXTENSION].settings
    return app.extensions[STATE_EXTENSION].users[settings.demo_username.lower()].password_hash


def password_grant(app, username: str, password: str):
    settings = app.extensions[STATE_EXTENSION].settings
    return app.test_client().post(
        "/oauth2/default/v1/token",
        base_url="http://127.0.0.1:9999",
        data={"grant_type": "password", "username": username, "password": password, "scope": "openid"},
        auth=(settings.trusted_client_id, settings.trusted_client_secret),
    )


@pytest.mark.parametrize("username", ["nobody@example.test", "testuser1@example.com"])
def test_password_grant_does_the_same_scrypt_work_for_unknown_and_known_users(app, checks, username):
    response = password_grant(app, username, "wrong-password")
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    assert len(checks) == 1, checks
    assert cost(checks[0]) == cost(demo_hash(app)) and cost(checks[0]).startswith("scrypt:")


def test_password_grant_still_signs_the_right_password_in(app, checks):
    settings = app.extensions[STATE_EXTENSION].settings
    response = password_grant(app, settings.demo_username, settings.demo_password)
    assert response.status_code == 200, response.json
    assert checks == [demo_hash(app)]


def test_sign_in_form_does_the_same_scrypt_work_for_an_unknown_user(app, checks):
    client = app.test_client()
    page = client.get("/signin", base_url="http://127.0.0.1:9999").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page).group(1)
    response = client.post(
        "/signin",
        base_url="http://127.0.0.1:9999",
        data={"csrf_token": csrf, "username": "nobody@example.test", "password": "wrong-password"},
    )
    assert response.status_code == 303
    assert len(checks) == 1 and cost(checks[0]) == cost(demo_hash(app))
