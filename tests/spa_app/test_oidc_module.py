"""oidc.js, the SPA's protocol module, unit-tested inside Chromium.

The module is imported into the SPA's own page (same origin, same CSP),
so these are the real WebCrypto and URL implementations the app uses.
The JWKS fetch is stubbed with a key made here, so that every ID token
check can be driven to fail on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import free_port, gunicorn

pytestmark = pytest.mark.browser

ISSUER = "https://issuer.test/oauth2/default"
CLIENT_ID = "spa-client"
NONCE = "n-0S6_WzA2Mj"
ACCESS_TOKEN = "an-access-token-value"


@pytest.fixture(scope="module")
def lone_spa(tmp_path_factory):
    """Just the SPA's server: these tests never leave the page."""
    port = free_port()
    env = {
        "SPA_BASE_URL": f"http://localhost:{port}",
        "ISSUER": ISSUER,
        "API_URL": "https://api.test",
        "SPA_CLIENT_ID": CLIENT_ID,
    }
    service = gunicorn(
        "spa_app-lone", "spa_app:create_app()", env, port, workers=1, health_path="/healthz"
    ).start()
    yield f"http://localhost:{port}"
    service.stop()


@pytest.fixture
def page(browser, lone_spa):
    """The SPA's page, with oidc.js imported as ``window.oidc``."""
    browser.get(lone_spa + "/")
    browser.execute_async_script(
        "const done = arguments[0]; import('/static/js/oidc.js').then(m => { window.oidc = m; done(); });"
    )
    return browser


def run(page, body, *args):
    """Run an async JS function body with ``oidc`` in scope; return its JSON result or the error."""
    script = (
        "const done = arguments[arguments.length - 1]; const args = Array.from(arguments).slice(0, -1);"
        "(async (oidc, ...args) => {" + body + "})(window.oidc, ...args)"
        ".then(r => done({ok: true, value: r === undefined ? null : r}))"
        ".catch(e => done({ok: false, error: e.error || String(e), description: e.description || ''}));"
    )
    return page.execute_async_script(script, *args)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- PKCE (RFC 7636) -----------------------------------------------------------------------


def test_rfc7636_appendix_b_vector(page):
    result = run(page, "return await oidc.codeChallengeS256('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk');")
    assert result == {"ok": True, "value": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}


def test_code_verifiers_are_fresh_and_well_formed(page):
    result = run(page, "return Array.from({length: 50}, () => oidc.generateCodeVerifier());")
    verifiers = result["value"]
    assert len(set(verifiers)) == 50
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def test_code_challenge_refuses_a_short_verifier(page):
    assert run(page, "return await oidc.codeChallengeS256('too-short');")["error"] == "invalid_request"


def test_state_and_nonce_are_random(page):
    values = run(page, "return Array.from({length: 50}, () => oidc.randomString());")["value"]
    assert len(set(values)) == 50 and all(len(v) >= 43 for v in values)  # 256 bits each


# -- the authorization request and response -----------------------------------------------------


def test_authorization_urls(page):
    result = run(
        page,
        """
        const md = {authorization_endpoint: 'https://issuer.test/oauth2/default/v1/authorize?x=1'};
        const base = {clientId: 'c', redirectUri: 'https://spa.test/login/callback', scope: 'openid email',
                      state: 's', nonce: 'n', codeChallenge: 'ch'};
        return [oidc.buildAuthorizationUrl(md, {...base, mode: 'pkce'}),
                oidc.buildAuthorizationUrl(md, {...base, mode: 'implicit'})];
    """,
    )["value"]
    from urllib.parse import parse_qs, urlsplit

    pkce, implicit = (parse_qs(urlsplit(u).query) for u in result)
    assert pkce["response_type"] == ["code"] and pkce["code_challenge_method"] == ["S256"]
    assert pkce["code_challenge"] == ["ch"] and pkce["x"] == ["1"]
    assert implicit["response_type"] == ["id_token token"] and "code_challenge" not in implicit
    assert implicit["nonce"] == ["n"] and implicit["state"] == ["s"]


def test_callback_parameters_come_from_query_or_fragment(page):
    result = run(
        page,
        """
        const href = 'https://spa.test/login/callback?code=c1&state=q#access_token=t&state=f';
        return [oidc.readCallback(href, 'pkce'), oidc.readCallback(href, 'implicit')];
    """,
    )["value"]
    assert result[0] == {"code": "c1", "state": "q"}
    assert result[1] == {"access_token": "t", "state": "f"}


