// dpop.js — DPoP (RFC 9449) in the browser: a key that cannot leave the
// page, and a fresh proof for every request that carries a token.
//
// With DPoP the issuer binds the access token (and a public client's refresh
// token) to our public key (cnf.jkt, RFC 9449 §6); the token then works only
// together with a proof signed by the private key (§4).  A token copied out
// of this tab (a log, a proxy, a browser extension reading the network) is
// useless on its own.
//
//   1. generateKey()     a WebCrypto ECDSA P-256 key pair with extractable:
//                        false, kept in memory like the tokens: no script,
//                        not even ours, can read the private key out of the
//                        browser (RFC 9449 §2, "non-extractable").  A reload
//                        drops it, as it drops the tokens.
//   2. makeProof()       the proof JWT (§4.2): typ dpop+jwt, alg ES256, the
//                        public jwk; htm, htu (no query, no fragment), iat,
//                        a random jti; ath with an access token; the nonce
//                        when the server asked for one.
//   3. NonceBook,        the latest DPoP-Nonce per server, and whether an
//      asksForNonce()    answer asks us to retry with it (§8, §9).
//
// Everything here is a pure function of its arguments plus WebCrypto.

/** The one algorithm the browser signs proofs with: ES256 (RFC 9449 §4.2 leaves the choice to us). */
export const PROOF_ALGORITHM = "ES256";
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" };

function base64Url(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64UrlJson(value) {
  return base64Url(new TextEncoder().encode(JSON.stringify(value)));
}

async function sha256(text) {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
}

/** ath (RFC 9449 §4.2): base64url of the SHA-256 of the access token's ASCII. */
export async function accessTokenHash(accessToken) {
  return base64Url(await sha256(accessToken));
}

/** The URL as htu (RFC 9449 §4.2): without query and fragment. */
export function htuOf(url) {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

/**
 * Whether this page uses DPoP with this issuer, from DPOP (auto, on, off)
 * and the issuer's metadata.  ``auto``: when the issuer advertises
 * ``dpop_signing_alg_values_supported`` (RFC 9449 §5.1) with ES256 in it.
 * ``on``: always, and an error when the issuer cannot take our ES256 proofs.
 */
export function useDpop(setting, metadata) {
  if (setting === "off") return false;
  const algs = metadata && metadata.dpop_signing_alg_values_supported;
  const offered = Array.isArray(algs) && algs.includes(PROOF_ALGORITHM);
  if (setting === "on" && !offered) {
    const error = new Error("DPOP=on, but the issuer does not advertise DPoP with ES256 "
      + "(dpop_signing_alg_values_supported).");
    error.error = "dpop_unsupported";
    error.description = error.message;
    error.hint = "Turn DPoP on for the issuer (at Okta: the app's \"Require DPoP\"), or set DPOP=auto.";
    throw error;
  }
  return offered;
}

/**
 * A new DPoP key pair (RFC 9449 §2): ECDSA P-256, private key not extractable.
 *
 * ``extractable: false`` is enforced by the browser: exportKey() on the
 * private key throws, whatever script asks.  The public key of the pair is
 * always exportable; its JWK goes into every proof and its RFC 7638
 * thumbprint is what the issuer puts in cnf.jkt.
 */
export async function generateKey() {
  const pair = await crypto.subtle.generateKey(ECDSA_P256, false, ["sign", "verify"]);
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const publicJwk = { kty, crv, x, y };
  // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
  const thumbprint = base64Url(await sha256(JSON.stringify({ crv, kty, x, y })));
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, publicJwk, thumbprint };
}

/**
 * A DPoP proof for one request (RFC 9449 §4.2), for the ``DPoP`` header.
 *
 * WebCrypto's ECDSA signature is already r || s, 32 octets each: the JWS
 * form of ES256 (RFC 7518 §3.4), with no DER to unwrap.
 *
 * @returns {{proof: string, header: object, claims: object}}
 */
export async function makeProof(key, { method, url, accessToken = null, nonce = null }) {
  const header = { typ: "dpop+jwt", alg: PROOF_ALGORITHM, jwk: key.publicJwk };
  const claims = {
    // A fresh random jti for each proof lets the server refuse a replay (§11.1).
    jti: crypto.randomUUID(),
    htm: method.toUpperCase(),
    htu: htuOf(url),
    iat: Math.floor(Date.now() / 1000),
  };
  if (accessToken) claims.ath = await accessTokenHash(accessToken);
  if (nonce) claims.nonce = nonce;
  const signingInput = `${base64UrlJson(header)}.${base64UrlJson(claims)}`;
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey,
    new TextEncoder().encode(signingInput));
  return { proof: `${signingInput}.${base64Url(signature)}`, header, claims };
}

/** The latest ``DPoP-Nonce`` each server sent (RFC 9449 §8.2, §9), by origin; in memory. */
export class NonceBook {
  constructor() {
    this.nonces = new Map();
  }

  /** The nonce for the next proof to ``url``'s server, if it sent one. */
  get(url) {
    return this.nonces.get(new URL(url).origin) || null;
  }

  /** Keep the ``DPoP-Nonce`` of an answer from ``url``'s server (any answer may carry a new one). */
  remember(url, headers) {
    const nonce = headers && headers.get("DPoP-Nonce");
    if (nonce) this.nonces.set(new URL(url).origin, nonce);
    return nonce;
  }
}

/**
 * Whether an answer asks us to retry with the server's nonce (RFC 9449 §8, §9):
 * the issuer says ``400 {"error": "use_dpop_nonce"}``, a resource server
 * ``401`` with ``WWW-Authenticate: DPoP error="use_dpop_nonce"``.  Either
 * sends the nonce in ``DPoP-Nonce`` (readable cross-origin only if exposed).
 */
export function asksForNonce(status, headers, body) {
  if (!headers || !headers.get("DPoP-Nonce")) return false;
  if (status === 400) return Boolean(body && body.error === "use_dpop_nonce");
  if (status === 401) {
    // Several challenges arrive joined by commas; look for the DPoP one's error.
    return /(^|,\s*)DPoP\s[^]*?error="use_dpop_nonce"/.test(headers.get("WWW-Authenticate") || "");
  }
  return false;
}
