/**
 * `createTokenSource`: svctoken tokens that are always ready.
 *
 * - One token is cached. When a quarter of its lifetime is left (up to a tenth more, at random,
 *   so a fleet of processes doesn't refresh in step), the next call starts one background
 *   request and keeps getting the current token meanwhile.
 * - Any number of concurrent callers that need a token cause one request (single flight).
 * - A failed refresh keeps the current token in service while it is valid and retries with
 *   exponential backoff and jitter (at least the issuer's `Retry-After`). Once it has expired,
 *   callers get the error. Permanent errors (`invalid_client`, a discovery document for another
 *   issuer) are not retried until `forceRefresh()`.
 * - Expiry counts from the local time the request was sent plus `expires_in`, never from the
 *   token's `iat`/`exp`, so a skewed clock on either side changes nothing.
 *
 * @module
 */
import { decodeJwt } from "jose";

import { ConfigError, NetworkError, SvctokenError } from "./errors.js";
import {
  checkEndpoint,
  discover,
  normalizeIssuer,
  readPrivateKey,
  requestToken,
  type Credential,
  type Discovered,
  type Fetched,
  type JsonWebKeyLike,
  type RequestPlan,
} from "./oauth.js";

/** What {@link createTokenSource} needs. */
export interface TokenSourceOptions {
  /**
   * The issuer URL exactly as the issuer publishes it (`https://auth.example.com`). The token
   * endpoint is found through `<issuer>/.well-known/openid-configuration`, whose `issuer` must
   * be this one (the mix-up check).
   */
  readonly issuer: string;
  /** The client id registered with the issuer (a `[[clients]]` block). */
  readonly clientId: string;
  /** The client secret: sent with `client_secret_basic`. Give this or `privateKey`. */
  readonly clientSecret?: string;
  /**
   * The client's private key, for `private_key_jwt` (no secret is sent; each request carries a
   * one-minute assertion with a fresh `jti`): a PEM (PKCS#8, SEC1 `EC PRIVATE KEY`, PKCS#1) or
   * a private JWK (object or JSON). The issuer must hold its public key (`svctoken clients add
   * --jwk-file`).
   */
  readonly privateKey?: string | JsonWebKeyLike;
  /** The `aud` to ask for (`"convex"`); the client's only audience when omitted. */
  readonly audience?: string;
  /** Scopes to ask for (a subset of the client's); all of them when omitted. */
  readonly scope?: string | readonly string[];
  /** Act for this subject (`"user:42"`): `sub` is the user and `act.sub` the service. */
  readonly subject?: string;
  /** Skip discovery and send token requests here (any OAuth 2.0 token endpoint). */
  readonly tokenEndpoint?: string;
  /** Each request to the issuer is abandoned after this long. Default 10 s. */
  readonly timeoutMs?: number;
  /**
   * How long `fetchToken` keeps retrying an outage before it answers `null` (see
   * {@link TokenSource.fetchToken}). Default 30 s.
   */
  readonly fetchTokenPatienceMs?: number;
  /** Refresh once this fraction of the lifetime is left. Default 0.25. */
  readonly refreshAhead?: number;
  /** Told of every failed request, in the background ones too (they are otherwise silent). */
  readonly onError?: (error: SvctokenError) => void;
  /** The `fetch` to use (a proxy agent, instrumentation). Default: the global `fetch`. */
  readonly fetch?: typeof globalThis.fetch;
  /** Milliseconds since the epoch; for tests that move time. Default `Date.now`. */
  readonly clock?: () => number;
}

/** What {@link createTokenSource} returns. Share one per (client, audience, subject). */
export interface TokenSource {
  /** A valid access token: the cached one, or a new one fetched once for all callers. */
  getToken(): Promise<string>;
  /**
   * Replaces the cached token now (concurrent calls share one request), for a token a server
   * refused; also retries after a permanent error. With `rejected`, a cached token other than
   * that one is returned instead when it is still fresh, so many callers refused with the same
   * token cause one request.
   */
  forceRefresh(options?: { readonly rejected?: string }): Promise<string>;
  /**
   * For the official WebSocket client: `convexClient.setAuth(source.fetchToken)`. With
   * `forceRefreshToken: true` (the server refused the last token, or it is about to expire) it
   * hands out a token newer than the one it last handed out. It never throws, as Convex
   * requires: while the issuer is down it retries for `fetchTokenPatienceMs`, then answers
   * `null` (the error goes to `onError`), and the client is then unauthenticated until
   * `setAuth` is called again.
   */
  readonly fetchToken: (args: { forceRefreshToken: boolean }) => Promise<string | null>;
  /** How many token requests (discovery aside) were sent so far. */
  readonly requestCount: number;
}

/** A token's lifetime when neither `expires_in` nor the token tells one. */
const ASSUMED_LIFETIME_MS = 300_000;
/** Stop handing a token out this long before it expires (at most a tenth of its lifetime). */
const EXPIRY_MARGIN_MS = 5_000;
/** Refresh up to this fraction of the lifetime earlier still, at random. */
const REFRESH_JITTER = 0.1;
const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;

