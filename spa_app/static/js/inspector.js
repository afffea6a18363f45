// inspector.js — the in-page flow inspector.
//
// Records each protocol step the page performs (request, response, JWTs
// decoded with the checks they passed) and renders them as an ordered
// list.  Secrets are redacted and tokens shortened before they are
// recorded, so what is on screen is safe to screenshot.
//
// The page is built with DOM calls and textContent only: the
// Content-Security-Policy enforces Trusted Types, so no string can ever
// become markup here.

import { decodeJwt } from "./oidc.js";

// Parameters whose values are secrets (RFC 7636: the verifier stays secret
// until the exchange; the rest are credentials).
const SECRET_KEYS = new Set(["code_verifier", "client_secret", "password", "client_assertion"]);
// Shortened, not hidden: enough to follow the flow, not to use.  The
// authorization code is a credential too until it is redeemed (RFC 6749
// §10.5, RFC 9700 §4.2): a screenshot of it must not be one.
const TOKEN_KEYS = new Set(["access_token", "id_token", "refresh_token", "id_token_hint", "token", "code"]);

/** "eyJhbGci…(1234 chars)…x9Q": enough to recognise a token, not to use it. */
export function shorten(token) {
  if (typeof token !== "string") return token;
  if (token.length <= 16) return "…(short token)…";
  return `${token.slice(0, 8)}…(${token.length} chars)…${token.slice(-4)}`;
}

/** A copy of ``params`` with secrets redacted and tokens shortened. */
export function redact(params) {
  const out = {};
  for (const [key, value] of Object.entries(params || {})) {
    if (SECRET_KEYS.has(key)) out[key] = "[redacted]";
    else if (TOKEN_KEYS.has(key)) out[key] = shorten(value);
    // The scheme (Bearer or DPoP) is worth seeing; the credential is not.
    else if (key === "Authorization") out[key] = `${/^dpop/i.test(value) ? "DPoP" : "Bearer"} [redacted]`;
    else out[key] = value;
  }
  return out;
}

/** The query parameters of a URL, redacted, for display. */
export function urlParams(url) {
  return redact(Object.fromEntries(new URL(url).searchParams));
}

// Three base64url segments, the first one a JSON object ("eyJ" is '{"'): a JWT (RFC 7519 §3).
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

/** A deep copy of ``value`` in which every JWT-shaped string is shortened. */
function withoutTokens(value, depth = 0) {
  if (typeof value === "string") return value.replace(JWT_SHAPE, (token) => shorten(token));
  if (depth > 8 || value === null || typeof value !== "object") return depth > 8 ? "…" : value;
  if (Array.isArray(value)) return value.map((item) => withoutTokens(item, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutTokens(v, depth + 1)]));
}

