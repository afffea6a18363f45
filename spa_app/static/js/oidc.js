// oidc.js — the OAuth 2.0 / OpenID Connect protocol steps of a browser app.
//
// Read top to bottom, this module is the flow:
//
//   1. discover()                the issuer's metadata (OIDC Discovery 1.0 §4)
//   2. generateCodeVerifier(),   PKCE (RFC 7636 §4.1-4.2): a one-time secret
//      codeChallengeS256()       whose hash goes out with the request
//   3. buildAuthorizationUrl()   the front-channel request (RFC 6749 §4.1.1,
//                                OIDC Core 3.1.2.1; Implicit: 3.2.2.1)
//      ... the user signs in at the issuer; one redirect later we are back ...
//   4. readCallback()            code + state from the query (RFC 6749 §4.1.2)
//                                or tokens from the fragment (OIDC Core 3.2.2.5),
//                                each parameter given once (RFC 6749 §3.1)
//   5. checkAuthorizationResponse()  state (CSRF defence, RFC 6749 §10.12),
//                                then iss (RFC 9207), then the issuer's error,
//                                then the code (or the Implicit tokens)
//   6. exchangeCode()            back-channel code + code_verifier for tokens
//                                (RFC 6749 §4.1.3, RFC 7636 §4.5), no secret
//   7. validateIdToken()         signature with WebCrypto against the JWKS,
//                                not an access token (typ at+jwt, RFC 9068),
//                                iss/aud/azp/exp/iat/nonce (OIDC Core 3.1.3.7),
//                                at_hash (OIDC Core 3.2.2.9-3.2.2.11)
//   8. refreshTokens()           rotating refresh tokens (RFC 9700 §4.14.2)
//   9. revokeToken(),            sign-out: RFC 7009, then OIDC RP-Initiated
//      endSessionUrl()           Logout 1.0 §2
//
// Under DPoP (RFC 9449; dpop.js makes the key and the proofs), steps 6, 8 and
// 9 and callApi() send a proof with each request and retry once with the
// server's nonce when it asks (§8, §9).
//
// Everything here is a pure function of its arguments plus fetch(): no
// DOM, no storage.  app.js decides where things are kept (memory only).

import { asksForNonce, makeProof } from "./dpop.js";

/** A protocol failure to show the user: a code, a sentence and a hint. */
export class OidcError extends Error {
  constructor(error, description, hint = "", checks = null) {
    super(`${error}: ${description}`);
    this.name = "OidcError";
    this.error = error;
    this.description = description;
    this.hint = hint;
    this.checks = checks; // the ID token checks run so far, for the inspector
  }
}

// The only signature algorithm we accept for ID tokens, pinned here rather
// than taken from the token header or discovery: never "none", never HMAC
// (RFC 8725 §3.1, OIDC Core 3.1.3.7 step 7).
export const ID_TOKEN_ALGORITHMS = ["RS256"];
const RS256 = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
// A bound on what we parse: a real ID token is a few kilobytes.
const MAX_JWT_LENGTH = 8192;

// How long a call to the issuer may take (HTTP_TIMEOUT, set by app.js).
let fetchTimeoutMs = 5000;

/** Set the timeout of every call to the issuer, in seconds (HTTP_TIMEOUT). */
export function setFetchTimeout(seconds) {
  if (Number(seconds) > 0) fetchTimeoutMs = Number(seconds) * 1000;
}

// -- encoding --------------------------------------------------------------

/** base64url without padding (RFC 4648 §5, as JOSE and PKCE use it). */
export function base64UrlEncode(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decode base64url (no padding) into bytes; refuses anything else. */
export function base64UrlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new OidcError("invalid_token", "A token part is not valid base64url.");
  }
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

