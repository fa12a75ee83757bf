/**
 * One token request, as RFC 6749 (client credentials), RFC 7523 (`private_key_jwt`) and
 * OpenID Connect Discovery describe it: find the token endpoint, authenticate, read the answer.
 * The caching and refreshing are in `tokenSource.ts`.
 *
 * @internal
 * @module
 */
import { createPrivateKey, randomBytes, type KeyObject } from "node:crypto";
import { SignJWT } from "jose";

import { ConfigError, DiscoveryError, NetworkError, OAuthError, ProtocolError } from "./errors.js";

/** `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2). */
const JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** A client assertion is valid this long; the issuer accepts at most five minutes. */
const ASSERTION_LIFETIME_SECS = 60;

/** The largest answer read from the issuer. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** How the client proves who it is. */
export type Credential =
  | { readonly kind: "secret"; readonly secret: string }
  | { readonly kind: "key"; readonly key: KeyObject; readonly alg: string; readonly kid: string | undefined };

/** What a token request needs, fixed when the source is created. */
export interface RequestPlan {
  readonly issuer: string;
  readonly tokenEndpoint: string | undefined;
  readonly clientId: string;
  readonly credential: Credential;
  readonly audience: string | undefined;
  readonly scope: string | undefined;
  readonly subject: string | undefined;
  readonly timeoutMs: number;
  readonly fetch: typeof globalThis.fetch;
}

/** A successful token answer, with the time the request was sent. */
export interface Fetched {
  readonly accessToken: string;
  /** Milliseconds, from `expires_in` (or the token's own `exp - iat` when absent). */
  readonly lifetimeMs: number | undefined;
  /** The local clock when the request was sent: expiry counts from here, never from `iat`. */
  readonly requestedAt: number;
}

/** The parts of the discovery document a client uses. */
export interface Discovered {
  /** The `issuer` member: the audience of client assertions. */
  readonly issuer: string;
  readonly tokenEndpoint: string;
}

/**
 * Reads a private key for `private_key_jwt`: a PEM (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY`
 * or PKCS#1 `RSA PRIVATE KEY`), a JWK object or its JSON text. Its algorithm follows from the
 * key (P-256: ES256, RSA of 2048 bits or more: RS256, Ed25519: EdDSA), as the issuer pins it.
 */
export function readPrivateKey(privateKey: string | JsonWebKeyLike): Credential {
  if (isPublicKey(privateKey)) {
    throw new ConfigError("privateKey holds a public key: private_key_jwt signs with the private key");
  }
  let key: KeyObject;
  let kid: string | undefined;
  try {
    if (typeof privateKey === "string" && privateKey.trimStart().startsWith("-----BEGIN")) {
      key = createPrivateKey({ key: privateKey, format: "pem" });
    } else {
      const jwk = typeof privateKey === "string" ? (JSON.parse(privateKey) as unknown) : privateKey;
      if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) {
        throw new TypeError("not a JSON object");
      }
      const { kid: jwkKid } = jwk as { kid?: unknown };
      kid = typeof jwkKid === "string" ? jwkKid : undefined;
      key = createPrivateKey({ key: jwk as import("node:crypto").JsonWebKey, format: "jwk" });
    }
  } catch (e) {
    // The cause would carry key material in some Node versions' messages: leave it out.
    throw new ConfigError(
      `privateKey is not a readable private key (${describe(e)}): give a PEM (PKCS#8, SEC1 or PKCS#1) or a private JWK`,
    );
  }
  if (key.type !== "private") {
    throw new ConfigError("privateKey holds a public key: private_key_jwt signs with the private key");
  }
  return { kind: "key", key, alg: algorithmOf(key), kid };
}

/** A PEM `PUBLIC KEY` / `RSA PUBLIC KEY`, or a JWK without its private member `d`. */
function isPublicKey(key: string | JsonWebKeyLike): boolean {
  if (typeof key === "string") {
    if (/-----BEGIN (RSA )?PUBLIC KEY-----/.test(key)) return true;
    if (key.trimStart().startsWith("-----BEGIN")) return false;
    try {
      const parsed = JSON.parse(key) as unknown;
      return parsed !== null && typeof parsed === "object" && !("d" in parsed);
    } catch {
      return false;
    }
  }
  return !("d" in key);
}

/** A private JWK, as an object. */
export type JsonWebKeyLike = Readonly<Record<string, unknown>>;

