/**
 * createTokenSource against the real `svctoken serve` on 127.0.0.1: both client
 * authentications, the cache (refresh ahead, single flight under 1,000 concurrent callers,
 * serve-stale, backoff), the issuer going down and coming back, typed errors, and fetchToken's
 * forceRefreshToken. Time moves through the source's `clock` option; the issuer's is real.
 */
import { createPublicKey } from "node:crypto";

import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import {
  ConfigError,
  DiscoveryError,
  NetworkError,
  OAuthError,
  SvctokenError,
  createTokenSource,
  type TokenSourceOptions,
} from "svctoken";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { Issuer } from "./support/servers.js";

let issuer: Issuer;

beforeAll(async () => {
  issuer = await Issuer.start();
});

afterAll(async () => {
  await issuer?.close();
});

/** A clock the test moves; starts at the real time. */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let t = Date.now();
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** A fetch that counts the requests to the token endpoint. */
function countingFetch(): { fetch: typeof globalThis.fetch; tokenRequests: () => number } {
  let count = 0;
  return {
    fetch: async (input, init) => {
      if (String(input).endsWith("/oauth/token")) count += 1;
      return await globalThis.fetch(input, init);
    },
    tokenRequests: () => count,
  };
}

function worker(extra: Partial<TokenSourceOptions> = {}): TokenSourceOptions {
  return {
    issuer: issuer.url,
    clientId: "worker",
    clientSecret: issuer.clients.workerSecret,
    audience: "convex",
    ...extra,
  };
}

async function verify(token: string) {
  const jwks = createRemoteJWKSet(new URL(`${issuer.url}/audiences/convex/jwks.json`));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: issuer.url,
    audience: "convex",
    algorithms: ["ES256"],
  });
  return { payload, protectedHeader };
}

/** Resolves once `check` holds, polling every 20 ms for at most `ms`. */
async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("client_secret_basic", () => {
  test("fetches a token the issuer's JWKS verifies, and caches it", async () => {
    const counter = countingFetch();
    const source = createTokenSource(worker({ fetch: counter.fetch, scope: ["notes:read"] }));
    const token = await source.getToken();
    const { payload } = await verify(token);
    expect(payload.sub).toBe("svc:worker");
    expect(payload.client_id).toBe("worker");
    expect(payload.scope).toBe("notes:read");
    expect(await source.getToken()).toBe(token);
    expect(counter.tokenRequests()).toBe(1);
    expect(source.requestCount).toBe(1);
  });

  test("a rejected secret is a typed OAuthError, not retried until forceRefresh", async () => {
    const counter = countingFetch();
    const source = createTokenSource(worker({ clientSecret: "not-the-secret", fetch: counter.fetch }));
    const error = await source.getToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toBeInstanceOf(SvctokenError);
    const oauth = error as OAuthError;
    expect(oauth.error).toBe("invalid_client");
    expect(oauth.status).toBe(401);
    expect(oauth.kind).toBe("oauth");
    expect(oauth.permanent).toBe(true);
    expect(oauth.message).not.toContain("not-the-secret");
    // Permanent: the next call gets the same error without asking the issuer.
    await expect(source.getToken()).rejects.toBe(error);
    expect(counter.tokenRequests()).toBe(1);
    // forceRefresh asks again.
    await expect(source.forceRefresh()).rejects.toBeInstanceOf(OAuthError);
    expect(counter.tokenRequests()).toBe(2);
  });

  test("an audience the client may not have is the issuer's OAuth error", async () => {
    const source = createTokenSource(worker({ audience: "billing-api" }));
    const error = (await source.getToken().catch((e: unknown) => e)) as OAuthError;
    expect(error).toBeInstanceOf(OAuthError);
    expect(["invalid_target", "invalid_request", "unauthorized_client"]).toContain(error.error);
  });
});

