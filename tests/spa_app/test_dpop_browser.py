"""DPoP in the SPA's PKCE mode (RFC 9449), in Chromium: the key, the proofs, the nonce, end to end.

Three levels, all in a real Chromium with the page's own CSP:

* ``dpop.js`` alone: each proof is checked here with ``cryptography``
  (signature over the JWK in its header, every claim), and the private key
  is shown to be non-extractable by asking the browser to export it;
* ``oidc.callApi`` against a real resource server (gunicorn, Redis) that
  demands its own nonce: one ``401 use_dpop_nonce``, one retry, then 200;
* the whole flow against the dev issuer with DPoP (``DPOP=auto`` finds it
  in the discovery document): sign-in, API call, refresh, sign-out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from selenium.webdriver.common.by import By

from tests.resource_server.conftest import TestIssuer, api_env
from tests.support import free_port, gunicorn, screenshot_dir

pytestmark = pytest.mark.browser


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk: dict) -> str:
    """RFC 7638 §3 for an EC key, computed here independently of dpop.js."""
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


def verified(proof: str) -> tuple[dict, dict]:
    """Header and claims of an ES256 proof whose signature verifies with the jwk in its header."""
    header_b64, claims_b64, signature_b64 = proof.split(".")
    header, claims = json.loads(b64decode(header_b64)), json.loads(b64decode(claims_b64))
    jwk = header["jwk"]
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64decode(jwk["x"]), "big"), int.from_bytes(b64decode(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    raw = b64decode(signature_b64)
    assert len(raw) == 64  # r || s, the JWS form of ES256 (RFC 7518 §3.4)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if bad
    return header, claims


# -- dpop.js on its own -------------------------------------------------------------------------------------


#: The port of the resource server the page calls (its CSP allows API_URL only).
API_PORT = free_port()


@pytest.fixture(scope="module")
def lone_spa():
    """Just the SPA's server, for the module tests (same origin and CSP as the app)."""
    port = free_port()
    env = {
        "SPA_BASE_URL": f"http://localhost:{port}",
        "ISSUER": "https://issuer.test/oauth2/default",
        "API_URL": f"http://127.0.0.1:{API_PORT}",
    }
    service = gunicorn(
        "spa_app-dpop-lone", "spa_app:create_app()", env, port, workers=1, health_path="/healthz"
    )
    yield service.start()
    service.stop()


@pytest.fixture
def page(browser, lone_spa):
    browser.get(lone_spa.url.replace("127.0.0.1", "localhost") + "/")
    browser.execute_async_script(
        "const done = arguments[0];"
        "Promise.all([import('/static/js/dpop.js'), import('/static/js/oidc.js')])"
        ".then(([d, o]) => { window.dpop = d; window.oidc = o; done(); });"
    )
    return browser


def run(page, body, *args):
    """Run an async function body with ``dpop`` and ``oidc`` in scope; its JSON result, or the error."""
    script = (
        "const done = arguments[arguments.length - 1]; const args = Array.from(arguments).slice(0, -1);"
        "(async (dpop, oidc, ...args) => {" + body + "})(window.dpop, window.oidc, ...args)"
        ".then(r => done({ok: true, value: r === undefined ? null : r}))"
        ".catch(e => done({ok: false, error: e.error || e.name || String(e),"
        " description: e.description || ''}));"
    )
    return page.execute_async_script(script, *args)


def test_the_private_key_cannot_be_exported(page):
    """RFC 9449 §2: ``extractable: false``; the browser refuses to export it, to any script."""
    result = run(
        page,
        """
        const key = await dpop.generateKey();
        let exported = "exported";
        try { await crypto.subtle.exportKey("jwk", key.privateKey); }
        catch (err) { exported = err.name; }
        return { extractable: key.privateKey.extractable, type: key.privateKey.type,
                 curve: key.privateKey.algorithm.namedCurve, exported, publicJwk: key.publicJwk,
                 thumbprint: key.thumbprint };
        """,
    )
    value = result["value"]
    assert value["extractable"] is False and value["type"] == "private" and value["curve"] == "P-256"
    assert value["exported"] == "InvalidAccessError"
    assert set(value["publicJwk"]) == {"kty", "crv", "x", "y"}  # public members only
    assert value["thumbprint"] == thumbprint(value["publicJwk"])


