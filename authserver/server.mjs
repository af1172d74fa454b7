// The demo's authorization server: panva's oidc-provider (OpenID Certified), set up to give one
// confidential client RS256 JWT access tokens (RFC 9068) for the MCP server, with client
// credentials and resource indicators (RFC 8707). Nothing else: no users, no logins.
//
//   node authserver/keygen.mjs                       # once: authserver/keys.jwks.json
//   AS_CLIENT_SECRET=... node authserver/server.mjs  # then: Authorization server on http://127.0.0.1:9000
//
// Flags (env twins): --issuer URL (AS_ISSUER; it listens on that host:port), --resource URL
// (AS_RESOURCE; repeat it, or commas), --client-id ID (AS_CLIENT_ID), --keys PATH (a JWKS of
// private keys; the first one signs), --token-ttl SECONDS. The client secret comes only from the
// environment: AS_CLIENT_SECRET.
// When the key file changes (keygen.mjs --add / --remove-oldest) the keys are reloaded in place.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
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
  if (!secret) fail('set the client secret in the environment: AS_CLIENT_SECRET=...');
  return { issuer, resources, clientId: values['client-id'], secret, keysPath: values.keys, ttl };
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

function buildProvider({ issuer, resources, clientId, secret, ttl }, keys) {
  // Resources are matched as URLs (so HTTP://LOCALHOST:8000/mcp is ours too); the audience is
  // always the configured spelling, which is what the MCP server compares.
  const ours = new Map(resources.map((r) => [new URL(r).href, r]));
  const provider = new Provider(issuer.origin, {
    clients: [
      {
        client_id: clientId,
        client_secret: secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys },
    scopes: SCOPES.split(' '), // listed in the metadata's scopes_supported
    ttl: { ClientCredentials: ttl }, // the resource's accessTokenTTL wins; this quiets a notice
    features: {
      devInteractions: { enabled: false },
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
  // One line per token, never the token itself.
  provider.on('client_credentials.issued', (token) => {
    const scope = token.scope ? `"${token.scope}"` : 'none';
    console.log(
      `token issued: client ${token.clientId}, resource ${token.resourceServer?.audience}, scope ${scope}, ` +
        `kid ${keys[0].kid}, expires in ${ttl} s`,
    );
  });
  provider.on('grant.error', (ctx, error) => {
    const client = ctx.oidc?.client?.clientId ?? ctx.oidc?.params?.client_id ?? 'unknown';
    console.log(`token refused: ${error.error} (${error.error_description}), client ${client}`);
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
