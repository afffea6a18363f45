// app.js — the single-page app: wires the page to the protocol steps in
// oidc.js and keeps the tokens; in the Backend-for-Frontend mode, to this
// app's server through bff.js, and then it keeps no token at all.
//
// Where things live, and why:
//   * BFF mode: every token on this app's server, in its Redis session; the
//     browser holds an HttpOnly session cookie that no script can read, and
//     `session` below holds only the claims /bff/user answered.
//   * tokens (the other two modes): in the `session` variable below, i.e. in this tab's memory
//     only.  Never localStorage or sessionStorage, where any script
//     running on this origin (an XSS payload, a compromised dependency)
//     could read them at leisure, and where they would outlive the tab.
//     A reload therefore signs you out of this app; in the code flow the
//     rotating refresh token keeps you signed in while the page is open.
//   * the PKCE code_verifier, state and nonce of a sign-in in progress:
//     in sessionStorage, because the page unloads while the user is at the
//     issuer.  The callback removes them before it does anything else, so
//     they are single-use (RFC 9700 §2.1.1, §4.7.1).
//   * the chosen flow ("bff", "pkce" or "implicit"): in sessionStorage, so
//     that a reload keeps it.  A word, never a secret.
//   * the DPoP key pair (PKCE mode under DPOP, RFC 9449): in `session` with
//     the tokens it binds, made on the callback page right before the code
//     exchange, with extractable: false: the browser lets no script read the
//     private key, so a token that leaks is useless anywhere else (§2).
//     A reload drops it with the tokens.

import * as oidc from "./oidc.js";
import * as bff from "./bff.js";
import * as dpop from "./dpop.js";
import { FlowInspector, shorten, urlParams } from "./inspector.js";

const PENDING_KEY = "spa_app.pending_authorization";
const LOGOUT_KEY = "spa_app.pending_logout";
const MODE_KEY = "spa_app.mode";
const MODES = ["bff", "pkce", "implicit"];
const MODE_NAMES = {
  bff: "Backend for Frontend", pkce: "Authorization Code + PKCE", implicit: "Implicit, legacy",
};
const $ = (id) => document.getElementById(id);

const inspector = new FlowInspector($("inspector"));
let config = null;
// {mode, accessToken, tokenType, idToken, refreshToken, expiresAt, claims, scope, dpopKey};
// BFF: {mode, claims}
let session = null;
let refreshTimer = null;
// Bumped whenever the session is dropped, so that an answer still on the
// wire (a refresh) can tell that the session it was for is gone.
let sessionGeneration = 0;
let refreshInFlight = null; // the one refresh under way, if any (see refresh())
// The latest DPoP-Nonce of each server (RFC 9449 §8, §9): not secrets, kept for the page's life.
const dpopNonces = new dpop.NonceBook();

// -- small UI helpers ------------------------------------------------------------------

function selectedMode() {
  return MODES.find((mode) => $(`mode-${mode}`).checked) || "pkce";
}

const SIGNED_OUT_TEXT = {
  bff: "nothing but an HttpOnly session cookie: this app's server redeems the code and keeps the tokens",
  pkce: "a one-time code to exchange with your PKCE verifier",
  implicit: "tokens in the URL fragment (Implicit, legacy)",
};

const INSPECTOR_HELP = {
  bff: "Each protocol step this app's server performed for your session, newest last, as the server "
    + "recorded it (GET /bff/inspector): requests (secrets redacted), responses (tokens shortened) and every "
    + "JWT decoded with the checks it passed. The tokens themselves never reach this page.",
  browser: "Each protocol step this page performed, newest last: requests (secrets redacted), responses "
    + "(tokens shortened) and every JWT decoded with the checks it passed. Kept in memory, like the tokens.",
};

function selectMode(mode) {
  const chosen = MODES.includes(mode) ? mode : "pkce";
  $(`mode-${chosen}`).checked = true;
  sessionStorage.setItem(MODE_KEY, chosen); // survives a reload
  $("signed-out-mode").textContent = SIGNED_OUT_TEXT[chosen];
  $("inspector-help").textContent = INSPECTOR_HELP[chosen === "bff" ? "bff" : "browser"];
}

function showError(err) {
  const error = err instanceof oidc.OidcError ? err
    : new oidc.OidcError("client_error", "Something unexpected went wrong in the page.",
      "Reload and try again.");
  if (!(err instanceof oidc.OidcError)) console.error(err);
  $("spa-error-code").textContent = error.error;
  $("spa-error-description").textContent = error.description;
  $("spa-error-hint").textContent = error.hint ? `Hint: ${error.hint}` : "";
  $("spa-error").hidden = false;
  reveal($("spa-error"));
}