@pytest.mark.parametrize(
    "href, mode",
    [
        ("https://spa.test/login/callback?code=c1&state=q&state=q", "pkce"),
        ("https://spa.test/login/callback#access_token=t&access_token=u&state=f", "implicit"),
        # The Implicit flow's fallback to an error in the query refuses repetition too.
        ("https://spa.test/login/callback?error=access_denied&state=q&state=r#", "implicit"),
        ("https://spa.test/login/callback?error=access_denied&error=server_error&state=q", "implicit"),
    ],
)
def test_callback_parameters_given_twice_are_refused(page, href, mode):
    """RFC 6749 §3.1: a parameter MUST NOT be included more than once; the answer is not read."""
    assert run(page, "return oidc.readCallback(args[0], args[1]);", href, mode)["error"] == "invalid_request"


def test_implicit_error_in_the_query_is_read(page):
    href = "https://spa.test/login/callback?error=access_denied&state=q#"
    result = run(page, "return oidc.readCallback(args[0], 'implicit');", href)
    assert result["value"] == {"error": "access_denied", "state": "q"}


def test_issuer_error_description_is_bounded_plain_text(page):
    """Shown once the state is ours, without control characters and at most 300 characters."""
    result = run(
        page,
        """
        try {
            oidc.checkAuthorizationResponse({error: 'access_denied', error_description: args[0], state: 's'},
                                            {state: 's'}, {issuer: 'x'});
        } catch (e) { return e.description; }
    """,
        "line one\r\nline two\u0000" + "x" * 400,
    )
    assert result["value"].startswith("line one  line two ")
    assert len(result["value"]) == 301 and result["value"].endswith("…")


def test_an_old_sign_in_is_refused_after_the_error_and_before_the_code(page):
    """As the Python relying party: state, iss, error, then the sign-in's age, then the code."""
    result = run(
        page,
        """
        const old = {state: 's', createdAt: Date.now() - 601000};
        const outcome = (params) => {
            try { oidc.checkAuthorizationResponse(params, old, {issuer: 'x'}, {loginTimeout: 600}); }
            catch (e) { return e.error; }
        };
        return [outcome({error: 'access_denied', state: 's'}), outcome({state: 's'}),
                outcome({code: 'c', state: 's'})];
    """,
    )
    assert result["value"] == ["access_denied", "login_expired", "login_expired"]


def test_no_sign_in_in_progress(page):
    result = run(page, "oidc.checkAuthorizationResponse({code: 'c', state: 's'}, null, {issuer: 'x'});")
    assert result["error"] == "state_missing"


@pytest.mark.parametrize(
    "fragment",
    [
        {"state": "s", "id_token": "a.b.c", "token_type": "Bearer"},
        {"state": "s", "access_token": "t", "token_type": "Bearer"},
        {"state": "s", "access_token": "t", "id_token": "a.b.c", "token_type": "mac"},
    ],
)
def test_implicit_answer_without_its_tokens(page, fragment):
    script = "oidc.checkAuthorizationResponse(args[0], {state: 's', mode: 'implicit'}, {});"
    result = run(page, script, fragment)
    assert result["error"] == "invalid_request"


@pytest.mark.parametrize(
    "params, metadata, error",
    [
        ({"error": "access_denied", "state": "s"}, {}, "access_denied"),
        ({"code": "c"}, {}, "state_missing"),
        ({"code": "c", "state": "other"}, {}, "state_mismatch"),
        (
            {"code": "c", "state": "s", "iss": "https://evil.test"},
            {"issuer": ISSUER, "authorization_response_iss_parameter_supported": True},
            "iss_mismatch",
        ),
        (
            {"code": "c", "state": "s"},
            {"issuer": ISSUER, "authorization_response_iss_parameter_supported": True},
            "iss_mismatch",
        ),
        # RFC 9207 §2.4: an iss that is present is compared, even from an issuer
        # that does not announce the parameter (or says it does not send it).
        ({"code": "c", "state": "s", "iss": "https://evil.test"}, {"issuer": ISSUER}, "iss_mismatch"),
        (
            {"code": "c", "state": "s", "iss": "https://evil.test"},
            {"issuer": ISSUER, "authorization_response_iss_parameter_supported": False},
            "iss_mismatch",
        ),
        ({"code": "c", "state": "s", "iss": ""}, {"issuer": ISSUER}, "iss_mismatch"),
        # exact match only
        ({"code": "c", "state": "s", "iss": ISSUER + "/"}, {"issuer": ISSUER}, "iss_mismatch"),
    ],
)
def test_authorization_response_checks(page, params, metadata, error):
    result = run(page, "oidc.checkAuthorizationResponse(args[0], {state: 's'}, args[1]);", params, metadata)
    assert result["error"] == error


