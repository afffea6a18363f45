// An independent OpenID Provider for the tests: panva's oidc-provider (a
// certified implementation of OpenID Connect), configured from the
// environment and listening on loopback only.
//
// The tests start it with `node server.js` (tests/second_issuer/conftest.py)
// and point the suite's apps at it by environment variables alone, to show
// that they speak the standards rather than the dev issuer's dialect.
//
// Environment:
//   PORT                   port on 127.0.0.1; the issuer is http://127.0.0.1:PORT
//   SPA_BASE_URL           the SPA's origin (redirect {SPA_BASE_URL}/bff/callback)
//   SPA_BFF_CLIENT_ID, SPA_BFF_CLIENT_SECRET   the BFF's registration
//   WEB_BASE_URL, WEB_CLIENT_ID, WEB_CLIENT_SECRET   the web app's registration
//   NATIVE_CLIENT_ID       native_sim's registration (device authorization grant, RFC 8628)
//   API_AUDIENCE           the resource indicator (RFC 8707) whose access tokens are JWTs
//   ACCESS_TOKEN_TTL       seconds an access token lives (default 300)

import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`second issuer: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const spaBase = env('SPA_BASE_URL');
const webBase = env('WEB_BASE_URL', 'http://localhost:5001');
const audience = env('API_AUDIENCE', 'api://default');
const accessTokenTTL = Number(env('ACCESS_TOKEN_TTL', '300'));

// One RSA key per run: ID tokens and JWT access tokens are RS256 (OIDC Core
// 3.1.3.7 and RFC 9068 §2.1, the algorithms the suite pins).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'second-issuer-1' };

// Every account signs in with any password (devInteractions); its claims
// are made from the login name, so a test can tell users apart.
async function findAccount(_ctx, id) {
  return {
    accountId: id,
    async claims() {
      return { sub: id, name: `Second Issuer user ${id}`, email: `${id}@example.test`, email_verified: true };
    },
  };
}

const configuration = {
  clients: [
    {
      // The SPA's backend-for-frontend: a confidential "web" client.
      client_id: env('SPA_BFF_CLIENT_ID'),
      client_secret: env('SPA_BFF_CLIENT_SECRET'),
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [`${spaBase}/bff/callback`],
      post_logout_redirect_uris: [`${spaBase}/`],
    },
    {
      // The web app, for the baseline test.
      client_id: env('WEB_CLIENT_ID', 'dev-web-app'),
      client_secret: env('WEB_CLIENT_SECRET', 'dev-web-app-secret-do-not-use-in-production'),
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [`${webBase}/authorization-code/callback`],
      post_logout_redirect_uris: [`${webBase}/`],
      // RFC 9126 §6: this client's authorization requests must be pushed, so
      // the web app's sign-in works here only if it pushes (PAR=auto does).
      require_pushed_authorization_requests: true,
    },
    {
      // native_sim's `device-login`: a public native client with the device
      // authorization grant (RFC 8628), like Okta's Native app with "Device Authorization".
      client_id: env('NATIVE_CLIENT_ID', 'second-issuer-native'),
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount,
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  // The access token is for the API (below), not for the userinfo
  // endpoint, so the ID token itself carries the profile claims (OIDC Core
  // 5.4 allows either); the BFF shows the ID token's claims.
  conformIdTokenClaims: false,
  // PKCE on every authorization request (RFC 9700 §2.1.1), S256 only.
  pkce: { required: () => true },
  // Okta issues a refresh token to a client allowed the grant that asks for
  // offline_access; oidc-provider by default also needs prompt=consent
  // (OIDC Core 11). Follow Okta here, as the suite's clients do not send it.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTokenTTL,
    IdToken: 3600,
    RefreshToken: 24 * 3600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    // DPoP (RFC 9449), as Okta offers it: dpop_signing_alg_values_supported in
    // the metadata (so the apps' DPOP=auto uses it), DPoP-bound access tokens
    // with cnf.jkt, and a server nonce demanded on every token request, so
    // that the clients meet `400 use_dpop_nonce` and retry with the nonce (§8).
    dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
    // RFC 8628: {issuer}/device/auth, and the page where the user enters the code at {issuer}/device.
    deviceFlow: { enabled: true },
    // Pushed authorization requests (RFC 9126) at /request: advertised as
    // pushed_authorization_request_endpoint, required per client (above).
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
    // Access tokens are JWTs for the API only (RFC 8707 resource
    // indicators, RFC 9068 token format). The suite's clients send no
    // `resource`, so the API is every request's default resource, as an
    // Okta authorization server's audience is.
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== audience) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: 'api:read',
          audience,
          accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, error) => console.error('server_error', error));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`second issuer listening at ${issuer}`);
});

// Stopped by PID with SIGTERM: close the listener and exit at once.
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