/** Bring what a click produced into view (the button may be far from it on a small screen). */
function reveal(node) {
  node.scrollIntoView({ block: "nearest" });
  // Scrolling is in whole pixels, layout is not: a top edge left a fraction above the window goes in.
  const top = node.getBoundingClientRect().top;
  if (top < 0) window.scrollBy(0, Math.floor(top));
}

function clearMessages() {
  $("spa-error").hidden = true;
  $("spa-notice").hidden = true;
}

function notice(text) {
  $("spa-notice").textContent = text;
  $("spa-notice").hidden = false;
  reveal($("spa-notice"));
}

function render() {
  const signedIn = session !== null;
  $("signed-out").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  for (const mode of MODES) $(`mode-${mode}`).disabled = signedIn;
  document.body.dataset.signedIn = String(signedIn); // spa.css folds the flow explanations away
  $("nav-status").textContent = signedIn ? `Signed in (${MODE_NAMES[session.mode]})` : "Signed out";
  if (!signedIn) {
    $("profile-rows").replaceChildren();
    $("claims").textContent = "";
    $("api-result").hidden = true;
    $("api-result").replaceChildren();
    return;
  }
  const rows = [["Name", session.claims.name], ["Email", session.claims.email],
    ["Username", session.claims.preferred_username], ["Subject (sub)", session.claims.sub],
    ["Issuer (iss)", session.claims.iss]];
  $("profile-rows").replaceChildren(...rows.filter(([, value]) => value !== undefined).map(profileRow));
  $("claims").textContent = JSON.stringify(session.claims, null, 2);
  $("claims-summary").textContent = session.mode === "bff"
    ? "All claims the server answered (GET /bff/user)" : "All ID token claims";
  $("refresh-tokens").hidden = session.mode === "bff" || !session.refreshToken;
  if (session.mode === "bff") {
    $("session-status").textContent = "Your tokens are on this app's server, in its session store; this page "
      + "holds only an HttpOnly session cookie it cannot read. The server renews the access token when a call "
      + "needs it.";
    return;
  }
  $("dpop-status").hidden = !session.dpopKey;
  $("dpop-status").textContent = session.dpopKey
    ? `Sender-constrained (DPoP, RFC 9449): the tokens work only with proofs signed by this tab's key `
      + `(thumbprint ${session.dpopKey.thumbprint}), whose private half the browser will not let any script `
      + "export."
    : "";
  const minutes = Math.max(0, Math.round((session.expiresAt - Date.now()) / 60000));
  $("session-status").textContent = session.refreshToken
    ? `Access token valid for about ${minutes} min; `
      + "a rotating refresh token renews it while this page is open."
    : `Access token valid for about ${minutes} min; `
      + "no refresh token (Implicit cannot have one), so you sign in again when it expires.";
}

/** One row of the profile table, as DOM nodes and text (never markup). */
function profileRow([label, value]) {
  const row = document.createElement("tr");
  const th = document.createElement("th");
  const td = document.createElement("td");
  th.textContent = label;
  td.textContent = String(value);
  row.append(th, td);
  return row;
}

/** Forget every token (memory only, so this is all it takes). */
function dropSession() {
  session = null;
  sessionGeneration += 1;
  refreshInFlight = null;
  clearTimeout(refreshTimer);
  refreshTimer = null;
  render();
}

function takeFromSessionStorage(key) {
  const raw = sessionStorage.getItem(key);
  sessionStorage.removeItem(key); // single use, whatever happens next
  try {
    return raw ? JSON.parse(raw) : null;
  } catch (err) {
    return null;
  }
}

// -- DPoP (RFC 9449) ---------------------------------------------------------------------------

/** Whether a sign-in in ``mode`` binds its tokens to a key (DPOP and the issuer's metadata). */
function wantsDpop(mode, metadata) {
  if (mode !== "pkce") return false; // Implicit has no token request to bind at: Bearer only
  try {
    return dpop.useDpop(config.dpop, metadata);
  } catch (err) {
    throw new oidc.OidcError(err.error, err.description, err.hint);
  }
}

/** What oidc.js needs to sign with ``key`` (null: no DPoP); each proof made is added to ``proofs``. */
function dpopContext(key, proofs) {
  return key ? { key, nonces: dpopNonces, onProof: (made) => proofs.push(made) } : null;
}

/** The proofs one step sent, for the inspector: each decoded; ``checks`` go with the last one. */
function proofParts(proofs, checks = []) {
  return proofs.map((made, index) => ({
    label: index ? "DPoP proof (the retry, with the server's nonce)" : "DPoP proof",
    token: made.proof,
    checks: index === proofs.length - 1 ? checks : [],
  }));
}