@pytest.mark.parametrize(
    "params, metadata",
    [
        (
            {"code": "c", "state": "s", "iss": ISSUER},
            {"issuer": ISSUER, "authorization_response_iss_parameter_supported": True},
        ),
        ({"code": "c", "state": "s", "iss": ISSUER}, {"issuer": ISSUER}),
        ({"code": "c", "state": "s"}, {"issuer": ISSUER}),  # not announced, not sent: nothing to compare
    ],
)
def test_authorization_response_accepted(page, params, metadata):
    result = run(
        page,
        "oidc.checkAuthorizationResponse(args[0], {state: 's'}, args[1]); return 'fine';",
        params,
        metadata,
    )
    assert result == {"ok": True, "value": "fine"}


# -- the flow inspector: what it puts on screen -------------------------------------------------------


def test_inspector_shortens_the_code_and_redacts_the_verifier(page):
    """The authorization code is a credential until redeemed: shortened like a token.

    The callback step and the token request both show it; the code_verifier
    (RFC 7636 §4.1) stays hidden altogether.
    """
    code = "SplxlOBeZQQYbYS6WxSbIA-a-long-authorization-code"
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    result = run(
        page,
        """
        const inspector = await import('/static/js/inspector.js');
        const [code, verifier] = args;
        const form = {grant_type: 'authorization_code', code, code_verifier: verifier, client_id: 'c'};
        const callback = inspector.urlParams(`https://spa.test/login/callback?code=${code}&state=s`);
        const root = document.createElement('ol');
        new inspector.FlowInspector(root).step('Token request', 'x',
            {request: {method: 'POST', url: 'https://issuer.test/token', params: form}});
        return {redacted: inspector.redact(form), callback, screen: root.textContent};
    """,
        code,
        verifier,
    )["value"]
    assert result["redacted"]["code"] == f"{code[:8]}…({len(code)} chars)…{code[-4:]}"
    assert result["callback"]["code"] == result["redacted"]["code"] and result["callback"]["state"] == "s"
    assert result["redacted"]["code_verifier"] == "[redacted]"
    assert result["redacted"]["client_id"] == "c" and result["redacted"]["grant_type"] == "authorization_code"
    assert code not in result["screen"] and verifier not in result["screen"]
    assert result["redacted"]["code"] in result["screen"]


# -- ID token validation (OIDC Core 3.1.3.7, 3.2.2.9-11) --------------------------------------------


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(signing_key):
    numbers = signing_key.public_key().public_numbers()
    as_b64 = lambda n: b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))  # noqa: E731
    return {
        "keys": [
            {
                "kty": "RSA",
                "kid": "k1",
                "use": "sig",
                "alg": "RS256",
                "n": as_b64(numbers.n),
                "e": as_b64(numbers.e),
            }
        ]
    }


def make_token(key, *, headers=None, algorithm="RS256", **overrides):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "00u1",
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
        "at_hash": b64url(hashlib.sha256(ACCESS_TOKEN.encode()).digest()[:16]),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1", **(headers or {})})


def validate(page, jwks, token, **options):
    """validateIdToken in the browser, with fetch() answering the JWKS."""
    options = {
        "jwksUri": f"https://issuer.test/keys/{time.monotonic_ns()}",
        "issuer": ISSUER,
        "clientId": CLIENT_ID,
        "nonce": NONCE,
        "accessToken": ACCESS_TOKEN,
        "atHashRequired": True,
        "leeway": 0,
        **options,
    }
    return run(
        page,
        """
        const [jwks, token, options] = args;
        window.fetch = async () => new Response(JSON.stringify(jwks),
            {status: 200, headers: {'Content-Type': 'application/json'}});
        const {claims, checks} = await oidc.validateIdToken(token, options);
        return {sub: claims.sub, checks: checks.map(c => c.check)};
    """,
        jwks,
        token,
        options,
    )