def test_a_proof_is_signed_by_the_key_and_names_the_request(page):
    result = run(
        page,
        """
        const key = await dpop.generateKey();
        const a = await dpop.makeProof(key, { method: "get", url: "https://api.test/api/messages?x=1#f",
                                               accessToken: "token-value", nonce: "n-1" });
        const b = await dpop.makeProof(key, { method: "POST", url: "https://issuer.test/oauth2/v1/token" });
        return { a: a.proof, b: b.proof, thumbprint: key.thumbprint };
        """,
    )
    value = result["value"]
    header, claims = verified(value["a"])
    assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": header["jwk"]}
    assert thumbprint(header["jwk"]) == value["thumbprint"]
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://api.test/api/messages"  # no query, no fragment (§4.2)
    assert abs(claims["iat"] - time.time()) < 30
    ath = base64.urlsafe_b64encode(hashlib.sha256(b"token-value").digest()).rstrip(b"=").decode()
    assert claims["ath"] == ath and claims["nonce"] == "n-1"
    _, other = verified(value["b"])
    assert "ath" not in other and "nonce" not in other
    assert other["jti"] != claims["jti"] and len(claims["jti"]) >= 16


@pytest.mark.parametrize(
    "setting, metadata, outcome",
    [
        ("auto", {"dpop_signing_alg_values_supported": ["ES256", "RS256"]}, True),
        ("auto", {}, False),
        ("auto", {"dpop_signing_alg_values_supported": ["RS256"]}, False),  # we sign ES256 only
        ("off", {"dpop_signing_alg_values_supported": ["ES256"]}, False),
        ("on", {"dpop_signing_alg_values_supported": ["ES256"]}, True),
        ("on", {}, "dpop_unsupported"),
    ],
)
def test_when_dpop_is_used(page, setting, metadata, outcome):
    result = run(page, "return dpop.useDpop(args[0], args[1]);", setting, metadata)
    if isinstance(outcome, bool):
        assert result == {"ok": True, "value": outcome}
    else:
        assert result["ok"] is False and result["error"] == outcome


# -- the API's nonce, for real ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nonce_api(lone_spa, redis_server):
    """A resource server demanding its own DPoP nonce, allowing the lone SPA's origin (CORS)."""
    issuer = TestIssuer().start()
    port = API_PORT
    env = api_env(
        issuer,
        API_URL=f"http://127.0.0.1:{port}",
        REDIS_URL=redis_server.url,
        API_DPOP="required",
        API_DPOP_NONCE="on",
        SPA_BASE_URL=lone_spa.url.replace("127.0.0.1", "localhost"),
    )
    service = gunicorn("resource_server-spa-nonce", "resource_server:create_app()", env, port, workers=2)
    service.health_path = "/healthz"
    service.start()
    yield service, issuer
    service.stop()
    issuer.stop()


def test_call_api_retries_once_with_the_apis_nonce(page, nonce_api):
    """401 ``use_dpop_nonce`` + ``DPoP-Nonce`` (exposed by CORS), one retry with the nonce: 200 (§9)."""
    api, issuer = nonce_api
    made = run(page, "window.key = await dpop.generateKey(); return window.key.thumbprint;")
    token = issuer.mint(issuer.claims(cnf={"jkt": made["value"]}))
    result = run(
        page,
        """
        const proofs = [];
        const nonces = new dpop.NonceBook();
        const answer = await oidc.callApi(args[0], args[1],
          { tokenType: "DPoP", dpop: { key: window.key, nonces, onProof: (p) => proofs.push(p.proof) } });
        return { status: answer.status, body: answer.body, proofs, nonce: nonces.get(args[0]) };
        """,
        api.url + "/api/messages",
        token,
    )
    assert result["ok"], result
    value = result["value"]
    assert value["status"] == 200, value
    assert len(value["proofs"]) == 2  # the first without a nonce, the retry with it
    _, first = verified(value["proofs"][0])
    _, retry = verified(value["proofs"][1])
    assert "nonce" not in first and retry["nonce"] == value["nonce"]
    assert value["body"]["dpop"]["jkt"] == made["value"]


# -- the whole flow against the dev issuer -------------------------------------------------------------

#: Installed before any page script runs (DevTools): remembers each key pair the page generates,
#: so that the test can ask the browser about the very key the app made.
CAPTURE_KEYS = """
window.__generatedKeys = [];
const generate = crypto.subtle.generateKey.bind(crypto.subtle);
crypto.subtle.generateKey = async (...args) => {
  const key = await generate(...args);
  window.__generatedKeys.push(key);
  return key;
};
"""