/** Why a step carried proofs, in one sentence for the inspector. */
function proofNote(proofs) {
  if (!proofs.length) return "";
  return proofs.length > 1
    ? " The server asked for its nonce (use_dpop_nonce, RFC 9449 §8-9); the retry carried it."
    : " The request carried a DPoP proof signed by this tab's key (RFC 9449 §4).";
}

// -- sign-in ---------------------------------------------------------------------------------

/**
 * Start a sign-in: fresh state and nonce for every attempt, plus a fresh
 * PKCE verifier in the code flow (RFC 7636 §4.1), then off to the issuer.
 */
async function signIn() {
  clearMessages();
  // The redirect URI is fixed to SPA_BASE_URL; sessionStorage is per origin,
  // so start from that origin or the callback would not find the state.
  // The move carries the chosen flow and the click itself: the page there
  // starts the sign-in at once (see takeCarriedIntent).
  const home = new URL(config.redirect_uri).origin;
  const mode = selectedMode();
  if (mode === "bff") {
    // A top-level navigation, not a fetch: the BFF sends the browser on to
    // the issuer, and the session cookie it sets comes back to SPA_BASE_URL's origin.
    window.location.assign(bff.loginUrl(home, "/?mode=bff"));
    return;
  }
  if (window.location.origin !== home) {
    window.location.assign(`${home}/?${new URLSearchParams({ mode, signin: "1" })}`);
    return;
  }
  const metadata = await oidc.discover(config.issuer);
  inspector.clear();
  inspector.step("Discovery",
    "Read the issuer's metadata (OIDC Discovery 1.0 §4); its issuer equals ISSUER exactly.", {
      request: { method: "GET", url: `${config.issuer}/.well-known/openid-configuration`, params: {} },
      response: { status: 200, body: {
        issuer: metadata.issuer,
        authorization_endpoint: metadata.authorization_endpoint,
        token_endpoint: metadata.token_endpoint,
        jwks_uri: metadata.jwks_uri,
        end_session_endpoint: metadata.end_session_endpoint,
      } },
    });

  // DPOP=on with an issuer that cannot: say so now, not after the user signed in there.
  wantsDpop(mode, metadata);
  const pending = { mode, state: oidc.randomString(), nonce: oidc.randomString(), createdAt: Date.now() };
  let codeChallenge = null;
  if (mode === "pkce") {
    pending.codeVerifier = oidc.generateCodeVerifier();
    codeChallenge = await oidc.codeChallengeS256(pending.codeVerifier);
  }
  const url = oidc.buildAuthorizationUrl(metadata, {
    clientId: config.client_id, redirectUri: config.redirect_uri, scope: config.scopes[mode],
    mode, state: pending.state, nonce: pending.nonce, codeChallenge,
  });
  inspector.step(
    mode === "pkce" ? "Authorization request (code + PKCE)" : "Authorization request (Implicit, legacy)",
    mode === "pkce"
      ? "Send the browser to the issuer with response_type=code, a fresh state (CSRF) and nonce (replay), "
        + "and the S256 hash of a new code_verifier (RFC 7636 §4.3). The verifier itself stays in this tab."
      : "Send the browser to the issuer with response_type=id_token token and a fresh state and nonce "
        + "(OIDC Core 3.2.2.1). The tokens will come back in the URL fragment.",
    { request: { method: "GET", url: metadata.authorization_endpoint, params: urlParams(url) } });
  pending.steps = inspector.toList();
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  window.location.assign(url);
}

/**
 * Complete a sign-in on /login/callback.
 *
 * First, before any network call: take the pending request out of
 * sessionStorage and wipe the code/state (or the fragment's tokens) from
 * the address bar and from history, so they cannot leak through history,
 * bookmarks, screenshots or a Referer header (RFC 9700 §4.2, §4.3).
 * Then the answer's checks, in the order oidc.js gives them: repeated
 * parameters (RFC 6749 §3.1), state, iss (RFC 9207), the issuer's error,
 * the code; and only then the token request.
 */