def test_a_good_id_token_passes_every_check(page, jwks, signing_key):
    result = validate(page, jwks, make_token(signing_key))
    assert result["ok"], result
    assert result["value"]["sub"] == "00u1"
    assert result["value"]["checks"] == ["signature", "iss", "aud", "exp", "iat", "nonce", "at_hash"]


def test_at_hash_matches_python(page):
    for token in (ACCESS_TOKEN, "eyJhbGciOiJSUzI1NiJ9.x.y", "ü-unicode"):
        expected = b64url(hashlib.sha256(token.encode()).digest()[:16])
        assert run(page, "return await oidc.atHash(args[0]);", token)["value"] == expected


def test_altered_claims_fail_the_signature(page, jwks, signing_key):
    header, payload, signature = make_token(signing_key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    assert validate(page, jwks, forged)["error"] == "invalid_signature"


def test_another_key_fails_the_signature(page, jwks):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert validate(page, jwks, make_token(other))["error"] == "invalid_signature"


@pytest.mark.parametrize(
    "overrides, error_fragment",
    [
        ({"iss": "https://evil.test/oauth2/default"}, "iss"),
        ({"aud": "another-client"}, "aud"),
        ({"aud": [CLIENT_ID, "another-client"]}, "several audiences"),
        ({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}, "azp"),
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"iat": int(time.time()) + 3600}, "future"),
        ({"nonce": "replayed"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "swapped"),
        ({"at_hash": None}, "REQUIRED"),
        ({"sub": None}, "subject"),
    ],
)
def test_bad_claims_are_rejected(page, jwks, signing_key, overrides, error_fragment):
    result = validate(page, jwks, make_token(signing_key, **overrides))
    assert not result["ok"], overrides
    assert error_fragment in result["description"]


def test_unpinned_algorithms_are_rejected(page, jwks, signing_key):
    hmac_token = make_token(b"a-shared-secret-long-enough-for-hs256!!", algorithm="HS256")
    assert "only RS256" in validate(page, jwks, hmac_token)["description"]
    header = b64url(json.dumps({"alg": "none", "kid": "k1"}).encode())
    payload = make_token(signing_key).split(".")[1]
    assert "only RS256" in validate(page, jwks, f"{header}.{payload}.")["description"]


def test_unknown_kid_is_rejected(page, jwks, signing_key):
    result = validate(page, jwks, make_token(signing_key, headers={"kid": "not-in-jwks"}))
    assert "No key" in result["description"]


def test_refreshed_id_token_must_name_the_same_user(page, jwks, signing_key):
    token = make_token(signing_key, nonce=None, sub="00u2")
    refresh = {"nonce": None, "previousSub": "00u1", "atHashRequired": False}
    assert "another user" in validate(page, jwks, token, **refresh)["description"]
    result = validate(page, jwks, make_token(signing_key, nonce=None), **refresh)
    assert result["ok"], result


def test_oversized_token_is_refused_before_crypto(page, jwks, signing_key):
    result = validate(page, jwks, make_token(signing_key, padding="x" * 10000))
    assert "too large" in result["description"]


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_an_access_token_typed_at_jwt_is_not_an_id_token(page, jwks, signing_key, typ):
    """RFC 9068 §2.1, RFC 8725 §3.11: the same rule as common/id_token.py."""
    result = validate(page, jwks, make_token(signing_key, headers={"typ": typ}))
    assert result["error"] == "invalid_id_token" and "access token" in result["description"], result
    assert validate(page, jwks, make_token(signing_key, headers={"typ": "JWT"}))["ok"]


