"""The SPA's backend for frontend against the hostile test issuer: what only a server-side callback shows.

The shared cases (forged ID tokens, hostile callbacks, a failing token
endpoint) run the BFF through ``bff_driver`` in the other modules of this
layer, like the web app.  Here: an issuer error that names no sign-in of
ours is not shown at all (the state is checked first), and the state and
code are single use.
"""

from __future__ import annotations

from urllib.parse import urlencode

from tests.security.conftest import PAYLOAD, callback_params


def test_bff_issuer_error_with_a_foreign_state_is_not_shown(bff_driver, issuer):
    """RFC 6749 §10.12: an error answer for somebody else's request is refused as a state mismatch."""
    issuer.authorize_hook = lambda params: {
        "error": "access_denied",
        "error_description": PAYLOAD,
        "state": "a-state-this-client-never-sent",
        "iss": params.get("iss", issuer.issuer),
    }
    outcome = bff_driver.sign_in()
    assert not outcome.ok and not outcome.stored
    assert outcome.error == "state_mismatch", outcome.text
    assert "window.__pwned" not in outcome.raw  # the issuer's text is not shown at all
    assert issuer.count("token") == 0 and issuer.count("api") == 0


def test_bff_state_mix_up_is_refused(bff_driver, issuer):
    """Browser B's answer delivered to browser A (login CSRF, a state mix-up): refused, nothing redeemed."""
    victim, attacker = bff_driver.make_client(), bff_driver.make_client()
    _, victim_url = bff_driver.start(client=victim)
    _, attacker_url = bff_driver.start(client=attacker)
    attacker_answer = bff_driver.at_issuer(attacker_url)
    outcome = bff_driver.callback(attacker_answer, client=victim)
    assert outcome.error == "state_mismatch", outcome.text
    assert not bff_driver.tokens_stored(victim)
    assert issuer.count("token") == 0
    # The victim's own sign-in is still in flight and completes.
    assert bff_driver.callback(bff_driver.at_issuer(victim_url), client=victim).ok


def test_bff_state_and_code_are_single_use(bff_driver, issuer):
    _, authorization_url = bff_driver.start()
    callback = bff_driver.at_issuer(authorization_url)
    assert bff_driver.callback(callback).ok
    # The spent answer in another browser: its state names no sign-in there.
    other = bff_driver.make_client()
    replay = bff_driver.callback(callback, client=other)
    assert replay.error == "state_missing" and not replay.stored
    # The spent code with an attacker's own state: the issuer refuses the second redemption.
    _, attacker_url = bff_driver.start(client=other)
    forged = {**callback_params(callback), "state": callback_params(attacker_url)["state"]}
    outcome = bff_driver.callback(f"/bff/callback?{urlencode(forged)}", client=other)
    assert outcome.error == "token_error" and "invalid_grant" in outcome.text, outcome.text
    assert not bff_driver.tokens_stored(other)
    assert issuer.count("token") == 2 and issuer.count("api") == 0