async function completeSignIn() {
  const pending = takeFromSessionStorage(PENDING_KEY);
  const href = window.location.href;
  window.history.replaceState(null, "", "/");
  dropSession();
  if (pending) {
    selectMode(pending.mode);
    inspector.restore(pending.steps);
  }
  const params = oidc.readCallback(href, pending ? pending.mode : "pkce");
  if (!pending) {
    throw new oidc.OidcError("state_missing",
      "No sign-in was in progress in this tab, so this answer was not started here.",
      "Nothing was kept. Start the sign-in from this page.");
  }
  const metadata = await oidc.discover(config.issuer);
  let answer;
  try {
    answer = oidc.checkAuthorizationResponse(params, pending, metadata,
      { loginTimeout: config.login_timeout });
  } catch (err) {
    // A refused answer may be anyone's (RFC 6749 §10.12): its values, such
    // as a forged error_description, are not put on this page.
    const withheld = Object.fromEntries(Object.keys(params).map((name) => [name, "(not shown)"]));
    recordCallback(pending.mode, withheld);
    inspector.step("Authorization response refused", err.description, { ok: false });
    throw err;
  }
  recordCallback(pending.mode, params);
  inspector.step("State checked",
    "The state matches the one this tab sent: the answer belongs to this sign-in (RFC 6749 §10.12). "
      + "Then iss named our issuer (RFC 9207), and the answer carried no error.");
  // Code flow: the answer is the code, to redeem (under DPoP with a new key,
  // made here, in memory, right before the token request that binds it);
  // Implicit: the answer is the tokens.
  const dpopKey = wantsDpop(pending.mode, metadata) ? await dpop.generateKey() : null;
  const tokens = pending.mode === "pkce" ? await redeemCode(metadata, answer, pending, dpopKey) : answer;
  await acceptTokens(tokens, { mode: pending.mode, nonce: pending.nonce, metadata, dpopKey });
}

/** The callback step in the inspector: what came back, and where. */
function recordCallback(mode, params) {
  inspector.step("Callback", mode === "pkce"
    ? "Back from the issuer with a code and state in the query (RFC 6749 §4.1.2). "
      + "Removed from the address bar and history at once."
    : "Back from the issuer with the tokens in the URL fragment (OIDC Core 3.2.2.5). "
      + "The fragment was wiped from the address bar and history at once.",
  { request: { method: "GET", url: config.redirect_uri + (mode === "pkce" ? "?…" : "#…"), params } });
}

/**
 * Exchange the code for tokens, with the PKCE code_verifier (RFC 6749
 * §4.1.3, RFC 7636 §4.5), and show the request in the inspector.
 */
async function redeemCode(metadata, code, pending, dpopKey = null) {
  const form = { grant_type: "authorization_code", client_id: config.client_id, code,
    redirect_uri: config.redirect_uri, code_verifier: pending.codeVerifier };
  const request = { method: "POST", url: metadata.token_endpoint, params: form };
  const proofs = [];
  let tokens;
  try {
    tokens = await oidc.exchangeCode(metadata, { clientId: config.client_id, redirectUri: config.redirect_uri,
      code, codeVerifier: pending.codeVerifier, dpop: dpopContext(dpopKey, proofs) });
  } catch (err) {
    inspector.step("Token request failed", err.description + proofNote(proofs),
      { ok: false, request, proofs: proofParts(proofs) });
    throw err;
  }
  inspector.step("Token request (code exchange)",
    "POST the code with the code_verifier to the token endpoint by fetch (CORS). A public client: "
      + "client_id, no secret; the verifier proves this tab started the flow (RFC 7636 §4.5)."
      + (dpopKey ? " The issuer binds the tokens to the proof's key "
        + `(token_type ${tokens.token_type}, RFC 9449 §5).${proofNote(proofs)}` : ""),
    { request, response: { status: 200, body: tokens }, proofs: proofParts(proofs) });
  return tokens;
}

/**
 * Validate the ID token and keep the tokens, in memory.
 *
 * OIDC Core 3.1.3.7 (code) and 3.2.2.11 (Implicit).  In the code flow the ID
 * token came straight from the token endpoint over TLS, where verifying the
 * signature is optional (3.1.3.7 step 6) — we verify anyway; for Implicit it
 * came through the browser and MUST be verified, and at_hash MUST bind the
 * access token to it (3.2.2.9-3.2.2.10).
 */