describe("private_key_jwt", () => {
  test("a PEM key acting for a user: sub is the user, act.sub the service", async () => {
    const source = createTokenSource({
      issuer: issuer.url,
      clientId: "billing-worker",
      privateKey: issuer.clients.billingKeyPem,
      audience: "convex",
      subject: "user:42",
    });
    const { payload } = await verify(await source.getToken());
    expect(payload.sub).toBe("user:42");
    expect(payload.act).toEqual({ sub: "svc:billing-worker" });
    expect(payload.client_id).toBe("billing-worker");
    // Each request signs a fresh assertion (a fresh jti): the issuer refuses replays.
    const second = await source.forceRefresh();
    const third = await source.forceRefresh();
    expect(decodeJwt(second).jti).not.toBe(decodeJwt(third).jti);
  });

  test("a private JWK with its kid", async () => {
    const source = createTokenSource({
      issuer: issuer.url,
      clientId: "billing-worker",
      privateKey: issuer.clients.billingKeyJwk as Record<string, unknown>,
      audience: "convex",
    });
    const { payload } = await verify(await source.getToken());
    expect(payload.sub).toBe("svc:billing-worker");
  });

  test("a key the issuer doesn't hold for the client is invalid_client", async () => {
    const { generateKeyPairSync } = await import("node:crypto");
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const source = createTokenSource({
      issuer: issuer.url,
      clientId: "billing-worker",
      privateKey: other.export({ type: "sec1", format: "pem" }).toString(),
      audience: "convex",
    });
    const error = (await source.getToken().catch((e: unknown) => e)) as OAuthError;
    expect(error).toBeInstanceOf(OAuthError);
    expect(error.error).toBe("invalid_client");
  });
});

describe("cache", () => {
  test("1,000 concurrent callers cause one request per lifetime, refreshed ahead in the background", async () => {
    const clock = manualClock();
    const counter = countingFetch();
    const before = issuer.issuedCount("worker");
    const source = createTokenSource(worker({ clock: clock.now, fetch: counter.fetch }));

    const first = await Promise.all(Array.from({ length: 1000 }, () => source.getToken()));
    expect(new Set(first).size).toBe(1);
    expect(counter.tokenRequests()).toBe(1);
    const { payload } = await verify(first[0]!);
    const lifetimeMs = (payload.exp! - payload.iat!) * 1000;

    // Half-way: fresh, nothing asked.
    clock.advance(lifetimeMs / 2);
    const middle = await Promise.all(Array.from({ length: 1000 }, () => source.getToken()));
    expect(new Set(middle)).toEqual(new Set(first));
    expect(counter.tokenRequests()).toBe(1);

    // Past the refresh point (a quarter left, up to 35% with jitter) but valid: callers get the
    // current token at once, and one background request fetches the next.
    clock.advance(lifetimeMs * 0.3);
    const ahead = await Promise.all(Array.from({ length: 1000 }, () => source.getToken()));
    expect(new Set(ahead)).toEqual(new Set(first));
    expect(counter.tokenRequests()).toBe(2);
    // Once the background request lands, everyone gets the new token.
    await eventually(async () => (await source.getToken()) !== first[0]);
    const settled = await Promise.all(Array.from({ length: 1000 }, () => source.getToken()));
    expect(counter.tokenRequests()).toBe(2);
    expect(source.requestCount).toBe(2);
    expect(new Set(settled).size).toBe(1);
    expect(settled[0]).not.toBe(first[0]);
    await verify(settled[0]!);
    // The issuer's own count agrees: two tokens for two lifetimes' worth of 4,000 calls.
    await eventually(() => issuer.issuedCount("worker") - before === 2);
  });

  test("1,000 concurrent callers of a cold source share one request, even when it fails", async () => {
    const counter = countingFetch();
    const source = createTokenSource(worker({ clientSecret: "wrong", fetch: counter.fetch }));
    const outcomes = await Promise.allSettled(Array.from({ length: 1000 }, () => source.getToken()));
    expect(outcomes.every((o) => o.status === "rejected" && o.reason instanceof OAuthError)).toBe(true);
    expect(counter.tokenRequests()).toBe(1);
  });

  test("the issuer down, then back: stale while valid, the error after expiry, recovery without restart", async () => {
    const clock = manualClock();
    const errors: SvctokenError[] = [];
    const source = createTokenSource(worker({ clock: clock.now, onError: (e) => errors.push(e), timeoutMs: 2_000 }));
    const token = await source.getToken();
    const lifetimeMs = (decodeJwt(token).exp! - decodeJwt(token).iat!) * 1000;
    try {
      await issuer.kill();
      // Due for refresh, still valid: the cached token, and the background failure reported.
      clock.advance(lifetimeMs * 0.8);
      expect(await source.getToken()).toBe(token);
      await eventually(() => errors.length === 1);
      expect(errors[0]).toBeInstanceOf(NetworkError);
      expect(errors[0]!.permanent).toBe(false);
      // Within the backoff, no new request; still the cached token.
      expect(await source.getToken()).toBe(token);
      expect(source.requestCount).toBe(2);
      // Expired: the error, typed.
      clock.advance(lifetimeMs * 0.2);
      clock.advance(60_000);
      const error = await source.getToken().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NetworkError);
      expect((error as NetworkError).message).toContain(issuer.url);
    } finally {
      await issuer.restart();
    }
    // Back: the next call past the backoff gets a new, valid token.
    clock.advance(60_000);
    const fresh = await source.getToken();
    expect(fresh).not.toBe(token);
    await verify(fresh);
  });

  test("expiry counts from the local send time, not from the token's iat", async () => {
    // A local clock an hour ahead of the issuer's: the token still lives its expires_in from
    // when it was asked for (a verifier-side skew check is not the client's business).
    const clock = manualClock();
    clock.advance(3_600_000);
    const counter = countingFetch();
    const source = createTokenSource(worker({ clock: clock.now, fetch: counter.fetch }));
    const token = await source.getToken();
    clock.advance(60_000);
    expect(await source.getToken()).toBe(token);
    expect(counter.tokenRequests()).toBe(1);
  });
});

