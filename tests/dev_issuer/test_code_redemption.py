"""Redeeming authorization codes: once, atomically, and only by the client it was issued to.

RFC 6749 §4.1.2: a code used twice is refused and the tokens issued for it
revoked.  §4.1.3: the client, the redirect URI (and RFC 7636 §4.6's code
verifier) are checked before the code counts as used, so a request that
fails them cannot burn someone else's code.
"""

import threading

import requests

from tests.issuer_helpers import callback_params, pkce_pair, sign_in_and_get_redirect

TIMEOUT = 10


def fresh_code(issuer, client_id, redirect_uri, session):
    """A new code from the SSO session in ``session`` (signing in the first time)."""
    verifier, challenge = pkce_pair()
    url = issuer.authorize_url(
        client_id, redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    if not session.cookies:
        location = sign_in_and_get_redirect(
            session, url, issuer.settings.demo_username, issuer.settings.demo_password
        )
    else:
        response = session.get(url, allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 302, response.text
        location = response.headers["Location"]
    return callback_params(location)["code"], verifier


def test_failed_exchanges_do_not_burn_a_public_clients_code(issuer):
    """Someone holding an intercepted code but not the verifier cannot spend it (RFC 9700 §4.5)."""
    s = issuer.settings
    code, verifier = fresh_code(issuer, s.spa_client_id, s.spa_redirect_uri, requests.Session())
    wrong_verifier, _ = pkce_pair()
    attempts = [
        issuer.redeem("spa", code, s.spa_redirect_uri, wrong_verifier),  # PKCE fails
        issuer.redeem("spa", code, s.spa_redirect_uri, None),  # no verifier
        issuer.redeem("spa", code, s.spa_redirect_uri + "x", verifier),  # redirect URI differs
        issuer.redeem("native", code, s.spa_redirect_uri, verifier),  # another client
    ]
    for response in attempts:
        assert response.status_code == 400, response.text
        assert "already used" not in response.json().get("error_description", "")
    # The real client's exchange still works, and its tokens are not revoked.
    genuine = issuer.redeem("spa", code, s.spa_redirect_uri, verifier)
    assert genuine.status_code == 200, genuine.text
    tokens = genuine.json()
    assert issuer.introspect(tokens["access_token"], client_id=s.spa_client_id)["active"] is True

    # A replay that fails the checks revokes nothing either: only someone
    # who could have redeemed the code counts as using it twice ...
    assert issuer.redeem("spa", code, s.spa_redirect_uri, wrong_verifier).status_code == 400
    assert issuer.introspect(tokens["access_token"], client_id=s.spa_client_id)["active"] is True
    # ... and a genuine replay does (RFC 6749 §4.1.2).
    replay = issuer.redeem("spa", code, s.spa_redirect_uri, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert "already used" in replay.json()["error_description"]
    assert issuer.introspect(tokens["access_token"], client_id=s.spa_client_id)["active"] is False
    assert issuer.introspect(tokens["refresh_token"], client_id=s.spa_client_id)["active"] is False


def test_concurrent_redemptions_one_wins_and_its_tokens_are_revoked(issuer):
    """Two simultaneous redemptions of one code: one 200, one replay, tokens revoked, every time."""
    s = issuer.settings
    session = requests.Session()
    for trial in range(20):
        code, verifier = fresh_code(issuer, s.web_client_id, s.web_redirect_uri, session)
        barrier = threading.Barrier(2)
        results = [None, None]

        def redeem(i, code=code, verifier=verifier, barrier=barrier, results=results):
            barrier.wait(timeout=TIMEOUT)
            results[i] = issuer.redeem("web", code, s.web_redirect_uri, verifier)

        threads = [threading.Thread(target=redeem, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * 2)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 400], (trial, [r.text for r in results])
        winner = next(r for r in results if r.status_code == 200).json()
        loser = next(r for r in results if r.status_code == 400).json()
        assert loser["error"] == "invalid_grant" and "already used" in loser["error_description"], (
            trial,
            loser,
        )
        assert issuer.introspect(winner["access_token"])["active"] is False, trial
        assert issuer.introspect(winner["refresh_token"])["active"] is False, trial