async function acceptTokens(tokens,
  { mode, nonce, metadata, previous = null, generation = sessionGeneration, dpopKey = null }) {
  let result;
  const label = previous ? "Refreshed ID token" : "ID token";
  try {
    result = await oidc.validateIdToken(tokens.id_token, {
      jwksUri: metadata.jwks_uri, issuer: config.issuer, clientId: config.client_id,
      nonce: previous ? null : nonce, previousSub: previous ? previous.claims.sub : null,
      accessToken: tokens.access_token, atHashRequired: mode === "implicit" && !previous,
      leeway: config.clock_leeway,
    });
  } catch (err) {
    if (generation !== sessionGeneration) return false; // signed out meanwhile: nothing to report
    inspector.step(`${label} rejected`, err.description,
      { ok: false, jwt: { label, token: tokens.id_token, checks: err.checks || [] } });
    throw err;
  }
  // Signed out while the keys were fetched: keep nothing (see refresh()).
  if (generation !== sessionGeneration) return false;
  inspector.step(`${label} validated`,
    mode === "implicit"
      ? "Signature verified with WebCrypto against the issuer's JWKS, "
        + "then iss, aud, exp, iat, nonce and at_hash (OIDC Core 3.2.2.11)."
      : "Signature verified with WebCrypto against the issuer's JWKS, "
        + "then iss, aud, exp, iat and nonce (OIDC Core 3.1.3.7).",
    { jwt: { label, token: tokens.id_token, checks: result.checks } });
  const key = previous ? previous.dpopKey : dpopKey;
  inspector.step("Access token",
    "Opaque to this app by contract; shown decoded for learning. The API validates it, not us."
      + (key ? " Bound to this tab's DPoP key: its cnf.jkt is the key's thumbprint (RFC 9449 §6)." : ""),
    { jwt: { label: "Access token", token: tokens.access_token, checks: bindingChecks(tokens, key) } });

  const expiresIn = Number(tokens.expires_in) > 0 ? Number(tokens.expires_in) : 3600;
  session = {
    mode,
    accessToken: tokens.access_token,
    tokenType: tokens.token_type,
    dpopKey: key,
    idToken: tokens.id_token,
    // Rotation: use the new refresh token if the issuer sent one, else keep ours.
    refreshToken: mode === "pkce"
      ? (tokens.refresh_token || (previous && previous.refreshToken) || null)
      : null,
    expiresAt: Date.now() + expiresIn * 1000,
    claims: result.claims,
    scope: tokens.scope,
  };
  scheduleRefresh(expiresIn);
  render();
  return true;
}

/**
 * What this page can see of a DPoP binding (RFC 9449 §5, §6): token_type
 * DPoP, and, when the access token is a JWT, cnf.jkt = our key's thumbprint.
 * For the inspector only: the API is what enforces the binding.
 */
function bindingChecks(tokens, key) {
  if (!key) return [];
  const bound = /^dpop$/i.test(tokens.token_type || "");
  const checks = [{ check: "token_type", ok: bound,
    detail: bound ? "DPoP: the token is bound to a key (RFC 9449 §5)"
      : `${tokens.token_type}: the issuer did not bind this token, so it is sent as Bearer` }];
  let claims = null;
  try {
    claims = oidc.decodeJwt(tokens.access_token).claims;
  } catch (err) {
    claims = null; // an opaque token: only the issuer and the API can read its binding
  }
  if (claims) {
    const jkt = claims.cnf && claims.cnf.jkt;
    checks.push({ check: "cnf.jkt", ok: jkt === key.thumbprint,
      detail: jkt === key.thumbprint ? `${jkt}, the thumbprint of this tab's key (RFC 7638)`
        : `${String(jkt || "(none)")} is not the thumbprint of this tab's key` });
  }
  return checks;
}

// -- staying signed in: rotating refresh tokens ---------------------------------------------

function scheduleRefresh(expiresIn) {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  if (!session || !session.refreshToken) return;
  // Renew a minute before expiry (halfway through, for very short-lived tokens).
  const delay = Math.max(1, expiresIn > 120 ? expiresIn - 60 : expiresIn / 2) * 1000;
  refreshTimer = setTimeout(() => refresh("automatic").catch(fail), delay);
}

/**
 * Trade the refresh token for new tokens (RFC 6749 §6); the old one is now spent.
 *
 * Single-flight: one refresh at a time, and whoever asks while one is under
 * way (the button clicked while the timer's refresh is on the wire) waits
 * for that one.  A second request would send the refresh token the first
 * one just spent, and an issuer with reuse detection (RFC 9700 §4.14.2; the
 * dev issuer has it) takes that for a stolen token and revokes the grant.
 */
function refresh(trigger) {
  if (!refreshInFlight) {
    const flight = refreshOnce(trigger).finally(() => {
      if (refreshInFlight === flight) refreshInFlight = null;
    });
    refreshInFlight = flight;
  }
  return refreshInFlight;
}