/** A server step (common/inspector.py) in the shape renderStep() reads; failed when any check failed. */
function fromServer(raw) {
  const step = withoutTokens(raw);
  const checks = [...(Array.isArray(step.checks) ? step.checks : []),
    ...(step.jwt && Array.isArray(step.jwt.checks) ? step.jwt.checks : [])];
  step.ok = !step.error && checks.every((check) => check && check.ok);
  if (step.jwt) step.jwt = { label: "JWT", checks: [], ...step.jwt };
  return step;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function paramsTable(params) {
  const body = el("tbody");
  for (const [key, value] of Object.entries(params)) {
    body.append(el("tr", {}, el("th", {}, key), el("td", {}, el("code", {}, String(value)))));
  }
  return el("table", { class: "params" }, body);
}

/** One recorded step as a list item: title, explanation, request, response, checks, JWT, error. */
function renderStep(step, index) {
  const item = el("li", { id: `step-${index + 1}`, class: step.ok ? "step" : "step step-bad" },
    el("h3", {}, String(step.title)),
    el("p", { class: "muted" }, String(step.explanation || "")));
  if (step.request) {
    const line = `${step.request.method} ${step.request.url}`;
    item.append(el("p", { class: "request-line" }, el("code", {}, line)));
    for (const part of ["headers", "params"]) {
      const values = step.request[part];
      if (values && typeof values === "object" && Object.keys(values).length) item.append(paramsTable(values));
    }
  }
  if (step.response) {
    item.append(el("p", { class: "response-line" }, `Response: HTTP ${step.response.status}`));
    const body = step.response.body;
    if (body !== null && body !== undefined && body !== "") {
      item.append(el("pre", {}, typeof body === "string" ? body : JSON.stringify(body, null, 2)));
    }
  }
  if (Array.isArray(step.checks) && step.checks.length) item.append(checksList(step.checks));
  if (step.jwt) item.append(...renderJwt(step.jwt));
  for (const proof of Array.isArray(step.proofs) ? step.proofs : []) {
    item.append(el("div", { class: "dpop-proof" }, ...renderJwt(proof)));
  }
  if (step.error) {
    item.append(el("p", { class: "step-error" },
      el("code", {}, String(step.error.error)), ` ${step.error.description || ""}`));
  }
  return item;
}

function checksList(checks) {
  const list = el("ul", { class: "checks" });
  for (const check of checks) {
    list.append(el("li", { class: check.ok ? "check-ok" : "check-bad" },
      el("code", {}, String(check.check)), ` ${check.detail}`));
  }
  return list;
}

/** A JWT decoded for reading (header and claims side by side) and the checks it passed. */
function renderJwt(jwt) {
  const parts = [el("p", {}, el("strong", {}, jwt.label), " ", el("code", {}, jwt.token))];
  const column = (title, value) => el("div", {},
    el("p", { class: "muted" }, title), el("pre", {}, JSON.stringify(value, null, 2)));
  parts.push(el("div", { class: "jwt" }, column("Header", jwt.header), column("Claims", jwt.claims)));
  if (Array.isArray(jwt.checks) && jwt.checks.length) parts.push(checksList(jwt.checks));
  return parts;
}

/** A JWT as a step keeps it: shortened, with its header and claims decoded (null if it is not a JWT). */
function decoded({ label, token, checks }) {
  let parts = null;
  try {
    parts = decodeJwt(token);
  } catch (err) {
    parts = null;
  }
  return {
    label: label || "JWT",
    token: shorten(token),
    header: parts && parts.header,
    claims: parts && parts.claims,
    checks: checks || [],
  };
}

/** The protocol steps this page performed, shown as an ordered list (secrets redacted). */
export class FlowInspector {
  /** @param {HTMLElement} root the ``<ol id="inspector">`` */
  constructor(root) {
    this.root = root;
    this.steps = [];
  }

  /**
   * Record a step.  ``parts`` may hold ``request`` {method, url, params},
   * ``response`` {status, body}, ``jwt`` {token, checks}, ``proofs`` (a
   * list like ``jwt``: the DPoP proofs sent) and ``ok`` (false marks a
   * failed step).
   */
  step(title, explanation, parts = {}) {
    const step = { title, explanation, ok: parts.ok !== false };
    if (parts.request) step.request = { ...parts.request, params: redact(parts.request.params) };
    if (parts.response) step.response = { status: parts.response.status, body: redact(parts.response.body) };
    if (parts.jwt) step.jwt = decoded(parts.jwt);
    // DPoP proofs (RFC 9449 §4.2) the step sent, each decoded: header (typ, alg, the public jwk) and claims.
    if (Array.isArray(parts.proofs) && parts.proofs.length) step.proofs = parts.proofs.map(decoded);
    this.steps.push(step);
    this.render();
  }

  /** The steps so far, as plain data (for sessionStorage across the redirect). */
  toList() {
    return this.steps.map((step) => ({ ...step }));
  }

  /** Replace the steps (after the redirect back from the issuer). */
  restore(steps) {
    this.steps = Array.isArray(steps) ? steps : [];
    this.render();
  }

  /**
   * Show the steps this app's server performed for this session (the BFF
   * mode: ``GET /bff/inspector``, the shape of common/inspector.py's
   * ``FlowLog.to_list()``).  The server has already redacted secrets and
   * shortened tokens; anything still shaped like a JWT is shortened here
   * too, so no token can reach the screen whatever the server sent.
   */
  showServerSteps(steps) {
    this.steps = (Array.isArray(steps) ? steps : []).filter((s) => s && typeof s === "object").map(fromServer);
    this.render();
  }

  clear() {
    this.steps = [];
    this.render();
  }

  render() {
    this.root.replaceChildren(...this.steps.map((step, index) => renderStep(step, index)));
  }
}
