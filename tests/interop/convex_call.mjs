#!/usr/bin/env node
// Calls one Convex function with the official Convex JS client (`ConvexHttpClient` from
// `convex/browser`, `setAuth`), so the tests can see what that client sends and how it reads answers.
//
// stdin:  {"url": "http://127.0.0.1:PORT", "token": "<jwt>" | null,
//          "kind": "query" | "mutation" | "action", "path": "module:function", "args": {...}}
//         Inside "args", {"$bigint": "123"} stands for the BigInt 123n (an Int64 for Convex) and
//         {"$bytesB64": "<standard base64>"} for an ArrayBuffer (Convex bytes); all else is as is.
// stdout: {"convex": "<client version>", "ok": true, "value": <value>}
//       | {"convex": "<client version>", "ok": false, "error": "<message>", "name": "<Error class>",
//          "data": <ConvexError data, when the function error had errorData>}
//         value and data are Convex encoded JSON (`convexToJson`): Int64 {"$integer": ...}, bytes
//         {"$bytes": ...}. A failed call (HTTP 401, a function error, a refused connection) is
//         ok:false.
// exit:   0 when the call was made (whatever its outcome), 2 for bad input, 3 when `convex` is
//         not installed (run scripts/install-test-deps).

import { readFile } from 'node:fs/promises';

const EXIT_BAD_INPUT = 2;
const EXIT_NOT_INSTALLED = 3;
const KINDS = ['query', 'mutation', 'action'];

function fail(code, message) {
  process.stderr.write(`convex_call.mjs: ${message}\n`);
  process.exit(code);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Replaces the {"$bigint"} and {"$bytesB64"} markers by a BigInt and an ArrayBuffer.
function fromMarkers(value, at) {
  if (Array.isArray(value)) return value.map((v, i) => fromMarkers(v, `${at}[${i}]`));
  if (!isPlainObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === '$bigint') {
    const s = value.$bigint;
    if (typeof s !== 'string' || !/^-?[0-9]+$/.test(s)) fail(EXIT_BAD_INPUT, `${at}: "$bigint" must be a decimal string`);
    return BigInt(s);
  }
  if (keys.length === 1 && keys[0] === '$bytesB64') {
    const s = value.$bytesB64;
    const bytes = typeof s === 'string' ? Buffer.from(s, 'base64') : null;
    if (bytes === null || bytes.toString('base64') !== s) {
      fail(EXIT_BAD_INPUT, `${at}: "$bytesB64" must be standard padded base64`);
    }
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  }
  const out = {};
  for (const k of keys) out[k] = fromMarkers(value[k], `${at}.${k}`);
  return out;
}

function parseInput(text) {
  let input;
  try {
    input = JSON.parse(text);
  } catch (e) {
    fail(EXIT_BAD_INPUT, `stdin is not JSON: ${e.message}`);
  }
  if (!isPlainObject(input)) fail(EXIT_BAD_INPUT, 'stdin must be a JSON object');
  if (typeof input.url !== 'string' || input.url.length === 0) fail(EXIT_BAD_INPUT, '"url" must be a string');
  if (!(input.token === null || (typeof input.token === 'string' && input.token.length > 0))) {
    fail(EXIT_BAD_INPUT, '"token" must be a non-empty string or null');
  }
  if (!KINDS.includes(input.kind)) fail(EXIT_BAD_INPUT, `"kind" must be one of ${KINDS.join(', ')}`);
  if (typeof input.path !== 'string' || input.path.length === 0) fail(EXIT_BAD_INPUT, '"path" must be a string');
  if (!isPlainObject(input.args)) fail(EXIT_BAD_INPUT, '"args" must be a JSON object');
  return { ...input, args: fromMarkers(input.args, 'args') };
}

async function convexVersion() {
  try {
    const pkg = JSON.parse(await readFile(new URL('./node_modules/convex/package.json', import.meta.url), 'utf8'));
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

function describe(err) {
  let message = err && err.message !== undefined ? String(err.message) : String(err);
  if (err && err.cause && err.cause.message) message += ` (cause: ${err.cause.message})`;
  return message;
}

async function main() {
  const input = parseInput(await readStdin());

  let browser, server, values;
  try {
    browser = await import('convex/browser');
    server = await import('convex/server');
    values = await import('convex/values');
  } catch (e) {
    fail(EXIT_NOT_INSTALLED, `cannot load "convex" (${e.message}); run scripts/install-test-deps`);
  }

  const version = await convexVersion();
  let result;
  try {
    // logger: false keeps the function's logLines off stdout.
    const client = new browser.ConvexHttpClient(input.url, { logger: false });
    if (input.token !== null) client.setAuth(input.token);
    const ref = server.makeFunctionReference(input.path);
    const value = await client[input.kind](ref, input.args);
    result = { convex: version, ok: true, value: value === undefined ? null : values.convexToJson(value) };
  } catch (e) {
    result = { convex: version, ok: false, error: describe(e), name: e && e.name ? e.name : 'Error' };
    if (e && e.data !== undefined) result.data = values.convexToJson(e.data);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e) => fail(1, `internal error: ${e && e.stack ? e.stack : e}`));