/** One refresh request (RFC 6749 §6); only refresh() calls it. */
async function refreshOnce(trigger) {
  if (!session || !session.refreshToken) return;
  const previous = session;
  // If the user signs out while this is on the wire, its answer belongs to a
  // session that no longer exists: it must not bring the tokens back.
  const generation = sessionGeneration;
  const stale = () => generation !== sessionGeneration;
  const metadata = await oidc.discover(config.issuer);
  if (stale()) return;
  const form = {
    grant_type: "refresh_token",
    client_id: config.client_id,
    refresh_token: previous.refreshToken,
  };
  const request = { method: "POST", url: metadata.token_endpoint, params: form };
  const proofs = [];
  let tokens;
  try {
    // Under DPoP, with a proof from the same key: the issuer bound our refresh token to it (RFC 9449 §5).
    tokens = await oidc.refreshTokens(metadata, { clientId: config.client_id,
      refreshToken: previous.refreshToken, dpop: dpopContext(previous.dpopKey, proofs) });
  } catch (err) {
    if (stale()) return; // signed out meanwhile: nothing to report
    inspector.step("Refresh failed", err.description + proofNote(proofs),
      { ok: false, request, proofs: proofParts(proofs) });
    throw err;
  }
  if (stale()) return discardTokens(metadata, tokens, previous.dpopKey);
  const rotated = tokens.refresh_token && tokens.refresh_token !== previous.refreshToken;
  inspector.step(`Refresh (${trigger})`,
    rotated
      ? "New tokens for the refresh token; the issuer rotated it (RFC 9700 §4.14.2): "
        + `${shorten(previous.refreshToken)} is spent, ${shorten(tokens.refresh_token)} replaces it.`
      : "New tokens for the refresh token; the issuer did not rotate it, so we keep the old one."
      + proofNote(proofs),
    { request, response: { status: 200, body: tokens }, proofs: proofParts(proofs) });
  if (tokens.id_token) {
    if (!await acceptTokens(tokens, { mode: previous.mode, nonce: null, metadata, previous, generation })) {
      return discardTokens(metadata, tokens, previous.dpopKey);
    }
  } else {
    session = {
      ...previous,
      accessToken: tokens.access_token,
      tokenType: tokens.token_type,
      refreshToken: tokens.refresh_token || previous.refreshToken,
      expiresAt: Date.now() + (Number(tokens.expires_in) || 3600) * 1000,
    };
    scheduleRefresh(Number(tokens.expires_in) || 3600);
    render();
  }
  notice(rotated ? "Tokens refreshed; the refresh token was rotated." : "Tokens refreshed.");
}

/**
 * Drop tokens that arrived after sign-out.  The new refresh token they
 * carry would be a live credential nobody holds on to: revoke it (RFC 7009
 * §2.1), best effort, rather than leave it valid until it expires.
 */
function discardTokens(metadata, tokens, dpopKey = null) {
  void oidc.revokeToken(metadata,
    { clientId: config.client_id, token: tokens.refresh_token, dpop: dpopContext(dpopKey, []) });
}

// -- the API ---------------------------------------------------------------------------------

/** The API's answer on the page, as DOM nodes and text: its messages, then the raw body. */
function showApiResult(result, request = `GET ${config.api_url}`) {
  const box = $("api-result");
  const heading = document.createElement("p");
  heading.textContent = `${request} → HTTP ${result.status}`;
  const parts = [heading];
  const messages = result.body && Array.isArray(result.body.messages) ? result.body.messages : [];
  if (messages.length) {
    const list = document.createElement("ul");
    for (const message of messages) {
      const item = document.createElement("li");
      item.textContent = String(message.text);
      list.append(item);
    }
    parts.push(list);
  }
  const raw = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "Response body";
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(result.body, null, 2);
  raw.append(summary, pre);
  raw.open = !messages.length; // an error body is the message: show it
  parts.push(raw);
  box.className = result.ok ? "api-ok" : "api-bad";
  box.replaceChildren(...parts);
  box.hidden = false;
  reveal(box);
}

/** Call the resource server with the access token (RFC 6750 §2.1); a 401 ends the session here. */
async function callApi() {
  if (session.mode === "bff") return callApiThroughBff();
  clearMessages();
  const proofs = [];
  const result = await oidc.callApi(config.api_url, session.accessToken,
    { tokenType: session.tokenType, dpop: dpopContext(session.dpopKey, proofs) });
  const scheme = proofs.length ? "DPoP" : "Bearer";
  // The checks the API reports it ran on our proof (RFC 9449 §4.3, §7.1).
  const report = result.body && result.body.dpop && Array.isArray(result.body.dpop.checks)
    ? result.body.dpop.checks.map((c) => ({ check: String(c), ok: true, detail: "passed at the API" }))
    : [];
  inspector.step(`API call: HTTP ${result.status}`,
    `GET the API with Authorization: ${scheme} <access token>, cross-origin: `
      + "the API's CORS policy allows this origin only." + proofNote(proofs),
    { ok: result.ok, request: { method: "GET", url: config.api_url, params: { Authorization: scheme } },
      response: { status: result.status, body: result.body }, proofs: proofParts(proofs, report) });
  showApiResult(result);
  if (result.status === 401) {
    dropSession();
    const challenge = result.wwwAuthenticate ? `, ${result.wwwAuthenticate}` : "";
    throw new oidc.OidcError((result.body && result.body.error) || "invalid_token",
      `The API refused the access token (HTTP 401${challenge}).`,
      "The tokens were discarded. Sign in again.");
  }
  if (!result.ok) {
    throw new oidc.OidcError((result.body && result.body.error) || "api_error",
      (result.body && result.body.error_description) || `The API answered HTTP ${result.status}.`);
  }
}

