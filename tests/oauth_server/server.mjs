// The OAuth 2.0 authorization server of the OAuth tests: oauth2-mock-server
// on 127.0.0.1, signing real RS256 JWTs that Dovecot's passdb oauth2
// validates with the public key printed here.
//
// Usage: node server.mjs
// stdout, one JSON object a line: first {"port", "issuer", "kid", "pem"} once
// it listens; then {"event": "token", "grant_type", "body"} for every token
// request (what the client sent, the client secret and assertion included,
// so tests can count refreshes and check the JWT bearer assertion), and
// {"event": "ack", "id"} for each command.
// stdin, one JSON command a line, applied to the tokens issued after it:
//   {"id": N, "email": "a@b"}   the `email` and `sub` claims (Dovecot 2.3
//                                wants `sub`, and the SASL user must equal
//                                `email`); jwt_bearer tokens take the
//                                assertion's `sub` instead
//   {"id": N, "next_emails": ["x@y", ...]}   the next tokens carry these
//                                `email`s, one each, before `email` again
//                                (a token for the wrong user: one a mail
//                                server refuses)
//   {"id": N, "ttl": SECONDS}   lifetime of the tokens (exp and expires_in)
//   {"id": N, "fail": "invalid_grant"}   the next token request is refused
//                                with this OAuth error
//   {"id": N, "fail": null}     stop refusing
import { OAuth2Server, Events } from 'oauth2-mock-server';
import { createPublicKey } from 'node:crypto';
import { createInterface } from 'node:readline';

const state = { email: null, next_emails: [], ttl: 3600, fail: null };
const server = new OAuth2Server();
const key = await server.issuer.keys.generate('RS256');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

function assertionSub(body) {
  if (typeof body.assertion !== 'string') return null;
  const part = body.assertion.split('.')[1] ?? '';
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')).sub ?? null;
  } catch {
    return null;
  }
}

server.service.on(Events.BeforeTokenSigning, (token, req) => {
  const now = Math.floor(Date.now() / 1000);
  token.payload.exp = now + state.ttl;
  const email = state.next_emails.shift() ?? assertionSub(req.body) ?? state.email;
  if (email) {
    token.payload.email = email;
    token.payload.sub = email;
  }
});

server.service.on(Events.BeforeResponse, (response, req) => {
  out({ event: 'token', grant_type: req.body.grant_type, body: req.body });
  if (state.fail) {
    response.statusCode = 400;
    response.body = { error: state.fail, error_description: `refused by the test (${state.fail})` };
  } else if (response.body && response.body.access_token) {
    response.body.expires_in = state.ttl;
  }
});

await server.start(0, '127.0.0.1');
const port = server.address().port;
// The issuer keeps the name the tokens carry; Dovecot matches it exactly.
server.issuer.url = `http://localhost:${port}`;
const pem = createPublicKey({ key: key.toJSON ? key.toJSON() : key, format: 'jwk' })
  .export({ type: 'spki', format: 'pem' });
out({ port, issuer: server.issuer.url, kid: key.kid, pem });

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line);
  for (const k of ['email', 'next_emails', 'ttl', 'fail']) {
    if (k in cmd) state[k] = cmd[k];
  }
  out({ event: 'ack', id: cmd.id ?? null });
});
rl.on('close', async () => {
  await server.stop();
  process.exit(0);
});