/** ``bytes`` random octets from the browser's CSPRNG, base64url-encoded. */
export function randomString(bytes = 32) {
  return base64UrlEncode(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

// -- 2. PKCE (RFC 7636) ----------------------------------------------------------

/**
 * A fresh code_verifier (RFC 7636 §4.1): 43-128 characters from the
 * unreserved set.  48 random octets give 64 base64url characters, 384 bits
 * of entropy, well above the RFC's 256-bit recommendation.
 */
export function generateCodeVerifier() {
  return randomString(48);
}

/** code_challenge = BASE64URL(SHA256(ASCII(code_verifier))) (RFC 7636 §4.2, S256). */
export async function codeChallengeS256(verifier) {
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) {
    throw new OidcError("invalid_request",
      "A PKCE code_verifier must be 43-128 unreserved characters (RFC 7636 §4.1).");
  }
  return base64UrlEncode(await sha256(verifier));
}

// -- HTTP --------------------------------------------------------------------------

// Every call to the issuer and the API is a CORS request without cookies:
// a public client proves nothing with cookies, and the issuer's session
// cookie has no business on a back-channel call.
async function fetchJson(url, init = {}, what = "the issuer") {
  let response;
  try {
    // A bound on every call (fetch() has none of its own): an issuer that
    // hangs must end in a clear error, not a page that waits for ever.
    response = await fetch(url, {
      credentials: "omit",
      cache: "no-store",
      signal: AbortSignal.timeout(fetchTimeoutMs),
      // Never followed (RFC 9700 §2.6): a 307 would re-send a code, a
      // verifier or a refresh token to wherever the redirect points.
      redirect: "manual",
      ...init,
      headers: { Accept: "application/json", ...(init.headers || {}) },
    });
  } catch (err) {
    if (err && err.name === "TimeoutError") {
      throw new OidcError("issuer_unreachable",
        `${what} at ${new URL(url).origin} did not answer within ${fetchTimeoutMs / 1000} s.`,
        "Try again in a moment; if it keeps happening, the issuer is down or overloaded.");
    }
    // A TypeError here is a network error or a CORS refusal; the browser
    // deliberately does not say which.
    throw new OidcError("issuer_unreachable", `Could not reach ${what} at ${new URL(url).origin}.`,
      "Check that it is running and that it allows this page's origin (CORS / Okta Trusted Origins).");
  }
  if (response.type === "opaqueredirect") {
    throw new OidcError("issuer_misconfigured", `${what} answered with a redirect, which is not followed.`,
      "Use the issuer's final URLs: the apps never follow an issuer's redirect (RFC 9700 §2.6).");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  return { status: response.status, ok: response.ok, body, headers: response.headers, type: response.type };
}

// -- 1. discovery ------------------------------------------------------------------

const metadataCache = new Map();

/**
 * The issuer's metadata (OIDC Discovery 1.0 §4).  Its ``issuer`` must equal
 * the configured issuer exactly (§4.3), or a look-alike could hand us its
 * own endpoints and keys.
 */
export async function discover(issuer) {
  if (metadataCache.has(issuer)) return metadataCache.get(issuer);
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  // fetchJson follows no redirect (RFC 9700 §2.6): the metadata comes from the configured issuer only.
  const { ok, status, body } = await fetchJson(url, {}, "the issuer's discovery document");
  if (!ok || !body || typeof body !== "object") {
    throw new OidcError("issuer_unreachable", `The discovery document answered HTTP ${status}.`,
      `Check ISSUER (${issuer}).`);
  }
  if (body.issuer !== issuer) {
    throw new OidcError("issuer_misconfigured",
      `The discovery document names issuer ${JSON.stringify(body.issuer)}, not ${JSON.stringify(issuer)}.`,
      "ISSUER must be exactly the issuer identifier the provider publishes (OIDC Discovery 1.0 §4.3).");
  }
  for (const key of ["authorization_endpoint", "token_endpoint", "jwks_uri"]) {
    if (typeof body[key] !== "string") {
      throw new OidcError("issuer_misconfigured", `The discovery document has no ${key}.`,
        "Is ISSUER an OpenID Provider?");
    }
  }
  metadataCache.set(issuer, body);
  return body;
}

// -- 3. the authorization request -----------------------------------------------------

/**
 * The URL that sends the user to the issuer.
 *
 * Code + PKCE (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core 3.1.2.1):
 * ``response_type=code`` with ``code_challenge`` and ``S256``.
 * Implicit (OIDC Core 3.2.2.1): ``response_type=id_token token``, for which
 * ``nonce`` is REQUIRED; the tokens will come back in the URL fragment.
 * Both carry a fresh ``state`` (CSRF) and ``nonce`` (replay).
 */
export function buildAuthorizationUrl(metadata,
  { clientId, redirectUri, scope, mode, state, nonce, codeChallenge }) {
  const url = new URL(metadata.authorization_endpoint);
  const params = {
    client_id: clientId,
    response_type: mode === "implicit" ? "id_token token" : "code",
    scope,
    redirect_uri: redirectUri,
    state,
    nonce,
  };
  if (mode !== "implicit") {
    params.code_challenge = codeChallenge;
    params.code_challenge_method = "S256"; // never "plain" (RFC 9700 §2.1.1)
  }
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.toString();
}

// -- 4./5. the callback ------------------------------------------------------------------

// The error codes an issuer may send (RFC 6749 Appendix A.7): printable
// ASCII without the double quote and the backslash.  Anything else is not
// shown as a code.  The bound of 64 characters is ours (the Python relying
// party uses the same): a code is a short token, not a message.
const ERROR_CODE = /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/;
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/g;

/**
 * Text from the outside world made safe to carry: no control characters, at
 * most ``limit`` characters.  It is inserted with textContent (never as
 * markup), so no escaping is needed here.
 */
function plainText(value, limit = 300) {
  const characters = Array.from(String(value ?? "").replace(CONTROL_CHARACTERS, " "));
  return characters.length > limit ? `${characters.slice(0, limit).join("")}…` : characters.join("");
}

/**
 * The parameters of ``raw`` (a query or fragment), each given exactly once.
 *
 * RFC 6749 §3.1: "Request and response parameters MUST NOT be included more
 * than once."  Two ``state`` or ``code`` values leave it open which one the
 * issuer sent, so such an answer is refused rather than read as its last
 * (or first) value.
 */
function uniqueParams(raw) {
  const entries = Array.from(new URLSearchParams(raw));
  if (new Set(entries.map(([name]) => name)).size !== entries.length) {
    throw new OidcError("invalid_request", "A parameter appears more than once in the issuer's answer.",
      "Start the sign-in again from this page; this answer was not used.");
  }
  return Object.fromEntries(entries);
}

/**
 * The authorization response's parameters.  The code flow answers in the
 * query (RFC 6749 §4.1.2); Implicit answers in the fragment (RFC 6749
 * §4.2.2, OIDC Core 3.2.2.5), which the browser never sends to a server.
 * Throws ``invalid_request`` if a parameter is repeated (RFC 6749 §3.1).
 */
export function readCallback(href, mode) {
  const url = new URL(href);
  const params = uniqueParams(mode === "implicit" ? url.hash.replace(/^#/, "") : url.search);
  // An issuer that cannot honour the fragment may still put an error in
  // the query (RFC 6749 §4.2.2.1 answers in the fragment, but not every
  // issuer does): read the query then, so that the error can be shown.
  if (mode === "implicit" && !params.error && url.searchParams.get("error")) {
    return uniqueParams(url.search);
  }
  return params;
}

/** ``state`` must be the one this tab sent (RFC 6749 §10.12, RFC 9700 §4.7), compared exactly. */
function checkState(params, pending) {
  if (!params.state) {
    throw new OidcError("state_missing", "The issuer's answer carries no state.",
      "Start the sign-in again from this page.");
  }
  if (!pending || !pending.state) {
    throw new OidcError("state_missing",
      "No sign-in was in progress in this tab, so this answer was not started here.",
      "Nothing was kept. Start the sign-in from this page.");
  }
  if (params.state !== pending.state) {
    throw new OidcError("state_mismatch",
      "The state in the answer is not the one this tab sent, so the answer was not started here.",
      "Nothing was exchanged and no token was kept. Start the sign-in again from this page.");
  }
}

/**
 * ``iss`` (RFC 9207 §2.4) must name our issuer exactly: the mix-up defence
 * (RFC 9700 §4.4).  A client that receives ``iss`` MUST compare it, whether
 * or not the metadata announces it (§3); when the metadata does announce it,
 * an answer without ``iss`` MUST be rejected.  Error answers included.
 */
function checkIssuer(params, metadata) {
  const issPresent = Object.hasOwn(params, "iss");
  if (!issPresent && metadata.authorization_response_iss_parameter_supported === true) {
    throw new OidcError("iss_mismatch",
      "The issuer promises an iss parameter on the callback (RFC 9207), but it is missing.",
      "Possible mix-up attack (RFC 9207); nothing was exchanged.");
  }
  if (issPresent && params.iss !== metadata.issuer) {
    throw new OidcError("iss_mismatch",
      `The answer came from ${JSON.stringify(plainText(params.iss, 200))}, not from ${metadata.issuer}.`,
      "Possible mix-up attack (RFC 9207); nothing was exchanged.");
  }
}

/**
 * The issuer's refusal (RFC 6749 §4.1.2.1, §4.2.2.1): the user said no, or
 * the login failed.  Shown only once the answer is known to be ours, as a
 * code from the RFC 6749 A.7 character set and a bounded plain-text
 * description.
 */
function checkIssuerError(params) {
  if (!params.error) return;
  const error = ERROR_CODE.test(params.error) ? params.error : "authorization_error";
  throw new OidcError(error, plainText(params.error_description) || "The issuer refused the sign-in.",
    error === "access_denied"
      ? "You (or a policy) declined the request; sign in again when ready."
      : "See the issuer's log for details, then try again.");
}

/**
 * Check that the authorization response answers the request this tab made,
 * and return what it carries: the code (code flow) or the fragment's tokens
 * (Implicit).
 *
 * In this order, because each check decides whether the next may trust
 * anything in the response (the same order as the Python relying party):
 *
 * 1. ``state`` must be the one this tab sent (RFC 6749 §10.12, RFC 9700
 *    §4.7).  It comes before the ``error``: an answer that is not ours is
 *    refused without repeating any of its text.  Otherwise anyone could
 *    link a user to our callback with ``?error=...&error_description=Call
 *    this number`` and have that sentence shown on our origin.
 * 2. ``iss`` must be our issuer (RFC 9207 §2.4), in error answers too.
 * 3. Only then is the issuer's ``error`` shown, as plain text.
 * 4. The sign-in must be younger than ``loginTimeout`` seconds (when given),
 *    and the answer must carry a ``code`` (RFC 6749 §4.1.2) or, in the
 *    Implicit flow, the tokens (OIDC Core 3.2.2.5).
 *
 * Repeated parameters were refused before, by readCallback (RFC 6749 §3.1).
 */
export function checkAuthorizationResponse(params, pending, metadata,
  { loginTimeout = null, now = Date.now() } = {}) {
  checkState(params, pending);
  checkIssuer(params, metadata);
  checkIssuerError(params);
  if (loginTimeout !== null && !(now - pending.createdAt <= loginTimeout * 1000)) {
    throw new OidcError("login_expired", "The sign-in took too long.", "Start it again.");
  }
  if (pending.mode === "implicit") {
    if (!params.id_token || !params.access_token || !/^bearer$/i.test(params.token_type || "")) {
      throw new OidcError("invalid_request",
        "The fragment lacks an id_token, an access_token or token_type=Bearer.");
    }
    return params;
  }
  if (!params.code) throw new OidcError("invalid_request", "The issuer's answer has no code.");
  return params.code;
}

// -- 6. the token endpoint -------------------------------------------------------------

/**
 * POST a form to one of the issuer's endpoints.  With ``dpop`` ({key,
 * nonces, onProof}) the request carries a fresh proof (RFC 9449 §4), and an
 * answer asking for the issuer's nonce (``400 use_dpop_nonce`` with
 * ``DPoP-Nonce``, §8) is retried once, with it.
 */
async function postForm(url, form, what, dpop = null) {
  const send = async () => {
    const headers = { "Content-Type": "application/x-www-form-urlencoded" };
    if (dpop) {
      const made = await makeProof(dpop.key, { method: "POST", url, nonce: dpop.nonces.get(url) });
      if (dpop.onProof) dpop.onProof(made);
      headers.DPoP = made.proof;
    }
    const answer = await fetchJson(url, { method: "POST", headers, body: new URLSearchParams(form) }, what);
    // Any answer may carry the issuer's next nonce (§8.2).
    if (dpop) dpop.nonces.remember(url, answer.headers);
    return answer;
  };
  const answer = await send();
  return dpop && asksForNonce(answer.status, answer.headers, answer.body) ? send() : answer;
}

async function tokenRequest(metadata, form, dpop = null) {
  const { ok, status, body } = await postForm(metadata.token_endpoint, form, "the token endpoint", dpop);
  if (!ok) {
    const error = (body && body.error) || "token_error";
    const description = (body && body.error_description) || `The token endpoint answered HTTP ${status}.`;
    throw new OidcError(error, description,
      error === "invalid_grant"
        ? "The code or refresh token was used, expired or revoked; sign in again."
        : error === "invalid_dpop_proof" || error === "use_dpop_nonce"
          ? "The issuer refused this page's DPoP proof (RFC 9449 §5); reload the page and sign in again."
          : "Check the client's registration at the issuer.");
  }
  // RFC 9449 §5: a bound token says token_type DPoP; an issuer may still
  // answer Bearer to a proof (it did not bind the token), never DPoP without one.
  const types = dpop ? /^(bearer|dpop)$/i : /^bearer$/i;
  if (!body || typeof body.access_token !== "string" || !types.test(body.token_type || "")) {
    throw new OidcError("token_error", dpop
      ? "The token response has no Bearer or DPoP access_token (RFC 6749 §5.1, RFC 9449 §5)."
      : "The token response has no Bearer access_token (RFC 6749 §5.1).");
  }
  return body;
}

/**
 * Exchange the code for tokens (RFC 6749 §4.1.3).  A public client sends its
 * ``client_id`` and no secret; the ``code_verifier`` proves that whoever
 * redeems the code is whoever asked for it (RFC 7636 §4.5), so a code
 * stolen on the way back is useless.
 */
export function exchangeCode(metadata, { clientId, redirectUri, code, codeVerifier, dpop = null }) {
  return tokenRequest(metadata, {
    grant_type: "authorization_code",
    client_id: clientId,
    code,
    redirect_uri: redirectUri,
    code_verifier: codeVerifier,
  }, dpop);
}

/**
 * Use the refresh token (RFC 6749 §6).  Issuers must rotate refresh
 * tokens for public clients (RFC 9700 §4.14.2): each answer carries a new
 * one and the old one stops working, so a stolen copy is detected on reuse.
 */
export function refreshTokens(metadata, { clientId, refreshToken, dpop = null }) {
  // Under DPoP the issuer binds a public client's refresh token to our key
  // too (RFC 9449 §5): the refresh needs a proof from the same key.
  return tokenRequest(metadata, {
    grant_type: "refresh_token",
    client_id: clientId,
    refresh_token: refreshToken,
  }, dpop);
}

// -- 7. the ID token -------------------------------------------------------------------------

/**
 * JSON.parse, refusing numbers that are not finite.  JSON has no NaN or
 * Infinity (RFC 8259 §6), and JSON.parse refuses those words, but it turns
 * ``1e400`` into Infinity: an ``exp`` that would never expire.
 */
function parseJson(text) {
  return JSON.parse(text, (key, value) => {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new SyntaxError("a number out of range (RFC 8259 §6)");
    }
    return value;
  });
}

/** Split a JWS into its parts, for checking or for display (no verification). */
export function decodeJwt(token) {
  if (typeof token !== "string" || token.length > MAX_JWT_LENGTH) {
    throw new OidcError("invalid_id_token", "The ID token is missing or too large.");
  }
  const parts = token.split(".");
  if (parts.length !== 3) {
    throw new OidcError("invalid_id_token", "The ID token is not a signed JWT (three parts).");
  }
  let header, claims;
  try {
    header = parseJson(new TextDecoder().decode(base64UrlDecode(parts[0])));
    claims = parseJson(new TextDecoder().decode(base64UrlDecode(parts[1])));
  } catch (err) {
    throw new OidcError("invalid_id_token", "The ID token's header or claims are not JSON.");
  }
  if (!header || typeof header !== "object" || !claims || typeof claims !== "object") {
    throw new OidcError("invalid_id_token", "The ID token's header or claims are not JSON objects.");
  }
  return { header, claims, signingInput: `${parts[0]}.${parts[1]}`, signature: parts[2] };
}

// jwks_uri -> {keys, fetchedAt, missed}.  ``missed`` is set by the first
// unknown kid after a regular fetch (and by a refetch an unknown kid caused).
const jwksCache = new Map();
const JWKS_REFETCH_COOLDOWN_MS = 30_000;
// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used".
const MIN_RSA_BITS = 2048;

async function fetchJwks(jwksUri, { missed = false } = {}) {
  // A redirect is not followed (RFC 9700 §2.6): keys come only from the jwks_uri discovery named.
  const { ok, status, body } = await fetchJson(jwksUri, {}, "the issuer's JWKS");
  if (!ok || !body || !Array.isArray(body.keys)) {
    throw new OidcError("issuer_unreachable", `The JWKS endpoint answered HTTP ${status}.`);
  }
  const entry = { keys: body.keys, fetchedAt: Date.now(), missed };
  jwksCache.set(jwksUri, entry);
  return entry;
}

/** The bit length of an RSA JWK's modulus ``n`` (RFC 7518 §6.3.1.1); 0 when it is not base64url. */
function rsaModulusBits(n) {
  let bytes;
  try {
    bytes = base64UrlDecode(n);
  } catch (err) {
    return 0;
  }
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start += 1;
  if (start === bytes.length) return 0;
  return (bytes.length - start - 1) * 8 + (32 - Math.clz32(bytes[start]));
}

function findKey(keys, kid) {
  return keys.find((key) => {
    if (key.kty !== "RSA" || (key.use && key.use !== "sig") || (key.alg && key.alg !== "RS256") ||
        (kid !== undefined && key.kid !== kid)) return false;
    if (rsaModulusBits(key.n) < MIN_RSA_BITS) {
      console.warn(`ignoring JWK kid=${JSON.stringify(key.kid)}: an RSA key under ${MIN_RSA_BITS} bits`);
      return false;
    }
    return true;
  });
}

/**
 * The issuer's key for ``kid``, fetching the JWKS on first use.  An unknown
 * ``kid`` is what a key rotation looks like (OIDC Core 10.1.1), and an
 * issuer may sign with its new key as soon as it publishes it: so the first
 * unknown kid after a regular fetch refetches at once (unless that fetch
 * was made for this very token), and after that at most once per
 * cool-down, so that made-up kids cannot flood the issuer.  The same rule
 * as common/keyset.py.
 */
async function keyFor(jwksUri, kid) {
  let entry = jwksCache.get(jwksUri);
  const fresh = !entry;
  if (fresh) entry = await fetchJwks(jwksUri);
  const jwk = findKey(entry.keys, kid);
  if (jwk) return jwk;
  const firstMiss = !entry.missed;
  entry.missed = true;
  const mayRefetch = firstMiss ? !fresh : Date.now() - entry.fetchedAt >= JWKS_REFETCH_COOLDOWN_MS;
  if (!mayRefetch) return undefined;
  return findKey((await fetchJwks(jwksUri, { missed: true })).keys, kid);
}

/**
 * Verify the JWS signature with WebCrypto against the issuer's JWKS.
 *
 * Required for the Implicit flow (OIDC Core 3.2.2.11 step 1 via 3.1.3.7
 * step 6: the token came through the browser, not straight from the issuer).
 * The algorithm is pinned; ``jku``/``x5u``/``jwk`` headers are ignored, so
 * the token cannot name its own key.  An unknown ``kid`` may trigger one
 * JWKS refetch (the issuer may have rotated keys): see keyFor.  RSA keys
 * under 2048 bits are never used (RFC 7518 §3.3).
 */
export async function verifyJwtSignature(token, jwksUri) {
  const { header, signingInput, signature } = decodeJwt(token);
  if (!ID_TOKEN_ALGORITHMS.includes(header.alg)) {
    throw new OidcError("invalid_id_token",
      `The ID token is signed with ${JSON.stringify(header.alg)}; only RS256 is accepted.`);
  }
  const jwk = await keyFor(jwksUri, header.kid);
  if (!jwk) {
    throw new OidcError("invalid_id_token",
      `No key with kid ${JSON.stringify(header.kid)} in the issuer's JWKS.`);
  }
  let key;
  try {
    const publicJwk = { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS256", ext: true };
    key = await crypto.subtle.importKey("jwk", publicJwk, RS256, false, ["verify"]);
  } catch (err) {
    throw new OidcError("invalid_id_token", "The issuer's key could not be imported.");
  }
  const valid = await crypto.subtle.verify(RS256, key, base64UrlDecode(signature),
    new TextEncoder().encode(signingInput));
  if (!valid) {
    throw new OidcError("invalid_signature",
      "The ID token's signature does not verify with the issuer's key: it was forged or altered.",
      "No token was kept. Sign in again.");
  }
  return jwk.kid;
}

/**
 * at_hash: base64url of the left half of SHA-256(access_token) for RS256
 * (OIDC Core 3.2.2.9).  It ties the access token in the fragment to the
 * signed ID token, so nobody can swap in another access token.
 */
export async function atHash(accessToken) {
  return base64UrlEncode((await sha256(accessToken)).slice(0, 16));
}

/** The checks run on one ID token, kept for the inspector; ``fail`` throws at the first failure. */
function idTokenChecks() {
  const checks = [];
  return {
    checks,
    pass: (check, detail) => checks.push({ check, ok: true, detail }),
    fail: (check, detail, error = "invalid_id_token") => {
      checks.push({ check, ok: false, detail });
      throw new OidcError(error, detail, "No token was kept. Sign in again.", checks);
    },
  };
}

/** ``aud`` contains this client; with several audiences, ``azp`` names it (OIDC Core 3.1.3.7 steps 3-5). */
function checkAudience(claims, clientId, { pass, fail }) {
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(clientId)) {
    fail("aud", `aud ${JSON.stringify(claims.aud)} does not contain this client (${clientId})`);
  }
  pass("aud", `contains ${clientId}`);
  if (audiences.length > 1 && !claims.azp) fail("azp", "several audiences but no azp");
  if (claims.azp !== undefined && claims.azp !== clientId) {
    fail("azp", `azp is ${JSON.stringify(claims.azp)}, not this client`);
  }
  if (claims.azp !== undefined) pass("azp", "names this client");
}

/** ``exp`` not passed, ``iat`` not in the future, within ``leeway`` s (OIDC Core 3.1.3.7 steps 9-10). */
function checkTimes(claims, { leeway, now }, { pass, fail }) {
  // Number.isFinite: NaN and Infinity compare false with every time (RFC 8259 §6 has neither).
  if (!Number.isFinite(claims.exp)) fail("exp", "exp is missing or not a finite number");
  if (now > claims.exp + leeway) fail("exp", "the ID token has expired");
  pass("exp", `valid until ${isoTime(claims.exp)}`);
  if (!Number.isFinite(claims.iat) || claims.iat > now + leeway) {
    fail("iat", "iat is missing or in the future");
  }
  pass("iat", `issued ${isoTime(claims.iat)}`);
}

/** A NumericDate (RFC 7519 §2) for people; beyond what a Date can hold, the number itself. */
function isoTime(seconds) {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? `${seconds} s after 1970` : date.toISOString();
}

/** An access token (``typ: at+jwt``, RFC 9068 §2.1) is never taken for an ID token (RFC 8725 §3.11). */
function checkType(header, { fail }) {
  if (header.typ === undefined) return;
  if (typeof header.typ !== "string") fail("typ", "the ID token's type (typ) is not a string");
  if (header.typ.toLowerCase().replace(/^application\//, "") === "at+jwt") {
    fail("typ",
      `typ ${JSON.stringify(header.typ)} says this is an access token (RFC 9068 §2.1), not an ID token`);
  }
}

/**
 * What ties the token to this sign-in: a subject, then the ``nonce`` this tab
 * sent (OIDC Core 3.1.3.7 step 11) or, on refresh, the same ``sub`` as before
 * (OIDC Core 12.2), then ``at_hash`` for the access token (OIDC Core 3.2.2.9).
 */
async function checkBinding(claims, { nonce, previousSub = null, accessToken = null, atHashRequired = false },
  { pass, fail }) {
  if (typeof claims.sub !== "string" || !claims.sub) fail("sub", "no subject");
  if (nonce !== null) {
    if (claims.nonce !== nonce) {
      fail("nonce", "the nonce is not the one this tab sent: a replayed or injected token", "nonce_mismatch");
    }
    pass("nonce", "matches the one sent with the request");
  } else if (previousSub !== null) {
    if (claims.sub !== previousSub) fail("sub", "a refreshed ID token names another user (OIDC Core 12.2)");
    pass("sub", "same user as at sign-in (OIDC Core 12.2)");
  }
  if (accessToken !== null && (claims.at_hash !== undefined || atHashRequired)) {
    if (claims.at_hash === undefined) {
      fail("at_hash", "missing, but REQUIRED for response_type=id_token token (OIDC Core 3.2.2.10)");
    }
    if (claims.at_hash !== await atHash(accessToken)) {
      fail("at_hash", "does not match the access token: it was swapped");
    }
    pass("at_hash", "matches the access token (OIDC Core 3.2.2.9)");
  }
}

/**
 * Validate an ID token (OIDC Core 3.1.3.7; for Implicit 3.2.2.11).
 *
 * ``options``: ``{jwksUri, issuer, clientId, nonce, accessToken, atHashRequired,
 * previousSub, leeway, now}``.  Returns ``{claims, checks}``; throws an
 * OidcError (with ``checks``) on the first failure.  ``nonce`` is null when
 * refreshing (OIDC Core 12.2), and ``previousSub`` then requires the same user.
 */
export async function validateIdToken(idToken, options) {
  const { jwksUri, issuer, clientId, leeway = 60, now = Date.now() / 1000 } = options;
  const record = idTokenChecks();
  let decoded;
  try {
    decoded = decodeJwt(idToken);
  } catch (err) {
    record.fail("format", err.description);
  }
  const { header, claims } = decoded;
  try {
    const kid = await verifyJwtSignature(idToken, jwksUri);
    record.pass("signature", `RS256, verified with WebCrypto against key ${kid} from the JWKS`);
  } catch (err) {
    record.fail("signature", err.description, err.error);
  }
  checkType(header, record);
  if (claims.iss !== issuer) record.fail("iss", `iss is ${JSON.stringify(claims.iss)}, expected ${issuer}`);
  record.pass("iss", "equals the configured issuer");
  checkAudience(claims, clientId, record);
  checkTimes(claims, { leeway, now }, record);
  await checkBinding(claims, options, record);
  return { claims, checks: record.checks };
}

// -- the resource server ----------------------------------------------------------------------

/**
 * Call the API with the access token: ``Authorization: Bearer`` (RFC 6750
 * §2.1), or for a DPoP-bound token ``Authorization: DPoP`` with a proof that
 * carries the token's hash (RFC 9449 §7.1), retried once with the API's
 * nonce when it asks (401 ``use_dpop_nonce``, §9).
 * A cross-origin request: the API must allow this origin (CORS).
 */
export async function callApi(apiUrl, accessToken, { tokenType = "Bearer", dpop = null } = {}) {
  const bound = dpop && /^dpop$/i.test(tokenType);
  const send = async () => {
    const scheme = bound ? "DPoP" : "Bearer";
    const headers = { Accept: "application/json", Authorization: `${scheme} ${accessToken}` };
    if (bound) {
      const made = await makeProof(dpop.key,
        { method: "GET", url: apiUrl, accessToken, nonce: dpop.nonces.get(apiUrl) });
      if (dpop.onProof) dpop.onProof(made);
      headers.DPoP = made.proof;
    }
    let response;
    try {
      response = await fetch(apiUrl, {
        credentials: "omit",
        cache: "no-store",
        redirect: "manual", // the access token goes to API_URL only, never where a redirect points
        headers,
      });
    } catch (err) {
      throw new OidcError("api_unreachable", `Could not call ${apiUrl}.`,
        "Is the resource server running, and does its CORS policy allow this page's origin?");
    }
    if (response.type === "opaqueredirect") {
      throw new OidcError("api_unreachable",
        `The API at ${apiUrl} answered with a redirect, which is not followed.`,
        "Set API_URL to the API's final address.");
    }
    if (bound) dpop.nonces.remember(apiUrl, response.headers);
    return response;
  };
  const response = await send();
  if (bound && asksForNonce(response.status, response.headers, null)) return readApiAnswer(await send());
  return readApiAnswer(response);
}

/**
 * An API's answer as the page shows it: status, JSON body (or null) and the
 * RFC 6750 §3 challenge.  Shared by the browser-only modes and the BFF's
 * proxied calls.
 */
export async function readApiAnswer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  return {
    ok: response.ok,
    status: response.status,
    body,
    wwwAuthenticate: response.headers.get("WWW-Authenticate"),
  };
}

// -- 9. sign-out ---------------------------------------------------------------------------------

/** Revoke a token at the issuer (RFC 7009 §2.1), best effort: returns true on 200. */
export async function revokeToken(metadata,
  { clientId, token, tokenTypeHint = "refresh_token", dpop = null }) {
  if (!metadata.revocation_endpoint || !token) return false;
  try {
    // A DPoP-bound refresh token is revoked with a proof from its key (RFC 9449 §5).
    const { ok } = await postForm(metadata.revocation_endpoint,
      { token, token_type_hint: tokenTypeHint, client_id: clientId }, "the revocation endpoint", dpop);
    return ok;
  } catch (err) {
    return false;
  }
}

/**
 * The RP-Initiated Logout URL (OpenID Connect RP-Initiated Logout 1.0 §2):
 * ``id_token_hint`` says whose session to end, ``post_logout_redirect_uri``
 * (registered) where to come back, ``state`` lets us recognise the return.
 * Null when the issuer has no end_session_endpoint.
 */
export function endSessionUrl(metadata, { idTokenHint, clientId, postLogoutRedirectUri, state }) {
  if (!metadata.end_session_endpoint) return null;
  const url = new URL(metadata.end_session_endpoint);
  if (idTokenHint) url.searchParams.set("id_token_hint", idTokenHint);
  url.searchParams.set("client_id", clientId);
  url.searchParams.set("post_logout_redirect_uri", postLogoutRedirectUri);
  url.searchParams.set("state", state);
  return url.toString();
}