def make_text_token(key, payload: str, kid: str = "k1") -> str:
    """An RS256 JWS over exactly the JSON text ``payload`` (``1e400``, which json.dumps cannot write)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = f"{b64url(json.dumps({'alg': 'RS256', 'kid': kid}).encode())}.{b64url(payload.encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def _claims_text(key, claim: str, value: str) -> str:
    """The claims of a good ID token as JSON text, ``claim`` written as ``value``."""
    claims = jwt.decode(make_token(key), options={"verify_signature": False})
    return json.dumps(claims).replace(f'"{claim}": ', f'"{claim}": {value}, "{claim}_was": ')


@pytest.mark.parametrize("claim", ["exp", "iat"])
@pytest.mark.parametrize("value", ["1e400", "-1e400", "NaN", "Infinity"])
def test_non_finite_times_are_refused(page, jwks, signing_key, claim, value):
    """JSON.parse turns 1e400 into Infinity, an exp that never expires (RFC 8259 §6 has no such number);
    before, a Date of it threw a RangeError instead of an OidcError."""
    result = validate(page, jwks, make_text_token(signing_key, _claims_text(signing_key, claim, value)))
    assert result["error"] == "invalid_id_token" and "not JSON" in result["description"], result


def test_a_far_but_finite_expiry_is_shown_without_an_exception(page, jwks, signing_key):
    result = validate(page, jwks, make_text_token(signing_key, _claims_text(signing_key, "exp", "1e300")))
    assert result["ok"], result


def test_an_rsa_key_under_2048_bits_is_not_used(page, signing_key):
    """RFC 7518 §3.3: a 1024-bit key in the JWKS is skipped, so its token has "no key"."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    as_b64 = lambda n: b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))  # noqa: E731
    numbers = weak.public_key().public_numbers()
    weak_jwks = {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "n": as_b64(numbers.n), "e": "AQAB"}]}
    result = validate(page, weak_jwks, make_text_token(weak, _claims_text(signing_key, "sub", '"00u1"')))
    assert not result["ok"] and "No key" in result["description"], result


def _rotation(page, first_jwks, then_jwks, tokens, jwks_uri):
    """validateIdToken for each token in turn; fetch() answers first_jwks once, then then_jwks."""
    return run(
        page,
        """
        const [first, then, tokens, options] = args;
        let fetches = 0;
        window.fetch = async () => new Response(JSON.stringify(fetches++ === 0 ? first : then),
            {status: 200, headers: {'Content-Type': 'application/json'}});
        const outcomes = [];
        for (const token of tokens) {
            try {
                await oidc.validateIdToken(token, options);
                outcomes.push('ok');
            } catch (err) {
                outcomes.push(err.description);
            }
        }
        return {outcomes, fetches};
    """,
        first_jwks,
        then_jwks,
        tokens,
        {
            "jwksUri": jwks_uri,
            "issuer": ISSUER,
            "clientId": CLIENT_ID,
            "nonce": NONCE,
            "accessToken": ACCESS_TOKEN,
            "leeway": 0,
        },
    )["value"]


def test_a_key_rotated_right_after_a_fetch_is_accepted_at_once(page, jwks, signing_key):
    """The issuer publishes k2 and signs with it seconds after our fetch: the first unknown kid refetches
    at once (the same rule as common/keyset.py); made-up kids after it wait for the cool-down."""
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = new_key.public_key().public_numbers()
    as_b64 = lambda n: b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))  # noqa: E731
    k2 = {"kty": "RSA", "kid": "k2", "use": "sig", "alg": "RS256", "n": as_b64(numbers.n), "e": "AQAB"}
    rotated = {"keys": [*jwks["keys"], k2]}
    tokens = [
        make_token(signing_key),
        make_token(new_key, headers={"kid": "k2"}),
        make_token(new_key, headers={"kid": "made-up"}),
        make_token(new_key, headers={"kid": "made-up-too"}),
    ]
    result = _rotation(page, jwks, rotated, tokens, f"https://issuer.test/keys/{time.monotonic_ns()}")
    assert result["outcomes"][:2] == ["ok", "ok"], result
    assert all("No key" in outcome for outcome in result["outcomes"][2:]), result
    assert result["fetches"] == 2


def test_an_unknown_kid_on_a_cold_cache_fetches_once(page, jwks, signing_key):
    tokens = [make_token(signing_key, headers={"kid": "made-up"})] * 2
    result = _rotation(page, jwks, jwks, tokens, f"https://issuer.test/keys/{time.monotonic_ns()}")
    assert all("No key" in outcome for outcome in result["outcomes"]) and result["fetches"] == 1, result


def test_end_session_url(page):
    url = run(
        page,
        """return oidc.endSessionUrl({end_session_endpoint: 'https://issuer.test/v1/logout'},
        {idTokenHint: 'id.tok.en', clientId: 'c', postLogoutRedirectUri: 'https://spa.test/', state: 'st'});
    """,
    )["value"]
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    assert query == {
        "id_token_hint": ["id.tok.en"],
        "client_id": ["c"],
        "post_logout_redirect_uri": ["https://spa.test/"],
        "state": ["st"],
    }
    assert run(page, "return oidc.endSessionUrl({}, {state: 's'});")["value"] is None