/**
 * BFF mode: ask this app's server to call the API.  It adds the access
 * token (renewed first when needed) on its side; the API's status code and
 * body come back unchanged.  A 401 means the server could not get a token
 * the API accepts: it has signed us out, and so does the page.
 */
async function callApiThroughBff() {
  clearMessages();
  let result;
  try {
    result = await bff.callApi("/bff/api/messages");
  } catch (err) {
    showError(err); // this app's server did not answer: its session may well be fine, so stay signed in
    return;
  }
  showApiResult(result, `GET /bff/api/messages (forwarded to ${config.api_url})`);
  await showServerSteps();
  if (result.status === 401) {
    dropSession();
    const challenge = result.wwwAuthenticate ? `, ${result.wwwAuthenticate}` : "";
    throw new oidc.OidcError((result.body && result.body.error) || "signed_out",
      `The API call was refused (HTTP 401${challenge}): you are signed out of this app.`,
      "Sign in again.");
  }
  if (!result.ok) {
    // Any other refusal (403 insufficient_scope, 502 from the proxy ...) ends
    // nothing: the server's session is still there, so the page stays signed in.
    showError(new oidc.OidcError((result.body && result.body.error) || "api_error",
      (result.body && result.body.error_description) || `The API answered HTTP ${result.status}.`,
      (result.body && typeof result.body.hint === "string") ? result.body.hint : ""));
  }
}

/** BFF mode: the steps the server recorded for this session, in the inspector (never a token). */
async function showServerSteps() {
  try {
    inspector.showServerSteps(await bff.serverSteps());
  } catch (err) {
    showError(err); // the inspector is for reading: a failure here ends nothing
  }
  // For tests: how many times the server's steps were read (they may not have changed).
  $("inspector").dataset.reads = String(Number($("inspector").dataset.reads || 0) + 1);
}

/** BFF mode: who is signed in, asked of the server (the session cookie says, not this page). */
async function restoreBffSession() {
  const claims = await bff.currentUser();
  if (claims) {
    session = { mode: "bff", claims };
    render();
  } else if (session) {
    dropSession();
  }
  await showServerSteps();
}

// -- sign-out --------------------------------------------------------------------------------

/**
 * Sign out: forget the tokens, revoke the refresh token (RFC 7009), then
 * RP-initiated logout at the issuer (RP-Initiated Logout 1.0 §2) so the
 * issuer's session ends too; it sends the browser back to
 * post_logout_redirect_uri with our state.
 */
async function signOut() {
  if (session.mode === "bff") return signOutOfBff();
  clearMessages();
  const ending = session;
  dropSession();
  const metadata = await oidc.discover(config.issuer);
  if (ending.refreshToken) {
    const proofs = [];
    const revoked = await oidc.revokeToken(metadata, { clientId: config.client_id, token: ending.refreshToken,
      dpop: dpopContext(ending.dpopKey, proofs) });
    const params = {
      token: ending.refreshToken,
      token_type_hint: "refresh_token",
      client_id: config.client_id,
    };
    inspector.step("Refresh token revoked", (revoked
      ? "RFC 7009: the issuer will refuse it from now on."
      : "RFC 7009 revocation failed (best effort); it expires on its own.") + proofNote(proofs),
    { ok: revoked, request: { method: "POST", url: metadata.revocation_endpoint || "(none)", params },
      proofs: proofParts(proofs) });
  }
  const state = oidc.randomString();
  const url = oidc.endSessionUrl(metadata, { idTokenHint: ending.idToken, clientId: config.client_id,
    postLogoutRedirectUri: config.post_logout_redirect_uri, state });
  if (!url) {
    notice("Signed out of this app. "
      + "The issuer has no end_session_endpoint, so your session there continues.");
    return;
  }
  sessionStorage.setItem(LOGOUT_KEY, JSON.stringify({ state, mode: ending.mode }));
  window.location.assign(url);
}