describe("fetchToken, for ConvexClient.setAuth", () => {
  test("honours forceRefreshToken: a token newer than the last one handed out", async () => {
    const counter = countingFetch();
    const source = createTokenSource(worker({ fetch: counter.fetch }));
    const fetchToken = source.fetchToken; // detached, as setAuth holds it
    const a = await fetchToken({ forceRefreshToken: false });
    const b = await fetchToken({ forceRefreshToken: false });
    expect(a).not.toBeNull();
    expect(b).toBe(a);
    expect(counter.tokenRequests()).toBe(1);
    const c = await fetchToken({ forceRefreshToken: true });
    expect(c).not.toBeNull();
    expect(c).not.toBe(a);
    expect(counter.tokenRequests()).toBe(2);
    // Already newer than what it handed out before c: a forced call after a background
    // refresh reuses it rather than asking again.
    const d = await source.forceRefresh();
    const e = await fetchToken({ forceRefreshToken: true });
    expect(e).toBe(d);
    expect(counter.tokenRequests()).toBe(3);
  });

  test("never throws: null for a rejected client, with the error reported", async () => {
    const errors: SvctokenError[] = [];
    const source = createTokenSource(worker({ clientSecret: "wrong", onError: (e) => errors.push(e) }));
    expect(await source.fetchToken({ forceRefreshToken: false })).toBeNull();
    expect(errors[0]).toBeInstanceOf(OAuthError);
  });
});

describe("discovery and options", () => {
  test("the mix-up check: a discovery document for another issuer is refused", async () => {
    // The issuer publishes http://127.0.0.1:PORT; asking for localhost:PORT reaches it but is
    // not that issuer.
    const url = new URL(issuer.url);
    const source = createTokenSource(worker({ issuer: `http://localhost:${url.port}` }));
    const error = (await source.getToken().catch((e: unknown) => e)) as DiscoveryError;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.permanent).toBe(true);
    expect(error.message).toContain("mix-up");
  });

  test("an issuer nobody answers for is a retried DiscoveryError", async () => {
    const { freePort } = await import("./support/servers.js");
    const port = await freePort();
    const source = createTokenSource(worker({ issuer: `http://127.0.0.1:${port}`, timeoutMs: 2_000 }));
    const error = (await source.getToken().catch((e: unknown) => e)) as DiscoveryError;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.permanent).toBe(false);
  });

  test("bad options are a ConfigError at creation, naming the option", () => {
    const publicPem = createPublicKey(issuer.clients.billingKeyPem).export({ type: "spki", format: "pem" }).toString();
    const cases: [Partial<TokenSourceOptions>, RegExp][] = [
      [{ clientSecret: undefined }, /no credential/],
      [{ privateKey: issuer.clients.billingKeyPem }, /not both/],
      [{ clientSecret: undefined, privateKey: publicPem }, /public key/],
      [{ clientSecret: undefined, privateKey: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }, /not a readable private key/],
      [{ clientSecret: "" }, /clientSecret/],
      [{ issuer: "auth.example.com" }, /issuer/],
      [{ issuer: "https://auth.example.com?x=1" }, /query/],
      [{ scope: [""] }, /scope/],
      [{ timeoutMs: 0 }, /timeoutMs/],
      [{ tokenEndpoint: "http://auth.example.com/token", issuer: "https://auth.example.com" }, /not https/],
    ];
    for (const [extra, message] of cases) {
      const error = (() => {
        try {
          createTokenSource(worker(extra));
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error, JSON.stringify(Object.keys(extra))).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toMatch(message);
      expect((error as ConfigError).message).not.toContain("BEGIN");
    }
  });
});
