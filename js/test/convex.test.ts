/**
 * @vitest-environment edge-runtime
 *
 * Tests of svctoken/convex (src/convex.ts) through real Convex function calls (convex-test's mock backend):
 * the functions under convex/ call requireService / actingFor, and each test calls them with
 * the identity Convex would build from an svctoken token, for either provider type.
 */
/// <reference types="vite/client" />
import { convexTest } from "convex-test";
import type { UserIdentity } from "convex/server";
import type { JSONValue } from "convex/values";
import { describe, expect, test } from "vitest";
import { api } from "./convex/_generated/api";
import schema from "./convex/schema";
import type { ServiceAuthErrorCode } from "svctoken/convex";

const modules = import.meta.glob("./convex/**/*.*s");
const ISS = "https://auth.example.com";

// ---- identities, built the way Convex builds them from a verified token ----------------------

type Claims = Record<string, JSONValue>;
/** Registered claims Convex consumes itself and does not expose as identity fields. */
const CONSUMED = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]);

/** Flattens nested objects to dotted keys, as the customJwt provider does; arrays stay arrays. */
function flatten(value: Claims, prefix = "", out: Claims = {}): Claims {
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === "object" && v !== null && !Array.isArray(v)) flatten(v, `${prefix}${k}.`, out);
    else out[`${prefix}${k}`] = v;
  }
  return out;
}

/**
 * The identity a function sees for a token with these claims: tokenIdentifier "<iss>|<sub>",
 * subject, issuer, and every other claim except the consumed ones, flattened (customJwt) or
 * as is (OIDC; our tokens carry no OIDC profile claims that would be renamed to camelCase).
 */
function identityOf(claims: Claims, provider: "customJwt" | "oidc"): Partial<UserIdentity> {
  const rest: Claims = {};
  for (const [k, v] of Object.entries(claims)) if (!CONSUMED.has(k)) rest[k] = v;
  return {
    subject: claims.sub as string,
    issuer: claims.iss as string,
    tokenIdentifier: `${claims.iss as string}|${claims.sub as string}`,
    ...(provider === "customJwt" ? flatten(rest) : rest),
  };
}

/** Claims of an svctoken token; `extra` overrides or adds (undefined removes). */
function token(extra: Record<string, JSONValue | undefined> = {}): Claims {
  const claims: Record<string, JSONValue | undefined> = {
    iss: ISS,
    sub: "svc:billing-worker",
    aud: "convex",
    iat: 1_700_000_000,
    nbf: 1_700_000_000,
    exp: 1_700_000_300,
    jti: "0d9c6a52-jti",
    client_id: "billing-worker",
    scope: "notes:write notes:read",
    ...extra,
  };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  return claims as Claims;
}
/** A token of billing-worker acting for user:42 (RFC 8693 `act`). */
const onBehalf = (extra: Record<string, JSONValue | undefined> = {}) =>
  token({ sub: "user:42", act: { sub: "svc:billing-worker" }, ...extra });

const PROVIDERS = ["customJwt", "oidc"] as const;

function setup() {
  return convexTest(schema, modules);
}

