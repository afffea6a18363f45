// bff.js — the page's side of the Backend-for-Frontend mode.
//
// In this mode the OAuth client is this app's own server (the BFF): it
// runs Authorization Code + PKCE as a confidential client, keeps the
// tokens in its Redis session and calls the API on the page's behalf.
// The browser holds one HttpOnly session cookie, which no script can read
// (the OAuth 2.0 for Browser-Based Applications BCP, "Backend For
// Frontend").  So nothing here ever handles a token: the page asks the
// BFF who is signed in (/bff/user), asks it to call the API
// (/bff/api/...), and reads the server's flow inspector (/bff/inspector).
//
// Every call carries the header X-CSRF: 1.  A header of its own makes the
// request "non-simple", so a page on another origin cannot send it
// without a CORS preflight, which the BFF never grants: that is its CSRF
// defence (the BCP's BFF section on CSRF), besides SameSite=Lax.
// Cookies go along only to this origin (credentials "same-origin").

import { OidcError, readApiAnswer } from "./oidc.js";

/** The header every call to /bff/user, /bff/api/* and /bff/logout must carry. */
export const CSRF_HEADER = { "X-CSRF": "1" };

// How long a call to the BFF may take (HTTP_TIMEOUT, set by app.js).
let timeoutMs = 5000;

/** Set the timeout of every call to the BFF, in seconds. */
export function setTimeoutSeconds(seconds) {
  if (Number(seconds) > 0) timeoutMs = Number(seconds) * 1000;
}

/**
 * One call to this app's server: ``{status, ok, body, wwwAuthenticate}``.
 * Same origin, with the session cookie and the X-CSRF header; a network
 * failure or a timeout becomes a clear OidcError.
 */
export async function bffFetch(path, { method = "GET" } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error", // the BFF answers JSON; a redirect here would be a mistake, not a page to follow
      headers: { Accept: "application/json", ...CSRF_HEADER },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const late = err && err.name === "TimeoutError";
    throw new OidcError("bff_unreachable",
      late ? `This app's server did not answer ${path} within ${timeoutMs / 1000} s.`
        : `Could not reach this app's server (${path}).`,
      "Check that spa_app is running (and its Redis), then try again.");
  }
  return readApiAnswer(response);
}

/**
 * The signed-in user's claims (``GET /bff/user``), or null when signed out (401).
 * Any other answer is an error to show.
 */
export async function currentUser() {
  const result = await bffFetch("/bff/user");
  if (result.status === 401) return null;
  if (!result.ok || !result.body || typeof result.body !== "object") throw answerError(result, "/bff/user");
  return result.body;
}

/** Ask the BFF to call the API (``/bff/api/messages``); its status and body come back unchanged. */
export function callApi(path = "/bff/api/messages") {
  return bffFetch(path);
}

/**
 * Sign out at the BFF (``POST /bff/logout``): it revokes the refresh
 * token and deletes the session, then answers the RP-initiated logout URL
 * (RP-Initiated Logout 1.0 §2) for the browser to visit, or null when the
 * issuer has none.
 */
export async function logout() {
  const result = await bffFetch("/bff/logout", { method: "POST" });
  if (result.status === 401) return null; // signed out already: nothing left to end here
  if (!result.ok) throw answerError(result, "/bff/logout");
  const url = result.body && result.body.logout_url;
  return typeof url === "string" && url ? url : null;
}

/** The server's inspector steps for this session (``GET /bff/inspector``); [] when there are none. */
export async function serverSteps() {
  const result = await bffFetch("/bff/inspector");
  if (result.status === 401 || result.status === 404) return [];
  if (!result.ok) throw answerError(result, "/bff/inspector");
  return result.body && Array.isArray(result.body.steps) ? result.body.steps : [];
}

/**
 * Where sign-in starts: a top-level navigation to the BFF's /bff/login on
 * ``home`` (SPA_BASE_URL's origin, where the session cookie and the
 * registered redirect URI live), coming back to ``returnTo``.
 */
export function loginUrl(home, returnTo = "/?mode=bff") {
  const url = new URL("/bff/login", home);
  url.searchParams.set("returnTo", returnTo);
  return url.toString();
}

/** An unexpected answer from the BFF as an error to show (its own error text when it sent one). */
function answerError(result, path) {
  const body = result.body && typeof result.body === "object" ? result.body : {};
  return new OidcError(typeof body.error === "string" ? body.error : "bff_error",
    typeof body.error_description === "string" ? body.error_description
      : `This app's server answered HTTP ${result.status} to ${path}.`,
    typeof body.hint === "string" ? body.hint : "");
}