interface Cached {
  readonly token: string;
  readonly refreshAt: number;
  readonly expiresAt: number;
}

/**
 * A source of svctoken access tokens for one client: fetched with client credentials (a secret
 * or a private key), cached, refreshed ahead of expiry.
 *
 * ```ts
 * const tokens = createTokenSource({
 *   issuer: "https://auth.example.com",
 *   clientId: "billing-worker",
 *   clientSecret: process.env.SVCTOKEN_CLIENT_SECRET,
 *   audience: "convex",
 * });
 * const response = await fetch(url, { headers: { authorization: `Bearer ${await tokens.getToken()}` } });
 * ```
 *
 * @throws {ConfigError} when the options can't work (checked here, not at the first request).
 */
export function createTokenSource(options: TokenSourceOptions): TokenSource {
  return new CachingSource(options);
}

class CachingSource implements TokenSource {
  readonly #plan: RequestPlan;
  readonly #clock: () => number;
  readonly #refreshAhead: number;
  readonly #patienceMs: number;
  readonly #onError: ((error: SvctokenError) => void) | undefined;
  #discovered: Discovered | undefined;
  #current: Cached | undefined;
  #flight: Promise<Cached> | undefined;
  #background = false;
  #failures = 0;
  #retryAt = 0;
  #lastError: SvctokenError | undefined;
  #stopped = false;
  #lastHanded: string | undefined;
  #requests = 0;

  constructor(options: TokenSourceOptions) {
    this.#plan = plan(options);
    this.#clock = options.clock ?? Date.now;
    this.#refreshAhead = fraction(options.refreshAhead, 0.25, "refreshAhead");
    this.#patienceMs = nonNegative(options.fetchTokenPatienceMs, 30_000, "fetchTokenPatienceMs");
    this.#onError = options.onError;
    this.fetchToken = this.fetchToken.bind(this);
  }

  get requestCount(): number {
    return this.#requests;
  }

