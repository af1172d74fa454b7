// The demo's authorization server: panva's oidc-provider (OpenID Certified), set up to give RS256
// JWT access tokens (RFC 9068) for the MCP server (resource indicators, RFC 8707) in three ways:
// - client credentials, the client proving itself with its own key (private_key_jwt, RFC 7523):
//   --client-key PEM registers the public key of client --client-id;
// - client credentials with a shared secret: AS_CLIENT_SECRET (the same --client-id);
// - a user's login (authorization code + PKCE) with --login: dynamic client registration and
//   oidc-provider's development login and consent pages (any name, any password; not for
//   production: docs/identity-providers.md names real providers).
//
//   node authserver/keygen.mjs                                  # once: authserver/keys.jwks.json
//   node authserver/server.mjs --client-key public.pem --login  # Authorization server on http://127.0.0.1:9000
//
// Flags (env twins): --issuer URL (AS_ISSUER; it listens on that host:port), --resource URL
// (AS_RESOURCE; repeat it, or commas), --client-id ID (AS_CLIENT_ID), --client-key PEM,
// --login, --keys PATH (a JWKS of private keys; the first one signs), --token-ttl SECONDS. A
// client secret comes only from the environment: AS_CLIENT_SECRET.
// When the key file changes (keygen.mjs --add / --remove-oldest) the keys are reloaded in place.
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { readFileSync, watchFile } from 'node:fs';
import { createServer } from 'node:http';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SCOPES = 'read write admin';

function fail(message) {
  console.error(`authserver: ${message}`);
  process.exit(1);
}

// A path as the user would type it from here.
const shown = (path) => (relative('', path).startsWith('..') ? path : relative('', path));

function settings() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        issuer: { type: 'string', default: process.env.AS_ISSUER ?? 'http://127.0.0.1:9000' },
        resource: { type: 'string', multiple: true },
        'client-id': { type: 'string', default: process.env.AS_CLIENT_ID ?? 'demo-client' },
        'client-key': { type: 'string' },
        login: { type: 'boolean', default: false },
        keys: { type: 'string', default: fileURLToPath(new URL('keys.jwks.json', import.meta.url)) },
        'token-ttl': { type: 'string', default: '300' },
      },
    }));
  } catch (error) {
    fail(error.message);
  }
  const issuer = URL.parse(values.issuer);
  if (!issuer || issuer.protocol !== 'http:' || !['', '/'].includes(issuer.pathname) || issuer.search) {
    fail(`--issuer must be a plain http://host:port URL without a path, not ${values.issuer}`);
  }
  const resources = (values.resource ?? [process.env.AS_RESOURCE ?? 'http://localhost:8000/mcp'])
    .flatMap((r) => r.split(','))
    .map((r) => r.trim())
    .filter(Boolean);
  for (const r of resources) {
    if (!URL.canParse(r) || r.includes('#')) fail(`--resource must be an absolute URL, not ${r}`);
  }
  const ttl = Number(values['token-ttl']);
  if (!Number.isInteger(ttl) || ttl < 1) fail(`--token-ttl must be whole seconds, not ${values['token-ttl']}`);
  const secret = process.env.AS_CLIENT_SECRET;
  const clientJwk = values['client-key'] && publicJwk(values['client-key']);
  if (!secret && !clientJwk && !values.login) {
    fail('no way to a token: give --client-key PEM, AS_CLIENT_SECRET=... or --login');
  }
  if (secret && clientJwk) fail('--client-key or AS_CLIENT_SECRET: a client proves itself one way');
  const clientId = values['client-id'];
  return { issuer, resources, clientId, secret, clientJwk, login: values.login, keysPath: values.keys, ttl };
}

// The public half of the client's key, as a JWK: an RSA key (RS256) or a P-256 one (ES256).
function publicJwk(path) {
  let jwk;
  try {
    jwk = createPublicKey(readFileSync(path)).export({ format: 'jwk' });
  } catch (error) {
    fail(`--client-key ${shown(path)}: ${error.message.split('\n')[0]} (a PEM public or private key)`);
  }
  if (jwk.kty !== 'RSA' && jwk.crv !== 'P-256') fail(`--client-key ${shown(path)}: an RSA or P-256 key, not ${jwk.crv ?? jwk.kty}`);
  return jwk;
}

