// Makes the authorization server's signing keys: a JWKS of private RS256 2048-bit RSA keys, each
// with a kid (its RFC 7638 thumbprint), in a file only its owner can read (mode 0600).
//
//   node authserver/keygen.mjs [--out PATH]           # a new file with one key (refuses to overwrite)
//   node authserver/keygen.mjs --add                  # rotation: a new key first (it signs), old ones stay published
//   node authserver/keygen.mjs --remove-oldest        # removal: drop the last key
//
// PATH defaults to authserver/keys.jwks.json. The server reloads the file when it changes.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

function fail(message) {
  console.error(`keygen: ${message}`);
  process.exit(1);
}

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  const kid = createHash('sha256').update(canonical).digest('base64url');
  return { kid, alg: 'RS256', use: 'sig', ...jwk };
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      out: { type: 'string', default: fileURLToPath(new URL('keys.jwks.json', import.meta.url)) },
      add: { type: 'boolean', default: false },
      'remove-oldest': { type: 'boolean', default: false },
    },
  }));
} catch (error) {
  fail(error.message);
}
const path = values.out;
const shown = relative('', path).startsWith('..') ? path : relative('', path);
const changing = values.add || values['remove-oldest'];

let keys = [];
let text;
try {
  text = readFileSync(path, 'utf8');
} catch (error) {
  if (error.code !== 'ENOENT') fail(`cannot read ${shown}: ${error.message}`);
  if (changing) fail(`no key file at ${shown}: make one first with \`node authserver/keygen.mjs --out ${shown}\``);
}
if (text !== undefined) {
  if (!changing) fail(`${shown} exists: --add rotates it, --remove-oldest retires its oldest key`);
  try {
    keys = JSON.parse(text).keys;
  } catch (error) {
    fail(`${shown} is not valid JSON: ${error.message}`);
  }
  if (!Array.isArray(keys)) fail(`${shown} holds no "keys" list`);
}

if (values.add || !changing) keys.unshift(newKey());
if (values['remove-oldest']) {
  if (keys.length < 2) fail(`${shown} has only one key: --add a new one before removing the oldest`);
  keys.pop();
}

// Written beside the target, then renamed over it: a reader never sees half a file (and the
// name of the temporary one matches the .gitignore's *.jwks.json too).
const temporary = join(dirname(path), `.tmp-${randomBytes(4).toString('hex')}.jwks.json`);
writeFileSync(temporary, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
chmodSync(temporary, 0o600);
renameSync(temporary, path);
const others = keys.slice(1).map((k) => k.kid);
console.log(`${shown}: signing kid ${keys[0].kid}` + (others.length ? `, also published: ${others.join(', ')}` : ''));