def save_element_screenshot(driver, element, path):
    """The whole element, also beyond the window (DevTools), as a PNG."""
    rect = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height};",
        element,
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**rect, "scale": 1}},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def test_pkce_signs_in_with_dpop_and_calls_the_api(spa):
    """DPOP=auto finds DPoP at the dev issuer: bound tokens, proofs with ath, the nonce round trip."""
    spa.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE_KEYS})
    spa.sign_in("pkce")
    key = spa.driver.execute_async_script(
        """
        const done = arguments[0];
        (async () => {
          const keys = window.__generatedKeys;
          const pair = keys[keys.length - 1];
          let exported = "exported";
          try { await crypto.subtle.exportKey("jwk", pair.privateKey); } catch (err) { exported = err.name; }
          const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
          return { count: keys.length, extractable: pair.privateKey.extractable, exported,
                   publicJwk: { kty, crv, x, y } };
        })().then(done);
        """
    )
    # One key pair, made by the page itself, that no script can export (RFC 9449 §2).
    assert key["count"] == 1
    assert key["extractable"] is False and key["exported"] == "InvalidAccessError"
    jkt = thumbprint(key["publicJwk"])
    assert jkt in spa.visible("dpop-status").text

    steps = dict(spa.inspector_steps())
    # The dev issuer asks for its nonce first (400 use_dpop_nonce, §8): two proofs on the token request.
    assert "use_dpop_nonce" in steps["Token request (code exchange)"]
    assert "DPoP proof (the retry, with the server's nonce)" in steps["Token request (code exchange)"]
    assert '"token_type": "DPoP"' in steps["Token request (code exchange)"]
    assert f'"jkt": "{jkt}"' in steps["Access token"]  # the access token carries cnf.jkt
    token_step = spa.driver.execute_script(
        "return Array.from(document.querySelectorAll('#inspector > li'))"
        ".find(li => li.querySelector('h3').textContent === 'Token request (code exchange)');"
    )
    assert len(token_step.find_elements(By.CSS_SELECTOR, ".dpop-proof")) == 2
    save_element_screenshot(spa.driver, token_step, screenshot_dir() / "spa_app-dpop-proofs.png")  # README

    spa.driver.find_element(By.ID, "call-api").click()
    result = spa.visible("api-result")
    spa.wait(lambda d: "HTTP 200" in result.text)
    body = json.loads(
        spa.driver.find_element(By.CSS_SELECTOR, "#api-result pre").get_attribute("textContent")
    )
    assert body["dpop"]["jkt"] == jkt  # the API checked a proof by this key against cnf.jkt
    assert "ath" in body["dpop"]["checks"]
    api_step = [text for title, text in spa.inspector_steps() if title.startswith("API call: HTTP 200")][-1]
    assert "Authorization\nDPoP [redacted]" in api_step or "DPoP [redacted]" in api_step
    assert '"ath"' in api_step and '"typ": "dpop+jwt"' in api_step
    assert not spa.driver.find_elements(By.CSS_SELECTOR, "#inspector .check-bad")
    spa.screenshot(screenshot_dir() / "spa_app-dpop.png")

    # The refresh token is bound too (§5): the refresh needs a proof from the same key, and works.
    spa.driver.find_element(By.ID, "refresh-tokens").click()
    spa.wait(lambda d: "Refresh (manual)" in spa.inspector_titles())
    refresh_step = dict(spa.inspector_steps())["Refresh (manual)"]
    assert '"typ": "dpop+jwt"' in refresh_step
    spa.driver.find_element(By.ID, "call-api").click()
    spa.wait(lambda d: d.find_element(By.ID, "api-result").text.count("HTTP 200") == 1)
    assert spa.storage() == {"local": {}, "session": {}, "cookies": ""}  # nothing stored, the key neither


def test_implicit_mode_stays_bearer(spa):
    """No token endpoint, nothing to bind at: the Implicit mode sends Bearer, with no proof."""
    spa.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE_KEYS})
    spa.sign_in("implicit")
    assert spa.driver.execute_script("return window.__generatedKeys.length") == 0
    assert not spa.driver.find_element(By.ID, "dpop-status").is_displayed()
    spa.driver.find_element(By.ID, "call-api").click()
    spa.wait(lambda d: "HTTP 200" in d.find_element(By.ID, "api-result").text)
    assert (
        "Bearer [redacted]" in [t for title, t in spa.inspector_steps() if title.startswith("API call")][-1]
    )