function worksFor(jwk) {
  try {
    const signature = sign('sha256', Buffer.from('probe'), createPrivateKey({ key: jwk, format: 'jwk' }));
    const { d, p, q, dp, dq, qi, ...publicPart } = jwk;
    return verify('sha256', Buffer.from('probe'), createPublicKey({ key: publicPart, format: 'jwk' }), signature);
  } catch {
    return false;
  }
}

// Reads the JWKS of private keys; returns an error message instead of throwing.
function readKeys(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') {
      return { error: `no key file at ${shown(path)}: make one with \`node authserver/keygen.mjs --out ${shown(path)}\`` };
    }
    return { error: `cannot read ${shown(path)}: ${error.message}` };
  }
  let jwks;
  try {
    jwks = JSON.parse(text);
  } catch (error) {
    return { error: `${shown(path)} is not valid JSON: ${error.message}` };
  }
  const keys = jwks?.keys;
  if (!Array.isArray(keys) || keys.length === 0) return { error: `${shown(path)} holds no "keys" list` };
  for (const key of keys) {
    if (key.kty !== 'RSA' || !key.d || !key.kid) {
      return { error: `${shown(path)}: every key must be a private RSA JWK with a "kid" (made by keygen.mjs)` };
    }
    if (!worksFor(key)) return { error: `${shown(path)}: key ${key.kid} cannot sign what its public part verifies` };
  }
  return { keys };
}

// The registered clients: the machine client (--client-id) proving itself with its key or its
// secret; with --login, also `demo-login`, a public client (PKCE, no secret) of a user's app: as
// a native app (RFC 8252) its loopback callback may take any port. Others register themselves.
function clientsOf({ clientId, secret, clientJwk, login }) {
  const machine = { client_id: clientId, grant_types: ['client_credentials'], redirect_uris: [], response_types: [] };
  const clients = [];
  if (clientJwk) clients.push({ ...machine, jwks: { keys: [clientJwk] }, token_endpoint_auth_method: 'private_key_jwt' });
  if (secret) clients.push({ ...machine, client_secret: secret, token_endpoint_auth_method: 'client_secret_basic' });
  const callbacks = ['http://localhost/callback', 'http://127.0.0.1/callback'];
  const user = { client_id: 'demo-login', application_type: 'native', token_endpoint_auth_method: 'none' };
  if (login) clients.push({ ...user, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: callbacks });
  return clients;
}

