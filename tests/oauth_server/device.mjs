// The device-flow authorization server of the OAuth tests: npm
// `oidc-provider` on 127.0.0.1 with its device authorization grant
// (RFC 8628) and development sign-in pages, issuing ES256 JWT access
// tokens (with `email` = `sub` = the login) that Dovecot's passdb oauth2
// validates with the public key printed here, and rotating refresh tokens.
//
// Usage: node device.mjs
// stdout, one JSON object a line: first {"port", "issuer", "kid", "alg", "pem"};
// then {"event": "token", "grant_type"} for every token answer and
// {"event": "ack", "id", ...} for each command.
// stdin, one JSON command a line:
//   {"id": N, "approve": USER_CODE, "login": "a@b"}  a person opens the
//        verification page, enters the code, signs in as `login` and
//        consents; acked with {"page": the last page's title}
//   {"id": N, "deny": USER_CODE}   a person enters the code and declines
import Provider from 'oidc-provider';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createServer } from 'node:net';

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
// oidc-provider's development notices go to the console: keep stdout for
// the JSON lines.
console.log = console.info = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n');

// ES256: a short signature keeps the token, and so the XOAUTH2 line of
// SMTP AUTH, under the 1,000 octets Dovecot's submission service accepts
// (lettre sends the initial response on the AUTH line; an RS256 token of
// this server makes it 1,045).
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'device-test', alg: 'ES256', use: 'sig' };

const port = await new Promise((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const p = probe.address().port;
    probe.close(() => resolve(p));
  });
});
// Dovecot matches the issuer exactly, as the tokens carry it.
const issuer = `http://localhost:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'keepword-device',
    token_endpoint_auth_method: 'none',
    id_token_signed_response_alg: 'ES256',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access', 'mail'],
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:keepword:mail',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'mail',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => ({ email: token.accountId }),
  rotateRefreshToken: true,
  ttl: { DeviceCode: 600, AccessToken: 3600, RefreshToken: 86400, Grant: 86400, Session: 3600, Interaction: 600, IdToken: 3600 },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  formats: {
    customizers: {
      // Dovecot 2.3 takes `typ: JWT` only, not RFC 9068's `at+jwt`.
      jwt: (ctx, token, jwt) => { jwt.header = { ...jwt.header, typ: 'JWT' }; return jwt; },
    },
  },
});
provider.on('grant.success', (ctx) => {
  out({ event: 'token', grant_type: ctx.oidc.params?.grant_type ?? null });
});
provider.on('grant.error', (ctx, error) => {
  out({ event: 'token_error', grant_type: ctx.oidc.params?.grant_type ?? null, error: error.error });
});

// Plays the person at the verification page: follows redirects and submits
// each form (the code, the login, the consent) with a cookie jar.
async function person(userCode, login, declineAt) {
  const jar = new Map();
  const cookies = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = `${issuer}/device?user_code=${encodeURIComponent(userCode)}`;
  let method = 'GET';
  let body;
  let declined = false;
  for (let step = 0; step < 20; step++) {
    const res = await fetch(url.replace('localhost', '127.0.0.1'), {
      method, body, redirect: 'manual',
      headers: { cookie: cookies(), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).href;
      method = 'GET';
      body = undefined;
      continue;
    }
    const html = await res.text();
    const title = html.match(/<title>([^<]*)<\/title>/)?.[1] ?? '';
    const form = html.match(/<form[^>]*action="([^"]*)"[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/i)
      ?? html.match(/<form[^>]*method="post"[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
    if (!form || declined) return title;
    const fields = new URLSearchParams();
    for (const m of form[2].matchAll(/<input([^>]*)>/g)) {
      const name = m[1].match(/name="([^"]*)"/)?.[1];
      if (!name) continue;
      let value = m[1].match(/value="([^"]*)"/)?.[1] ?? '';
      if (name === 'login') value = login;
      if (name === 'password') value = 'any';
      fields.set(name, value);
    }
    const prompt = fields.get('prompt');
    if (declineAt && prompt === declineAt) {
      // The consent page's "Cancel": oidc-provider's abort route.
      url = new URL(form[1].replace(/\/?$/, '/abort'), url).href;
      declined = true;
      method = 'GET';
      body = undefined;
      continue;
    }
    url = new URL(form[1], url).href;
    method = 'POST';
    body = fields.toString();
  }
  throw new Error('the sign-in pages did not finish in 20 steps');
}

provider.listen(port, '127.0.0.1', () => {
  const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  out({ port, issuer, kid: jwk.kid, alg: jwk.alg, pem });
});

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const cmd = JSON.parse(line);
  try {
    if (cmd.approve) {
      out({ event: 'ack', id: cmd.id ?? null, page: await person(cmd.approve, cmd.login, null) });
    } else if (cmd.deny) {
      out({ event: 'ack', id: cmd.id ?? null, page: await person(cmd.deny, cmd.login ?? 'someone@test', 'consent') });
    } else {
      out({ event: 'ack', id: cmd.id ?? null });
    }
  } catch (e) {
    out({ event: 'ack', id: cmd.id ?? null, error: String(e) });
  }
});
rl.on('close', () => process.exit(0));