/**
 * BFF mode: the server revokes the refresh token and deletes the session
 * (POST /bff/logout), and answers the RP-initiated logout URL, which the
 * browser then visits so that the issuer's session ends too.  Its state
 * is kept like ours, for completeSignOut() to check on the way back.
 */
async function signOutOfBff() {
  clearMessages();
  let url;
  try {
    url = await bff.logout();
  } catch (err) {
    showError(err); // not signed out (the server is unreachable, say): the page stays as it is
    return;
  }
  dropSession();
  inspector.clear();
  const target = url ? new URL(url) : null;
  if (!target || !["https:", "http:"].includes(target.protocol)) {
    notice("Signed out of this app. The server sent no logout URL for the issuer (it has no "
      + "end_session_endpoint, or this app's session had already ended), so your session there continues.");
    return;
  }
  sessionStorage.setItem(LOGOUT_KEY, JSON.stringify({ state: target.searchParams.get("state"), mode: "bff" }));
  window.location.assign(target.toString());
}

/** Back from the issuer's logout: check our state and say so. */
function completeSignOut() {
  const pending = takeFromSessionStorage(LOGOUT_KEY);
  const url = new URL(window.location.href);
  if (!pending && !url.searchParams.has("state")) return;
  window.history.replaceState(null, "", "/");
  if (!pending) return;
  selectMode(pending.mode);
  if (url.searchParams.get("state") === pending.state) {
    notice("You are signed out, here and at the issuer.");
  } else {
    showError(new oidc.OidcError("logout_state_mismatch",
      "The sign-out answer's state is not the one this tab sent.",
      "Your tokens were already discarded here; "
        + "check the issuer if you are unsure you are signed out there."));
  }
}

// -- start-up --------------------------------------------------------------------------------

function fail(err) {
  dropSession();
  showError(err);
}

function guarded(action) {
  return () => action().catch(fail);
}

/**
 * What a move from another host name carried (signIn() on 127.0.0.1 goes to
 * SPA_BASE_URL with ?mode=...&signin=1): the chosen flow, and whether to
 * start the sign-in now.  Taken out of the address bar at once.  A link
 * with signin=1 can do no more than the Sign in button: the sign-in starts
 * with this tab's own fresh state, nonce and verifier.
 */
function takeCarriedIntent() {
  const url = new URL(window.location.href);
  const carried = url.searchParams.has("mode") || url.searchParams.has("signin");
  if (url.pathname !== "/" || url.searchParams.has("state") || !carried) return {};
  window.history.replaceState(null, "", "/");
  const mode = url.searchParams.get("mode");
  return { mode: MODES.includes(mode) ? mode : null, signIn: url.searchParams.get("signin") === "1" };
}

/** The flow chosen before a reload, if any. */
function rememberedMode() {
  const mode = sessionStorage.getItem(MODE_KEY);
  return MODES.includes(mode) ? mode : "pkce";
}

/** "(12 steps)" next to the collapsed inspector's title, kept current as steps arrive. */
function countInspectorSteps() {
  const update = () => {
    const n = $("inspector").children.length;
    $("inspector-count").textContent = n ? `(${n} step${n === 1 ? "" : "s"})` : "(no steps yet)";
  };
  new MutationObserver(update).observe($("inspector"), { childList: true });
  update();
}

/** The flow switch changed: remember it; in BFF mode, ask the server whether a session exists. */
async function modeChanged() {
  selectMode(selectedMode());
  clearMessages();
  inspector.clear(); // the steps shown belong to the other mode
  if (selectedMode() === "bff") await restoreBffSession();
}

async function main() {
  const response = await fetch("/config.json", { credentials: "omit", cache: "no-store" });
  config = await response.json();
  oidc.setFetchTimeout(config.http_timeout);
  bff.setTimeoutSeconds(config.http_timeout);
  $("sign-in").addEventListener("click", guarded(signIn));
  $("sign-out").addEventListener("click", guarded(signOut));
  $("call-api").addEventListener("click", guarded(callApi));
  $("refresh-tokens").addEventListener("click", guarded(() => refresh("manual")));
  for (const mode of MODES) $(`mode-${mode}`).addEventListener("change", guarded(modeChanged));
  countInspectorSteps();
  const intent = takeCarriedIntent();
  selectMode(intent.mode || rememberedMode());
  render();
  if (window.location.pathname === "/login/callback") {
    await completeSignIn().catch(fail);
  } else if (intent.signIn) {
    await signIn().catch(fail);
  } else {
    completeSignOut();
    if (selectedMode() === "bff") await restoreBffSession().catch(fail);
  }
  document.body.dataset.ready = "true"; // for tests: the page has finished starting up
}

main().catch(fail);