function buildProvider({ issuer, resources, ttl, ...config }, keys) {
  const { login } = config;
  // Resources are matched as URLs (so HTTP://LOCALHOST:8000/mcp is ours too); the audience is
  // always the configured spelling, which is what the MCP server compares.
  const ours = new Map(resources.map((r) => [new URL(r).href, r]));
  const provider = new Provider(issuer.origin, {
    clients: clientsOf(config),
    jwks: { keys },
    scopes: SCOPES.split(' '), // listed in the metadata's scopes_supported
    // The resource's accessTokenTTL wins; the others: a short code, a session of a day.
    ttl: { ClientCredentials: ttl, AccessToken: ttl, AuthorizationCode: 60, Grant: 86400, Interaction: 600, RefreshToken: 86400, Session: 86400 },
    findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }), // the login name
    // MCP clients ask for no offline_access; their refresh grant is what allows refresh tokens.
    issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // The default rule, without its notice: CORS only for a public client's own redirect origin.
    clientBasedCORS: (ctx, origin, client) =>
      client.clientAuthMethod === 'none' && client.redirectUris.some((u) => URL.parse(u)?.origin === origin),
    cookies: { keys: [randomBytes(32).toString('base64url')] }, // this run's: sessions end with it
    features: {
      devInteractions: { enabled: login }, // GET /interaction/:uid: the login page, then consent
      registration: { enabled: login }, // POST /reg (RFC 7591), open: MCP clients register themselves
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A token without a resource would be opaque: useless to a JWT-verifying MCP server.
        defaultResource() {
          throw new errors.InvalidTarget('ask for a token for a resource: resource=<the MCP server URL>');
        },
        getResourceServerInfo(ctx, resource) {
          const audience = ours.get(URL.parse(resource)?.href);
          if (!audience) throw new errors.InvalidTarget(`${resource} is not a resource of this server`);
          return {
            scope: SCOPES,
            audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: ttl,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  // MCP clients register with the scope of the server's first challenge ("read"); oidc-provider
  // would then refuse them any other scope, so the step-up to "admin" could never succeed. RFC
  // 7591 lets a server change what a client asked for: here, registrations carry no scope, and
  // the consent page decides.
  provider.use(async (ctx, next) => {
    if (login && ctx.method === 'POST' && ctx.path === '/reg' && ctx.is('application/json')) {
      const chunks = [];
      let size = 0;
      for await (const chunk of ctx.req) {
        size += chunk.length;
        if (size > 56 * 1024) ctx.throw(413, 'registration too large'); // oidc-provider's own cap
        chunks.push(chunk);
      }
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
      } catch {
        ctx.throw(400, 'registration is not JSON');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) ctx.throw(400, 'registration is not an object');
      delete body.scope;
      ctx.req.body = body; // oidc-provider takes a body parsed already (it warns once)
    }
    await next();
  });
  // One line per token, never the token itself.
  provider.on('access_token.issued', (token) => {
    // JSON-quoted: a login name or a client id with a newline cannot forge a line
    console.log(`token issued: user ${JSON.stringify(token.accountId)}, client ${JSON.stringify(token.clientId)}, scope "${token.scope}"`);
  });
  provider.on('registration_create.success', (ctx, client) => console.log(`client registered: ${JSON.stringify(client.clientId)}`));
  provider.on('client_credentials.issued', (token) => {
    const scope = token.scope ? `"${token.scope}"` : 'none';
    console.log(
      `token issued: client ${token.clientId}, resource ${token.resourceServer?.audience}, scope ${scope}, ` +
        `kid ${keys[0].kid}, expires in ${ttl} s`,
    );
  });
  provider.on('grant.error', (ctx, error) => {
    const client = ctx.oidc?.client?.clientId ?? ctx.oidc?.params?.client_id ?? 'unknown';
    const detail = error.error_detail ? `: ${error.error_detail}` : '';
    console.log(`token refused: ${error.error} (${error.error_description}${detail}), client ${JSON.stringify(client)}`);
  });
  provider.on('server_error', (ctx, error) => console.error(`authserver: server error: ${error.stack}`));
  return provider;
}

function describe(keys) {
  return `signing kid ${keys[0].kid}` + (keys.length > 1 ? `, also published: ${keys.slice(1).map((k) => k.kid).join(', ')}` : '');
}

const config = settings();
const loaded = readKeys(config.keysPath);
if (loaded.error) fail(loaded.error);
// Imported once the settings are known good: it warns about Node < 22 as it loads.
const { default: Provider, errors } = await import('oidc-provider');
let handler;
try {
  handler = buildProvider(config, loaded.keys).callback();
} catch (error) {
  fail(`${shown(config.keysPath)}: ${error.message}`);
}

// Key rotation without a restart: the key file is polled (works with editors and renames);
// a new set replaces the provider in place, a broken file keeps the current keys.
watchFile(config.keysPath, { interval: 1000 }, (now, before) => {
  if (now.mtimeMs === before.mtimeMs && now.ino === before.ino) return;
  const reloaded = readKeys(config.keysPath);
  if (reloaded.error) {
    console.error(`authserver: keeping the current keys: ${reloaded.error}`);
    return;
  }
  try {
    handler = buildProvider(config, reloaded.keys).callback();
  } catch (error) {
    console.error(`authserver: keeping the current keys: ${shown(config.keysPath)}: ${error.message}`);
    return;
  }
  console.log(`keys reloaded: ${describe(reloaded.keys)}`);
});

const server = createServer((req, res) => handler(req, res));
server.on('error', (error) => {
  if (error.code === 'EADDRINUSE') fail(`${config.issuer.host} is already in use: stop what runs there or pick another --issuer`);
  fail(`cannot listen on ${config.issuer.host}: ${error.message}`);
});
server.listen(Number(config.issuer.port || 80), config.issuer.hostname.replace(/^\[|\]$/g, ''), () => {
  console.log(`Authorization server on ${config.issuer.origin}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
