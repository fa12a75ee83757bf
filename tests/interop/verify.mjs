#!/usr/bin/env node
// Verifies svctoken JWTs with `jose` (npm), an implementation independent of ours.
//
// stdin:  {"jwks_uri": "http://127.0.0.1:PORT/...", "cases": [{"token", "issuer", "audience", "algorithms"}]}
//         ("jwks": {"keys": [...]} inline instead of "jwks_uri")
// stdout: {"implementation": "node-jose <version>",
//          "results": [{"ok": true, "claims": {...}} | {"ok": false, "error": "<code>: <message>"}]}
//         one result per case, in case order.
// exit:   0 when it ran (whatever the verdicts), 2 for bad input, 3 when `jose` is not installed
//         (run scripts/install-test-deps).

import { readFile } from 'node:fs/promises';

const EXIT_BAD_INPUT = 2;
const EXIT_NOT_INSTALLED = 3;
const REQUIRED_CLAIMS = ['exp', 'iat', 'iss', 'sub', 'aud'];

function fail(code, message) {
  process.stderr.write(`verify.mjs: ${message}\n`);
  process.exit(code);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function isNonEmptyString(v) {
  return typeof v === 'string' && v.length > 0;
}

function parseInput(text) {
  let input;
  try {
    input = JSON.parse(text);
  } catch (e) {
    fail(EXIT_BAD_INPUT, `stdin is not JSON: ${e.message}`);
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    fail(EXIT_BAD_INPUT, 'stdin must be a JSON object');
  }
  const hasUri = input.jwks_uri !== undefined;
  const hasInline = input.jwks !== undefined;
  if (hasUri === hasInline) fail(EXIT_BAD_INPUT, 'give exactly one of "jwks_uri" and "jwks"');
  if (hasUri) {
    if (!isNonEmptyString(input.jwks_uri)) fail(EXIT_BAD_INPUT, '"jwks_uri" must be a string');
    try {
      const url = new URL(input.jwks_uri);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
    } catch (e) {
      fail(EXIT_BAD_INPUT, `"jwks_uri" is not an http(s) URL: ${e.message}`);
    }
  } else if (input.jwks === null || typeof input.jwks !== 'object' || !Array.isArray(input.jwks.keys)) {
    fail(EXIT_BAD_INPUT, '"jwks" must be an object with a "keys" array');
  }
  if (!Array.isArray(input.cases)) fail(EXIT_BAD_INPUT, '"cases" must be an array');
  input.cases.forEach((c, i) => {
    if (c === null || typeof c !== 'object') fail(EXIT_BAD_INPUT, `case ${i} is not an object`);
    for (const field of ['token', 'issuer', 'audience']) {
      if (!isNonEmptyString(c[field])) fail(EXIT_BAD_INPUT, `case ${i}: "${field}" must be a non-empty string`);
    }
    if (!Array.isArray(c.algorithms) || c.algorithms.length === 0 || !c.algorithms.every(isNonEmptyString)) {
      fail(EXIT_BAD_INPUT, `case ${i}: "algorithms" must be a non-empty array of strings`);
    }
  });
  return input;
}

async function joseVersion() {
  try {
    const pkg = JSON.parse(await readFile(new URL('./node_modules/jose/package.json', import.meta.url), 'utf8'));
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

function describe(err) {
  const code = err && typeof err.code === 'string' ? err.code : err && err.name ? err.name : 'Error';
  let message = err && err.message ? err.message : String(err);
  if (err && typeof err.claim === 'string') message += ` (claim "${err.claim}")`;
  if (err && err.cause && err.cause.message) message += ` (cause: ${err.cause.message})`;
  return `${code}: ${message}`;
}

async function main() {
  const input = parseInput(await readStdin());

  let jose;
  try {
    jose = await import('jose');
  } catch (e) {
    fail(EXIT_NOT_INSTALLED, `cannot load "jose" (${e.message}); run scripts/install-test-deps`);
  }

  const keySet = input.jwks_uri !== undefined
    ? jose.createRemoteJWKSet(new URL(input.jwks_uri))
    : jose.createLocalJWKSet(input.jwks);

  const results = [];
  for (const c of input.cases) {
    try {
      const { payload } = await jose.jwtVerify(c.token, keySet, {
        issuer: c.issuer,
        audience: c.audience,
        algorithms: c.algorithms,
        requiredClaims: REQUIRED_CLAIMS,
      });
      results.push({ ok: true, claims: payload });
    } catch (e) {
      results.push({ ok: false, error: describe(e) });
    }
  }

  process.stdout.write(`${JSON.stringify({ implementation: `node-jose ${await joseVersion()}`, results })}\n`);
}

main().catch((e) => fail(1, `internal error: ${e && e.stack ? e.stack : e}`));