/** Awaits a call that must fail with a ConvexError of this code; returns its message. */
async function rejectsWith(call: Promise<unknown>, code: ServiceAuthErrorCode | "NotActingForUser"): Promise<string> {
  const err: unknown = await call.then(
    () => {
      throw new Error(`expected a ConvexError with code ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ name: "ConvexError", data: { code } });
  return (err as { data: { message: string } }).data.message;
}

// ---- the identity shapes themselves -------------------------------------------------------------

describe("identity shapes used by these tests", () => {
  test("customJwt flattens act to act.sub, exactly the documented object", () => {
    expect(identityOf(onBehalf(), "customJwt")).toStrictEqual({
      subject: "user:42",
      issuer: ISS,
      tokenIdentifier: "https://auth.example.com|user:42",
      client_id: "billing-worker",
      scope: "notes:write notes:read",
      "act.sub": "svc:billing-worker",
    });
  });

  test("OIDC passes act through nested", () => {
    expect(identityOf(onBehalf(), "oidc")).toStrictEqual({
      subject: "user:42",
      issuer: ISS,
      tokenIdentifier: "https://auth.example.com|user:42",
      client_id: "billing-worker",
      scope: "notes:write notes:read",
      act: { sub: "svc:billing-worker" },
    });
  });

  test("convex-test hands the identity to the function unchanged", async () => {
    // withIdentity fills subject/issuer/tokenIdentifier only when absent: we always pass them.
    const t = setup();
    const id = identityOf(onBehalf({ act: { sub: "svc:a", act: { sub: "svc:b" } } }), "customJwt");
    expect(id).toMatchObject({ "act.sub": "svc:a", "act.act.sub": "svc:b" });
    const seen = await t.withIdentity(id).run(async (ctx) => await ctx.auth.getUserIdentity());
    expect(seen).toStrictEqual(id);
  });
});

// ---- requireService / actingFor through Convex functions ---------------------------------------

describe.each(PROVIDERS)("%s provider", (provider) => {
  const caller = (claims: Claims) => setup().withIdentity(identityOf(claims, provider));

  test("a service acting as itself", async () => {
    const me = await caller(token()).query(api.service.whoami, {});
    expect(me).toStrictEqual({
      service: {
        clientId: "billing-worker",
        subject: "svc:billing-worker",
        scopes: ["notes:write", "notes:read"],
        actor: null,
        issuer: ISS,
        tokenIdentifier: `${ISS}|svc:billing-worker`,
      },
      actingFor: null,
    });
  });

  test("a service acting for a user", async () => {
    const me = await caller(onBehalf()).query(api.service.whoami, {});
    expect(me).toStrictEqual({
      service: {
        clientId: "billing-worker",
        subject: "svc:billing-worker", // the service, not the user
        scopes: ["notes:write", "notes:read"],
        actor: "svc:billing-worker",
        issuer: ISS,
        tokenIdentifier: `${ISS}|user:42`, // Convex's, from the token's sub
      },
      actingFor: "user:42",
    });
  });

  test("nested actor chain: actor is the immediate (outermost) actor", async () => {
    const chain = onBehalf({ client_id: "support-bot", act: { sub: "svc:a", act: { sub: "svc:b" } } });
    const me = await caller(chain).query(api.service.whoami, {});
    expect(me.service).toMatchObject({ clientId: "support-bot", subject: "svc:a", actor: "svc:a" });
    expect(me.actingFor).toBe("user:42");
  });

  test("notes:addForUser writes on behalf of the user and records the service", async () => {
    const t = setup();
    const worker = t.withIdentity(identityOf(onBehalf(), provider));
    await worker.mutation(api.notes.addForUser, { body: "invoice sent" });
    await t
      .withIdentity(identityOf(onBehalf({ sub: "user:7" }), provider))
      .mutation(api.notes.addForUser, { body: "someone else's" });
    expect(await worker.query(api.notes.list, {})).toStrictEqual([
      { owner: "user:42", body: "invoice sent", writtenBy: "svc:billing-worker" },
    ]);
    // The service acting as itself sees its own (empty) notes, not the user's.
    expect(await t.withIdentity(identityOf(token(), provider)).query(api.notes.list, {})).toStrictEqual([]);
  });

  test("notes:addForUser refuses a service acting as itself (app-level check on actingFor)", async () => {
    await rejectsWith(caller(token()).mutation(api.notes.addForUser, { body: "x" }), "NotActingForUser");
  });

  test("not a service: a plain user identity has no client_id", async () => {
    const user = { iss: ISS, sub: "user:42", aud: "convex", iat: 1, exp: 2, email: "u@example.com" };
    expect(identityOf(user, provider)).not.toHaveProperty("client_id");
    const t = caller(user);
    expect(await rejectsWith(t.query(api.service.whoami, {}), "NotAService")).toMatch(/client_id/);
    await rejectsWith(t.mutation(api.notes.addForUser, { body: "x" }), "NotAService");
    expect(await t.query(api.service.actingForQuery, {})).toBeNull();
  });

  test("an empty or non-string client_id is not a service", async () => {
    await rejectsWith(caller(token({ client_id: "" })).query(api.service.whoami, {}), "NotAService");
    await rejectsWith(caller(onBehalf({ client_id: 7 })).query(api.service.whoami, {}), "NotAService");
    expect(await caller(onBehalf({ client_id: undefined })).query(api.service.actingForQuery, {})).toBeNull();
  });

  test("client allow-list", async () => {
    const t = caller(onBehalf());
    await expect(t.query(api.service.check, { client: "billing-worker" })).resolves.toMatchObject({
      clientId: "billing-worker",
    });
    await expect(t.query(api.service.check, { client: ["ledger", "billing-worker"] })).resolves.toBeTruthy();
    const msg = await rejectsWith(t.query(api.service.check, { client: "ledger" }), "ClientNotAllowed");
    expect(msg).toMatch(/billing-worker/);
    await rejectsWith(t.query(api.service.check, { client: ["Billing-Worker"] }), "ClientNotAllowed");
    await rejectsWith(t.query(api.service.check, { client: [] }), "ClientNotAllowed"); // fails closed
    // The real functions' list: reports is not on it.
    await rejectsWith(
      caller(onBehalf({ client_id: "reports" })).mutation(api.notes.addForUser, { body: "x" }),
      "ClientNotAllowed",
    );
  });

  test("scopes: every required scope must be granted", async () => {
    const t = caller(onBehalf());
    await expect(t.query(api.service.check, { scope: "notes:read" })).resolves.toBeTruthy();
    await expect(t.query(api.service.check, { scope: ["notes:read", "notes:write"] })).resolves.toBeTruthy();
    await expect(t.query(api.service.check, { scope: "notes:write  notes:read" })).resolves.toBeTruthy();
    await expect(t.query(api.service.check, { scope: [] })).resolves.toBeTruthy();
    const msg = await rejectsWith(
      t.query(api.service.check, { scope: ["notes:read", "notes:admin", "billing:read"] }),
      "MissingScope",
    );
    expect(msg).toBe("missing required scope(s): notes:admin billing:read");
    await rejectsWith(t.query(api.service.check, { scope: "notes:read notes:admin" }), "MissingScope");
    await rejectsWith(t.query(api.service.check, { scope: "notes" }), "MissingScope"); // no prefix match
    // The real functions: a read-only token cannot write.
    await rejectsWith(
      caller(onBehalf({ scope: "notes:read" })).mutation(api.notes.addForUser, { body: "x" }),
      "MissingScope",
    );
  });

  test("scopes: absent claim means none; messy spacing and duplicates are normalized", async () => {
    const none = caller(onBehalf({ scope: undefined }));
    expect((await none.query(api.service.whoami, {})).service.scopes).toStrictEqual([]);
    await rejectsWith(none.query(api.service.check, { scope: "notes:read" }), "MissingScope");
    const messy = caller(token({ scope: "  a  b\ta a " }));
    expect((await messy.query(api.service.whoami, {})).service.scopes).toStrictEqual(["a", "b"]);
    const asArray = caller(token({ scope: ["a", "b"] }));
    expect((await asArray.query(api.service.whoami, {})).service.scopes).toStrictEqual(["a", "b"]);
  });

  test("issuer pinning", async () => {
    const t = caller(onBehalf());
    await expect(t.query(api.service.check, { issuer: ISS })).resolves.toMatchObject({ issuer: ISS });
    await expect(t.query(api.service.check, { issuer: `${ISS}/` })).resolves.toBeTruthy(); // trailing "/" ignored
    await rejectsWith(t.query(api.service.check, { issuer: "https://other.example.com" }), "NotAService");
    await rejectsWith(t.query(api.service.check, { issuer: "https://auth.example.com.evil" }), "NotAService");
    // A look-alike token from another provider that also carries client_id and scope
    // passes an unpinned check but not the pinned note functions.
    const foreign = caller(onBehalf({ iss: "https://cognito.example.net" }));
    await expect(foreign.query(api.service.whoami, {})).resolves.toBeTruthy();
    expect(await rejectsWith(foreign.mutation(api.notes.addForUser, { body: "x" }), "NotAService")).toMatch(
      /issuer/,
    );
  });

  test("unauthenticated", async () => {
    const t = setup();
    await rejectsWith(t.query(api.service.whoami, {}), "Unauthenticated");
    await rejectsWith(t.query(api.service.check, { issuer: ISS }), "Unauthenticated");
    await rejectsWith(t.mutation(api.notes.addForUser, { body: "x" }), "Unauthenticated");
    expect(await t.query(api.service.actingForQuery, {})).toBeNull();
  });

  test("actingFor: null unless a service acts for someone", async () => {
    expect(await setup().query(api.service.actingForQuery, {})).toBeNull(); // unauthenticated
    expect(await caller(token()).query(api.service.actingForQuery, {})).toBeNull(); // service as itself
    // An actor claim without client_id is not a service token: null, not the user.
    expect(await caller(onBehalf({ client_id: undefined })).query(api.service.actingForQuery, {})).toBeNull();
    expect(await caller(onBehalf()).query(api.service.actingForQuery, {})).toBe("user:42");
  });

  test("a delegation claim without a usable actor is refused, not read as acting-as-itself", async () => {
    for (const act of [{ iss: "https://x" }, { sub: "" }, { sub: 5 }, "svc:billing-worker"] as JSONValue[]) {
      const t = caller(onBehalf({ act }));
      await rejectsWith(t.query(api.service.whoami, {}), "NotAService");
      await rejectsWith(t.query(api.service.actingForQuery, {}), "NotAService");
    }
  });
});

test("both shapes at once: the nested (OIDC) object wins", async () => {
  const id = { ...identityOf(onBehalf(), "oidc"), "act.sub": "svc:ignored" };
  const me = await setup().withIdentity(id).query(api.service.whoami, {});
  expect(me.service.actor).toBe("svc:billing-worker");
});

describe.each(PROVIDERS)("whoami, the diagnosis svctoken doctor prints (%s)", (provider) => {
  test("a service, acting for a user or as itself; an end user; nobody", async () => {
    const as = (claims: Claims) => setup().withIdentity(identityOf(claims, provider));
    const delegated = await as(onBehalf()).query(api.service.diagnosis, {});
    expect(delegated.problem).toBeNull();
    expect(delegated.service?.clientId).toBe("billing-worker");
    expect(delegated.actingFor).toBe("user:42");
    expect(delegated.identity?.subject).toBe("user:42");

    const itself = await as(token()).query(api.service.diagnosis, {});
    expect(itself.service?.subject).toBe("svc:billing-worker");
    expect(itself.actingFor).toBeNull();

    const user = await as(token({ client_id: undefined, sub: "user:7" })).query(api.service.diagnosis, {});
    expect(user.service).toBeNull();
    expect(user.problem).toMatch(/client_id/);

    const nobody = await setup().query(api.service.diagnosis, {});
    expect(nobody).toMatchObject({ identity: null, service: null, actingFor: null });
    expect(nobody.problem).toMatch(/no identity/);
  });
});