  async getToken(): Promise<string> {
    const now = this.#clock();
    const current = this.#current;
    if (current !== undefined && now < current.refreshAt) return current.token;
    if (current !== undefined && now < current.expiresAt) {
      this.#refreshInBackground(now);
      return current.token;
    }
    return (await this.#refresh(false)).token;
  }

  async forceRefresh(options?: { readonly rejected?: string }): Promise<string> {
    const current = this.#current;
    const rejected = options?.rejected;
    if (rejected !== undefined && current !== undefined && current.token !== rejected) {
      if (this.#clock() < current.refreshAt) return current.token;
    }
    return (await this.#refresh(true)).token;
  }

  async fetchToken({ forceRefreshToken }: { forceRefreshToken: boolean }): Promise<string | null> {
    const deadline = this.#clock() + this.#patienceMs;
    for (;;) {
      try {
        const token = forceRefreshToken
          ? await this.forceRefresh(this.#lastHanded === undefined ? undefined : { rejected: this.#lastHanded })
          : await this.getToken();
        this.#lastHanded = token;
        return token;
      } catch (e) {
        const error = asSvctokenError(e);
        const wait = Math.max(this.#retryAt - this.#clock(), MIN_BACKOFF_MS);
        if (error.permanent || this.#clock() + wait > deadline) return null;
        await sleep(wait);
        // The wait is over: ask the issuer again rather than replay the recorded failure.
        forceRefreshToken = true;
      }
    }
  }

  #refreshInBackground(now: number): void {
    if (this.#background || this.#stopped || now < this.#retryAt) return;
    this.#background = true;
    this.#refresh(false)
      .catch(() => {
        // Reported to onError by #fetch; the current token stays in service.
      })
      .finally(() => {
        this.#background = false;
      });
  }

  #refresh(forced: boolean): Promise<Cached> {
    if (this.#flight !== undefined) return this.#flight;
    const now = this.#clock();
    const current = this.#current;
    if (!forced) {
      if (current !== undefined && now < current.refreshAt) return Promise.resolve(current);
      if (this.#stopped || now < this.#retryAt) {
        if (current !== undefined && now < current.expiresAt) return Promise.resolve(current);
        return Promise.reject(this.#lastError ?? new NetworkError("no token yet"));
      }
    }
    const flight = this.#fetch(forced).finally(() => {
      this.#flight = undefined;
    });
    this.#flight = flight;
    return flight;
  }

  async #fetch(forced: boolean): Promise<Cached> {
    this.#requests += 1;
    try {
      const cached = this.#schedule(await this.#request());
      this.#current = cached;
      this.#failures = 0;
      this.#retryAt = 0;
      this.#stopped = false;
      this.#lastError = undefined;
      return cached;
    } catch (e) {
      const error = asSvctokenError(e);
      const now = this.#clock();
      this.#failures += 1;
      this.#lastError = error;
      if (error.permanent) {
        this.#stopped = true;
        this.#retryAt = 0;
      } else {
        const retryAfter = "retryAfterMs" in error && typeof error.retryAfterMs === "number" ? error.retryAfterMs : 0;
        this.#retryAt = now + Math.max(this.#backoff(), retryAfter);
      }
      this.#onError?.(error);
      const current = this.#current;
      if (!forced && current !== undefined && now < current.expiresAt) return current;
      throw error;
    }
  }

  async #request(): Promise<Fetched> {
    const plan = this.#plan;
    if (plan.tokenEndpoint !== undefined) {
      return await requestToken(plan, plan.tokenEndpoint, plan.issuer, this.#clock);
    }
    this.#discovered ??= await discover(plan);
    return await requestToken(plan, this.#discovered.tokenEndpoint, this.#discovered.issuer, this.#clock);
  }

  #schedule(fetched: Fetched): Cached {
    const lifetime = fetched.lifetimeMs ?? lifetimeOf(fetched.accessToken) ?? ASSUMED_LIFETIME_MS;
    const start = fetched.requestedAt;
    const expiresAt = start + lifetime - Math.min(EXPIRY_MARGIN_MS, lifetime / 10);
    const ahead = lifetime * (this.#refreshAhead + REFRESH_JITTER * Math.random());
    const refreshAt = Math.min(start + lifetime - ahead, expiresAt);
    return { token: fetched.accessToken, refreshAt, expiresAt };
  }

  /** Exponential from 250 ms to 30 s, halved at random (full jitter on the upper half). */
  #backoff(): number {
    const exp = Math.min(MIN_BACKOFF_MS * 2 ** Math.min(this.#failures - 1, 20), MAX_BACKOFF_MS);
    return exp * (0.5 + 0.5 * Math.random());
  }
}

/** Checks the options once; every problem is a {@link ConfigError} naming the option. */
function plan(options: TokenSourceOptions): RequestPlan {
  if (options === null || typeof options !== "object") {
    throw new ConfigError("createTokenSource needs an options object");
  }
  const issuer = normalizeIssuer(requiredString(options.issuer, "issuer"));
  const clientId = requiredString(options.clientId, "clientId");
  const credential = credentialOf(options);
  const tokenEndpoint = optionalString(options.tokenEndpoint, "tokenEndpoint");
  if (tokenEndpoint !== undefined) {
    checkEndpoint(tokenEndpoint, issuer, (m) => new ConfigError(`tokenEndpoint: ${m}`));
  }
  const scope =
    typeof options.scope === "string" || options.scope === undefined
      ? optionalString(options.scope, "scope")
      : Array.isArray(options.scope) && options.scope.every((s) => typeof s === "string" && s !== "")
        ? options.scope.join(" ")
        : failConfig("scope must be a string or an array of non-empty strings");
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== "function") {
    throw new ConfigError("no fetch: this needs Node.js 20 or later, or a fetch option");
  }
  return {
    issuer,
    tokenEndpoint,
    clientId,
    credential,
    audience: optionalString(options.audience, "audience"),
    scope,
    subject: optionalString(options.subject, "subject"),
    timeoutMs: positive(options.timeoutMs, 10_000, "timeoutMs"),
    fetch: fetchImpl,
  };
}

function credentialOf(options: TokenSourceOptions): Credential {
  const hasSecret = options.clientSecret !== undefined;
  const hasKey = options.privateKey !== undefined;
  if (hasSecret === hasKey) {
    throw new ConfigError(
      hasSecret
        ? "give clientSecret or privateKey, not both"
        : "no credential: give clientSecret (client_secret_basic) or privateKey (private_key_jwt)",
    );
  }
  if (hasSecret) {
    const secret = options.clientSecret;
    if (typeof secret !== "string" || secret === "") {
      throw new ConfigError("clientSecret must be a non-empty string (is the environment variable set?)");
    }
    return { kind: "secret", secret };
  }
  const key = options.privateKey;
  if (typeof key !== "string" && (key === null || typeof key !== "object")) {
    throw new ConfigError("privateKey must be a PEM string or a JWK");
  }
  return readPrivateKey(key as string | JsonWebKeyLike);
}

function requiredString(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") throw new ConfigError(`${name} must be a non-empty string`);
  return value;
}

function optionalString(value: unknown, name: string): string | undefined {
  return value === undefined ? undefined : requiredString(value, name);
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${name} must be a positive number`);
  return value;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(`${name} must be a number >= 0`);
  return value;
}

function fraction(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0 || value >= 1) throw new ConfigError(`${name} must be between 0 and 1`);
  return value;
}

function failConfig(message: string): never {
  throw new ConfigError(message);
}

/** `exp - iat` of a JWT, in milliseconds, when both are integers; the token is not verified. */
function lifetimeOf(token: string): number | undefined {
  try {
    const { exp, iat } = decodeJwt(token);
    if (typeof exp === "number" && typeof iat === "number" && exp > iat) return (exp - iat) * 1000;
  } catch {
    // Not a JWT: the assumed lifetime applies.
  }
  return undefined;
}

function asSvctokenError(e: unknown): SvctokenError {
  if (e instanceof SvctokenError) return e;
  return new NetworkError(`token request failed: ${e instanceof Error ? e.message : typeof e}`, { cause: e });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
