// A real OpenID Provider (the `oidc-provider` package) for portcullis's
// interop tests. Listens on 127.0.0.1, port chosen by the OS, and prints one
// JSON line {"issuer": ..., "port": ...} on stdout once it accepts requests.
//
// Usage: node idp.mjs --client-id ID --client-secret SECRET --redirect-uri URI
//                     [--alg RS256|ES256] [--auth client_secret_basic|client_secret_post]
//                     [--accounts FILE]
//
// There is no login page: an interaction logs in the current account and
// grants whatever was asked, so a test can complete the code flow with a
// plain HTTP client that follows redirects and keeps cookies.
//
// --accounts FILE is JSON {"current": SUB, "accounts": [{sub, preferred_username,
// email, name, groups?}, ...]}, read on every login, so a test can switch
// the person logging in or move them between groups (an account without
// "groups" gets an ID token with no groups claim at all).

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string' },
    alg: { type: 'string', default: 'RS256' },
    auth: { type: 'string', default: 'client_secret_basic' },
    accounts: { type: 'string' },
  },
});
for (const k of ['client-id', 'client-secret', 'redirect-uri']) {
  if (!args[k]) {
    console.error(`idp.mjs: --${k} is required`);
    process.exit(2);
  }
}

export const ACCOUNT = {
  sub: 'user-alice-0001',
  preferred_username: 'alice',
  email: 'alice@example.com',
  email_verified: true,
  name: 'Alice Admin',
  groups: ['netadmins', 'Everyone'],
};

function accounts() {
  if (!args.accounts) return { current: ACCOUNT.sub, accounts: [ACCOUNT] };
  return JSON.parse(readFileSync(args.accounts, 'utf8'));
}

// Fresh keys per run: the tests must get them from the JWKS, never assume.
function signingKey(type, opts, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, opts);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }, 'rsa-1', 'RS256'),
    signingKey('ec', { namedCurve: 'P-256' }, 'ec-1', 'ES256'),
  ],
};

// A reader that went away must not kill the IdP mid-test.
process.stdout.on('error', () => {});

const server = http.createServer();

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: args['client-id'],
        client_secret: args['client-secret'],
        redirect_uris: [args['redirect-uri']],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: args.auth,
        id_token_signed_response_alg: args.alg,
      },
    ],
    jwks,
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    // Put the scope-requested claims into the ID token itself, as Okta does
    // with a groups claim configured, instead of only at userinfo.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const a = accounts().accounts.find((x) => x.sub === id);
      if (!a) return undefined;
      return { accountId: id, async claims() { return { ...a }; } };
    },
  });

  provider.on('server_error', (ctx, err) => console.error('idp server_error:', err));

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interact(provider, req, res).catch((err) => {
        console.error('idp interaction error:', err);
        res.statusCode = 500;
        res.end('interaction failed');
      });
      return;
    }
    callback(req, res);
  });

  console.log(JSON.stringify({ issuer, port }));
});

// Answers the login prompt with the fixed account and the consent prompt by
// granting exactly what is missing.
async function interact(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: accounts().current } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  throw new Error(`unexpected prompt ${prompt.name}`);
}

process.on('SIGTERM', () => process.exit(0));
