// Mints compact JWTs with jose (the npm package, installed for the tests'
// push service in tests/push-service/node_modules), for test_jwt.py: tokens
// made by a library other than the one the Python side uses.
//
// Reads one JSON request on stdin, or an array of them:
//   {"alg": "RS256", "jwk": {...private JWK...}, "kid": "rsa-1",
//    "claims": {"sub": "alice", "exp": 1700000000, ...}}
// (kid optional; an HS256 key is a JWK {"kty": "oct", "k": base64url}) and
// prints the compact JWT, one line per request, in order.
//
// Run: node tests/integration/jwt_mint.mjs < request.json
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const pushService = fileURLToPath(new URL('../push-service/package.json', import.meta.url));
const { SignJWT, importJWK } = createRequire(pushService)('jose');

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin)
    chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function mint(request) {
  const { alg, jwk, kid, claims } = request;
  if (typeof alg !== 'string' || typeof jwk !== 'object' || typeof claims !== 'object')
    throw new Error('a request needs alg, jwk and claims');
  const key = await importJWK(jwk, alg);
  const header = { alg, typ: 'JWT' };
  if (kid !== undefined)
    header.kid = kid;
  // SignJWT signs the claims as given: exp, nbf, iat, aud... are taken
  // from the request, none is added.
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

async function main() {
  const parsed = JSON.parse(await readStdin());
  const requests = Array.isArray(parsed) ? parsed : [parsed];
  const tokens = [];
  for (const request of requests)
    tokens.push(await mint(request));
  process.stdout.write(tokens.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write('jwt_mint: ' + (e && e.stack ? e.stack : String(e)) + '\n');
  process.exit(1);
});