function algorithmOf(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case "ec":
      if (details?.namedCurve === "prime256v1" || details?.namedCurve === "P-256") return "ES256";
      throw new ConfigError(
        `privateKey is an EC key on ${details?.namedCurve ?? "an unknown curve"}: svctoken clients sign with P-256 (ES256)`,
      );
    case "rsa":
      if ((details?.modulusLength ?? 0) < 2048) {
        throw new ConfigError("privateKey is an RSA key under 2048 bits: use 2048 bits or more (RS256)");
      }
      return "RS256";
    case "ed25519":
      return "EdDSA";
    default:
      throw new ConfigError(
        `privateKey is a ${key.asymmetricKeyType ?? "unknown"} key: use P-256 (ES256), RSA (RS256) or Ed25519 (EdDSA)`,
      );
  }
}

/** An exception's message, or its type: never its whole value. */
function describe(e: unknown): string {
  if (e instanceof Error) return e.message.split("\n")[0] ?? e.name;
  return typeof e;
}

/** The issuer as configured, without a trailing `/`. */
export function normalizeIssuer(issuer: string): string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new ConfigError(`issuer ${JSON.stringify(issuer)} is not a URL: give the issuer's https URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError(`issuer ${JSON.stringify(issuer)} is not an http(s) URL`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new ConfigError(`issuer ${JSON.stringify(issuer)} has a query or fragment: an issuer URL has neither`);
  }
  return issuer.replace(/\/+$/, "");
}

/**
 * Fetches `<issuer>/.well-known/openid-configuration` and applies the mix-up check: the
 * document's `issuer` must be the one asked (trailing `/` aside), else a permanent
 * {@link DiscoveryError}.
 */
export async function discover(plan: RequestPlan): Promise<Discovered> {
  const url = `${plan.issuer}/.well-known/openid-configuration`;
  let response: Response;
  try {
    response = await plan.fetch(url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(plan.timeoutMs),
      redirect: "error",
    });
  } catch (e) {
    throw new DiscoveryError(`discovery at ${url} failed: ${networkReason(e, plan.timeoutMs)}`, false, { cause: e });
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new DiscoveryError(`discovery at ${url} answered HTTP ${response.status}`, false);
  }
  const doc = await readJson(response, `discovery at ${url}`, (m) => new DiscoveryError(m, false));
  const issuer = stringMember(doc, "issuer");
  const tokenEndpoint = stringMember(doc, "token_endpoint");
  if (issuer === undefined || tokenEndpoint === undefined) {
    throw new DiscoveryError(`discovery at ${url} has no string "issuer" and "token_endpoint"`, false);
  }
  if (issuer.replace(/\/+$/, "") !== plan.issuer) {
    throw new DiscoveryError(
      `discovery at ${url} is for issuer ${JSON.stringify(issuer)}, not ${JSON.stringify(plan.issuer)} ` +
        "(a mix-up: check the issuer option)",
      true,
    );
  }
  checkEndpoint(tokenEndpoint, plan.issuer, (m) => new DiscoveryError(`discovery at ${url}: ${m}`, true));
  return { issuer, tokenEndpoint };
}

/** The token endpoint must be https, or http only when the issuer itself is. */
export function checkEndpoint(endpoint: string, issuer: string, fail: (message: string) => Error): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw fail(`token endpoint ${JSON.stringify(endpoint)} is not a URL`);
  }
  const allowed = issuer.startsWith("http:") ? ["https:", "http:"] : ["https:"];
  if (!allowed.includes(url.protocol)) {
    throw fail(`token endpoint ${endpoint} is not https while the issuer is`);
  }
}

/** Sends one token request to `endpoint`; `assertionAudience` is the discovered issuer. */
export async function requestToken(
  plan: RequestPlan,
  endpoint: string,
  assertionAudience: string,
  now: () => number,
): Promise<Fetched> {
  const form = new URLSearchParams({ grant_type: "client_credentials" });
  if (plan.audience !== undefined) form.set("audience", plan.audience);
  if (plan.scope !== undefined) form.set("scope", plan.scope);
  if (plan.subject !== undefined) form.set("subject", plan.subject);
  const headers: Record<string, string> = {
    accept: "application/json",
    "content-type": "application/x-www-form-urlencoded",
  };
  const credential = plan.credential;
  if (credential.kind === "secret") {
    // RFC 6749 section 2.3.1: each part is form-urlencoded, then the pair base64.
    const pair = `${formEncode(plan.clientId)}:${formEncode(credential.secret)}`;
    headers.authorization = `Basic ${Buffer.from(pair, "utf8").toString("base64")}`;
  } else {
    form.set("client_id", plan.clientId);
    form.set("client_assertion_type", JWT_BEARER_ASSERTION);
    form.set("client_assertion", await assertion(plan.clientId, credential, assertionAudience, now));
  }
  const requestedAt = now();
  let response: Response;
  try {
    response = await plan.fetch(endpoint, {
      method: "POST",
      headers,
      body: form.toString(),
      signal: AbortSignal.timeout(plan.timeoutMs),
      redirect: "error",
    });
  } catch (e) {
    throw new NetworkError(`token request to ${endpoint} failed: ${networkReason(e, plan.timeoutMs)}`, { cause: e });
  }
  const what = `the token endpoint ${endpoint}`;
  if (!response.ok) {
    const body = await readJson(response, what, (m) => new ProtocolError(m)).catch(() => undefined);
    const error = body === undefined ? undefined : stringMember(body, "error");
    if (error === undefined) {
      throw new ProtocolError(`${what} answered HTTP ${response.status} without an OAuth error body`);
    }
    const description = stringMember(body ?? {}, "error_description");
    throw new OAuthError(response.status, error, description, retryAfterMs(response.headers.get("retry-after")));
  }
  const body = await readJson(response, what, (m) => new ProtocolError(m));
  const accessToken = stringMember(body, "access_token");
  const tokenType = stringMember(body, "token_type");
  if (accessToken === undefined || accessToken === "") {
    throw new ProtocolError(`${what} answered without an access_token`);
  }
  if (tokenType?.toLowerCase() !== "bearer") {
    throw new ProtocolError(`${what} answered token_type ${JSON.stringify(tokenType)}, not Bearer`);
  }
  const expiresIn = body.expires_in;
  let lifetimeMs: number | undefined;
  if (typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0) {
    lifetimeMs = expiresIn * 1000;
  } else if (expiresIn !== undefined) {
    throw new ProtocolError(`${what} answered expires_in ${JSON.stringify(expiresIn)}, not a positive number`);
  }
  return { accessToken, lifetimeMs, requestedAt };
}

/** A one-minute assertion: `iss` = `sub` = client id, `aud` = the issuer, a random `jti`. */
async function assertion(
  clientId: string,
  credential: Extract<Credential, { kind: "key" }>,
  audience: string,
  now: () => number,
): Promise<string> {
  const iat = Math.floor(now() / 1000);
  const header: { alg: string; typ: string; kid?: string } = { alg: credential.alg, typ: "JWT" };
  if (credential.kid !== undefined) header.kid = credential.kid;
  return await new SignJWT({})
    .setProtectedHeader(header)
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ASSERTION_LIFETIME_SECS)
    .setJti(randomBytes(16).toString("base64url"))
    .sign(credential.key);
}

/** `application/x-www-form-urlencoded` encoding of one value. */
function formEncode(s: string): string {
  return new URLSearchParams({ s }).toString().slice(2);
}

async function readJson(
  response: Response,
  what: string,
  fail: (message: string) => Error,
): Promise<Record<string, unknown>> {
  const length = Number(response.headers.get("content-length") ?? "0");
  if (length > MAX_ANSWER_BYTES) {
    await response.body?.cancel();
    throw fail(`${what} answered ${length} bytes, more than ${MAX_ANSWER_BYTES}`);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (e) {
    throw fail(`${what}: reading the answer failed: ${describe(e)}`);
  }
  if (text.length > MAX_ANSWER_BYTES) throw fail(`${what} answered more than ${MAX_ANSWER_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw fail(`${what} answered HTTP ${response.status} with a body that is not JSON`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw fail(`${what} answered HTTP ${response.status} with JSON that is not an object`);
  }
  return value as Record<string, unknown>;
}

function stringMember(o: Record<string, unknown>, name: string): string | undefined {
  const v = o[name];
  return typeof v === "string" ? v : undefined;
}

/** `Retry-After` in milliseconds: delta-seconds or an HTTP date; absent or unreadable: none. */
export function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^[0-9]+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function networkReason(e: unknown, timeoutMs: number): string {
  if (e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError")) {
    return `no answer within ${timeoutMs} ms`;
  }
  const cause = e instanceof Error ? (e.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === "string" ? ` (${cause.code})` : "";
  return `${describe(e)}${code}`;
}
