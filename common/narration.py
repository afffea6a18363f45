"""What the flow inspector says about each protocol step: one table, one place.

The protocol code (``common/authorization.py``, ``common/tokens.py`` ...)
names the step it performs, e.g. ``"token_request.refresh"``; the
:class:`common.recorder.FlowRecorder` it was handed looks the title and the
explanation up here.  So the protocol reads as protocol, and a reader who
wants to change how a step is explained changes one line in this table.

Texts in ``{braces}`` are filled in by the recorder (the API's URL, a
lifetime the issuer sent).
"""

from __future__ import annotations

#: step name -> (title, explanation)
STEPS: dict[str, tuple[str, str]] = {
    # -- the issuer (OpenID Connect Discovery 1.0) --------------------------------------------------
    "discovery": (
        "Discovery",
        "We read the issuer's public configuration to learn its endpoints and keys (OpenID Connect "
        "Discovery). Its 'issuer' matches the configured one exactly.",
    ),
    # -- the browser flow (RFC 6749 §4.1, OIDC Core 3.1) ----------------------------------------------
    "authorization_request": (
        "Authorization request",
        "The browser now goes to the issuer's authorization endpoint. The user signs in there, never here. "
        "'state' ties the answer to this browser session (against CSRF), 'nonce' ties the ID token to it, "
        "and 'code_challenge' is the hash of a secret (the PKCE code_verifier) that only this app knows, "
        "so a stolen authorization code is useless to anyone else.",
    ),
    # -- pushed authorization requests (RFC 9126) ---------------------------------------------------
    "pushed_authorization_request": (
        "Pushed authorization request (PAR)",
        "Before the browser goes anywhere, our server POSTs every parameter of the authorization request "
        "(redirect_uri, scope, state, nonce, the PKCE code_challenge) to the issuer's pushed authorization "
        "request endpoint, with the same client authentication as a token request (RFC 9126 §2.1). The "
        "issuer checks the client and its redirect URI now and answers 201 with a one-time request_uri "
        "and its lifetime, expires_in (§2.2).",
    ),
    "authorization_request.pushed": (
        "Authorization request",
        "Pushed: the browser now goes to the issuer's authorization endpoint with client_id and "
        "request_uri only (RFC 9126 §4): nothing in the address bar can be read or changed. The user "
        "must get there within {expires_in} s; the issuer uses the request_uri once.",
    ),
    "callback": (
        "Callback",
        "One redirect later the browser is back at our redirect URI with the issuer's answer in the query "
        "string. Before using it we check that it answers the request we made.",
    ),
    "token_request.authorization_code": (
        "Token request (authorization code)",
        "Our server now talks to the issuer directly, not through the browser: it sends the one-time code, "
        "proves who it is (client authentication) and sends the PKCE code_verifier. The issuer hashes the "
        "verifier and compares it with the code_challenge of the authorization request.",
    ),
    "token_response": ("Token response", ""),
    "token_response.unusable_lifetime": (
        "Token response",
        "The token response's expires_in ({expires_in}) is not a usable lifetime (RFC 6749 §5.1: seconds; "
        "accepted up to {max_expires_in} s, one year), so the access token's expiry is treated as unknown: "
        "it is used until the API refuses it.",
    ),
    "id_token": (
        "ID token validation",
        "The ID token tells us who signed in. We trust it only after checking the issuer's signature and "
        "every claim below (OpenID Connect Core 3.1.3.7).",
    ),
    # -- after sign-in ----------------------------------------------------------------------------------
    "token_request.refresh": (
        "Token request (refresh)",
        "The access token is (nearly) expired, so we ask the issuer for a new one with the refresh token, "
        "without sending the user anywhere. A rotating issuer also sends a new refresh token; the old one is "
        "then dead.",
    ),
    "userinfo": (
        "UserInfo request",
        "We ask the issuer's UserInfo endpoint for the user's profile, presenting the access token as a "
        "Bearer token (or, when it is DPoP-bound, with the DPoP scheme and a proof, RFC 9449 §7.1). The "
        "answer's 'sub' must be the ID token's 'sub'.",
    ),
    "api_call": (
        "Call the API: GET {url}",
        "The access token goes in the Authorization header as a Bearer token (RFC 6750 §2.1); the resource "
        "server validates it on its own (signature, issuer, audience, expiry, scope) and answers.",
    ),
    "revocation": (
        "Revocation",
        "At sign-out we tell the issuer to revoke the refresh token (RFC 7009), so that nobody can use it "
        "any more, even if it leaked.",
    ),
    "revocation.no_endpoint": (
        "Revocation",
        "The issuer has no revocation endpoint, so the token simply expires.",
    ),
    "end_session": (
        "Sign-out at the issuer",
        "The browser now goes to the issuer's end-session endpoint, so the user's session there ends too "
        "(RP-Initiated Logout). 'id_token_hint' says who is signing out; afterwards the issuer sends the "
        "browser back to post_logout_redirect_uri with our 'state'.",
    ),
    # -- the native app (RFC 8252): the same steps, told for a public client without a server ---------------
    "native.authorization_request": (
        "Authorization request",
        "The system browser now goes to the issuer's authorization endpoint (RFC 8252 §6: never a view "
        "embedded in this program, which could read the password). The user signs in there. 'state' ties the "
        "answer to this run of the program, 'nonce' ties the ID token to it, and 'code_challenge' is the "
        "hash of a secret (the PKCE code_verifier) that only this process holds, so another program on this "
        "machine that catches the redirect cannot redeem the code (RFC 7636).",
    ),
    "native.callback": (
        "Callback",
        "One redirect later the browser delivers the issuer's answer to this program's one-shot listener on "
        "the loopback interface (RFC 8252 §7.3), which takes only the answer with our 'state' and closes. "
        "Before using it we check that it answers the request we made.",
    ),
    "native.token_request.authorization_code": (
        "Token request (authorization code)",
        "This program (a native app has no server) now talks to the issuer directly, not through the "
        "browser: it sends the one-time code and the PKCE code_verifier, and no client authentication. A "
        "native app is a public client: a secret shipped inside it could be extracted (RFC 8252 §8.4). The "
        "verifier is the proof instead: the issuer hashes it and compares it with the code_challenge.",
    ),
    "native.token_request.refresh": (
        "Token request (refresh)",
        "You asked for fresh tokens, so the program sends the refresh token to the issuer's token endpoint, "
        "without sending you anywhere. The refresh token is bound to the client it was issued to (RFC 6749 "
        "§6): `login`'s public client sends only its client_id, `password-login`'s trusted client also its "
        "secret. A rotating issuer also sends a new refresh token; the old one is then dead.",
    ),
    "native.token_request.refresh_expired": (
        "Token request (refresh)",
        "The stored access token has expired, so before calling the API the program asks the issuer for a "
        "new one with the refresh token, without sending you anywhere. A rotating issuer also sends a new "
        "refresh token; the old one is then dead.",
    ),
    "native.revocation": (
        "Revocation",
        "At sign-out the program asks the issuer to revoke the refresh token and then the access token "
        "(RFC 7009), and deletes its stored copy. Nobody can use the refresh token any more, even if it "
        "leaked; a JWT access token still passes an API's local checks until it expires, but an API that "
        "introspects it sees it revoked.",
    ),
    # -- the device authorization grant (RFC 8628): native_sim device-login ---------------------------------
    "device_authorization": (
        "Device authorization request",
        "The program asks the issuer's device authorization endpoint for two codes (RFC 8628 §3.1): a "
        "device_code, its own secret handle, and a short user_code for you. It sends only its client_id and "
        "the scope: a native app is a public client. The answer also says where to enter the code "
        "(verification_uri), how long the codes live (expires_in) and how often the program may ask whether "
        "you are done (interval).",
    ),
    "token_request.device_code": (
        "Token request (device code)",
        "The program polls the token endpoint with the device_code (RFC 8628 §3.4), waiting 'interval' "
        "seconds between requests. Until you have approved on the verification page the issuer answers "
        "authorization_pending; slow_down means five seconds more between polls from now on (§3.5); "
        "access_denied and expired_token end the sign-in.",
    ),
    "device_poll.repeated": (
        "Polling (authorization_pending {number} more times)",
        "The issuer answered authorization_pending {number} more times while you were approving; those "
        "identical polls are not shown one by one.",
    ),
    # -- grants without a browser -------------------------------------------------------------------------
    "token_request.client_credentials": (
        "Token request (client credentials)",
        "A service has no user: it authenticates as itself at the token endpoint and asks for the scope it "
        "needs. The access token it gets back is about the client, not a person.",
    ),
    "token_request.password": (
        "Token request (password)",
        "The trusted app sends the user's username and password straight to the token endpoint (deprecated: "
        "the app sees the password). The password is not shown here.",
    ),
    "introspection": (
        "Token introspection",
        "Instead of checking the token's signature ourselves, we ask the issuer whether it is active "
        "(RFC 7662).",
    ),
    # -- the service app (RFC 6749 §4.4) -------------------------------------------------------------------
    "service.client_credentials": (
        "Client Credentials: the service authenticates as itself",
        "No user and no browser: the service sends its own credentials ({auth_method}) to the issuer's "
        "token endpoint and asks for the scope {scope!r} (RFC 6749 §4.4).",
    ),
    "service.access_token": (
        "The access token (decoded for display)",
        "To the service the access token is opaque: it only sends it on. Decoded here to show what the API "
        "will check: iss, aud, exp, and the scopes in scp / scope; cid is this client. There is no user, so "
        "sub is the client too.",
    ),
    "service.cached_token": (
        "Access token from the cache",
        "The cached token is still valid for {seconds} s, so no token request is needed: a service asks the "
        "issuer once per token lifetime, not once per call.",
    ),
    "service.api_refused_token": (
        "The API refused the token (401): one fresh token, one retry",
        "RFC 6750 §3.1: invalid_token. The cached token is discarded (only if no other request replaced it "
        "already) and the call is repeated once with a new token.",
    ),
    "service.call_failed": ("The call failed", ""),
    "service.issuer_retry": (
        "Issuer unreachable (try {number}); waiting {pause:.1f} s",
        "{reason} A timeout or 5xx says nothing about our request, so it is retried a bounded number of "
        "times with growing, jittered pauses.",
    ),
    # -- DPoP (RFC 9449): sender-constrained tokens ----------------------------------------------------
    "dpop.nonce_requested": (
        "The issuer asked for a DPoP nonce",
        "The issuer answered 400 use_dpop_nonce with a DPoP-Nonce header (RFC 9449 §8): not a refusal, but "
        "its way of making proofs fresh. The request is sent once more, with a new proof that carries the "
        "nonce; later proofs to this issuer carry the latest nonce it sent.",
    ),
    "dpop.api_nonce_requested": (
        "The API asked for a DPoP nonce",
        'The resource server answered 401 with WWW-Authenticate: DPoP error="use_dpop_nonce" and a '
        "DPoP-Nonce header (RFC 9449 §9). The call is repeated once, with a new proof carrying the nonce.",
    ),
    "dpop.api_call": (
        "Call the API: GET {url}",
        "The access token is bound to this app's key (cnf.jkt), so it goes in the Authorization header with "
        "the DPoP scheme, beside a fresh proof for this request whose 'ath' is the token's hash (RFC 9449 "
        "§7.1). A copy of the token alone is useless: the API also checks that the proof was signed by the "
        "key the token names.",
    ),
}


def narration(step: str, **values) -> tuple[str, str]:
    """The ``(title, explanation)`` of ``step``, with ``values`` filled in."""
    title, explanation = STEPS[step]
    if values:
        title, explanation = title.format(**values), explanation.format(**values)
    return title, explanation
