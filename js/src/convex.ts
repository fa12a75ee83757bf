/**
 * svctoken/convex: authorize svctoken service callers inside Convex functions.
 *
 * svctoken mints short-lived service JWTs; Convex verifies them (a `customJwt` or an OIDC
 * provider in `convex/auth.config.ts`) and hands the function an identity object through
 * `ctx.auth.getUserIdentity()`. This module turns that object into a {@link ServiceIdentity}
 * and answers the two questions a function author has: "is the caller one of our services,
 * with the client id and scopes I need?" ({@link requireService}) and "which user is it
 * acting for, if any?" ({@link actingFor}).
 *
 * Example (`convex/notes.ts`):
 * ```ts
 * import { ConvexError, v } from "convex/values";
 * import { mutation } from "./_generated/server";
 * import { actingFor, requireService } from "svctoken/convex";
 *
 * export const addForUser = mutation({
 *   args: { body: v.string() },
 *   handler: async (ctx, { body }) => {
 *     // Only billing-worker, holding notes:write, from our own issuer.
 *     const svc = await requireService(ctx, {
 *       client: "billing-worker",
 *       scope: "notes:write",
 *       issuer: "https://auth.example.com",
 *     });
 *     const owner = await actingFor(ctx); // "user:42", or null when the service acts as itself
 *     if (owner === null) throw new ConvexError({ code: "NotActingForUser" });
 *     // svc.subject is the service ("svc:billing-worker") even though the token's sub is the user.
 *     return await ctx.db.insert("notes", { owner, body, writtenBy: svc.subject });
 *   },
 * });
 * ```
 *
 * ## How svctoken claims reach the function
 * A token carries `iss`, `sub`, `aud`, `iat`, `nbf`, `exp`, `jti`, `client_id`, optionally
 * `scope` (space-separated) and, only when a service acts on behalf of a user (RFC 8693
 * delegation), `act: {sub: "svc:..."}`, which may nest (`act: {sub: "svc:a", act: {sub: "svc:b"}}`:
 * `svc:a` is acting now, `svc:b` acted before it). `sub` is the service itself
 * (`svc:billing-worker`) when it acts as itself, and the user (`user:42`) when it acts for one.
 *
 * Convex exposes `iss` as `identity.issuer`, `sub` as `identity.subject` and
 * `tokenIdentifier = "<iss>|<sub>"`. The other claims depend on the provider type:
 * - `customJwt`: each claim other than iss/sub/aud/exp/nbf/iat/jti is a field under its raw
 *   name, with nested objects flattened to dotted keys: `identity.client_id`,
 *   `identity.scope`, `identity["act.sub"]`, `identity["act.act.sub"]`.
 * - OIDC: non-standard claims pass through unflattened: `identity.client_id`,
 *   `identity.scope`, `identity.act` (the object `{sub, act?}`).
 * Both shapes are read here; nothing else about the provider needs configuring.
 *
 * ## Security notes
 * - "Is a service" means: the identity has a non-empty string `client_id`. Other identity
 *   providers can put `client_id` in their tokens too (AWS Cognito access tokens do). If the
 *   deployment trusts any provider besides svctoken, pass `issuer` to {@link requireService}.
 * - These helpers trust the identity object: Convex has already checked the signature,
 *   expiry, issuer and audience before the function runs. They do no JWT verification.
 * - Failures are `ConvexError`s whose `data` is {@link ServiceAuthErrorData}; the data (code
 *   and message) reaches the client, so messages name claims and requirements but never
 *   echo token values beyond the client id and subject the caller already knows.
 *
 * @module
 */
import type { Auth, UserIdentity } from "convex/server";
import { ConvexError } from "convex/values";

/**
 * What a function needs to know about an authenticated svctoken service.
 *
 * - `clientId`: the OAuth client id (`client_id` claim), e.g. `"billing-worker"`.
 * - `subject`: the SERVICE subject, always the service and never the user: the immediate
 *   actor (`act.sub`) when the token acts for a user, else the token's `sub`. E.g.
 *   `"svc:billing-worker"` in both cases. Use it for audit fields ("written by").
 * - `scopes`: the granted scopes, from the `scope` claim split on whitespace (empty when the
 *   claim is absent). Duplicates are removed, order kept.
 * - `actor`: the immediate actor's sub (`act.sub`, the outermost `act`) when the token acts
 *   on behalf of a user, else `null`. Earlier actors in a nested chain (`act.act.sub`) are not
 *   reported. When non-null it equals `subject`.
 * - `issuer`: the token's `iss`, as Convex reports it (`identity.issuer`).
 * - `tokenIdentifier`: Convex's `"<iss>|<sub>"`, with the token's `sub`; when acting for a
 *   user this identifies the USER, not the service (see {@link actingFor}).
 */
export type ServiceIdentity = {
  clientId: string;
  subject: string;
  scopes: string[];
  actor: string | null;
  issuer: string;
  tokenIdentifier: string;
};

/** The `code` of every `ConvexError` thrown by this module. */
export type ServiceAuthErrorCode = "Unauthenticated" | "NotAService" | "ClientNotAllowed" | "MissingScope";

/**
 * The `data` of every `ConvexError` thrown by this module: a stable `code` to branch on and a
 * human-readable `message`. On the client: `if (e instanceof ConvexError) e.data.code`.
 */
export type ServiceAuthErrorData = { code: ServiceAuthErrorCode; message: string };

/** Options for {@link requireService}; every one is optional and they combine with AND. */
export type RequireServiceOptions = {
  /**
   * Allowed client id(s): the token's `client_id` must equal one of them (exact,
   * case-sensitive). An empty array allows no client (fails closed). Omitted: any client.
   */
  client?: string | string[];
  /**
   * Required scope(s): the token must hold EVERY one. Each string is split on whitespace like
   * the `scope` claim, so `"notes:read notes:write"` is the same as
   * `["notes:read", "notes:write"]`. Matching is exact (no wildcard or prefix rules).
   * Omitted or empty: no scope needed.
   */
  scope?: string | string[];
  /**
   * Pins the token issuer: `identity.issuer` must equal it, ignoring trailing `/` on both
   * sides (as Convex does when it picks a provider). Anything else fails with `NotAService`.
   * Pass it whenever the deployment also trusts a non-svctoken provider.
   */
  issuer?: string;
};

/** The context {@link requireService} and {@link actingFor} need: any query, mutation or action ctx. */
export type AuthCtx = { auth: Auth };

/**
 * Requires the caller to be an svctoken service and returns its {@link ServiceIdentity}.
 *
 * Checks, in this order, each failure a `ConvexError` with {@link ServiceAuthErrorData}:
 * 1. `Unauthenticated`: no identity (no token, or Convex rejected none: queries and mutations
 *    run anonymously when no token was sent).
 * 2. `NotAService`: `opts.issuer` is set and the token's issuer differs.
 * 3. `NotAService`: the identity has no non-empty string `client_id` (e.g. a plain end-user
 *    login), or it carries a delegation claim (`act`) without a usable string `act.sub`: the
 *    acting service cannot be named, so the token is refused rather than mistaken for the
 *    user acting as itself.
 * 4. `ClientNotAllowed`: `opts.client` is set and `client_id` is not in it.
 * 5. `MissingScope`: `opts.scope` lists a scope the token does not hold (the message lists
 *    the missing ones).
 *
 * Works in queries, mutations and actions (it only reads `ctx.auth`).
 *
 * @example
 * const svc = await requireService(ctx, { client: ["billing-worker", "ledger"], scope: "notes:read" });
 * svc.subject;  // "svc:billing-worker", also when acting for a user
 * svc.actor;    // "svc:billing-worker" when acting for a user, else null
 */
export async function requireService(ctx: AuthCtx, opts: RequireServiceOptions = {}): Promise<ServiceIdentity> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null) {
    fail("Unauthenticated", "authentication required: call this function with an svctoken service token");
  }
  if (opts.issuer !== undefined && trimSlashes(identity.issuer) !== trimSlashes(opts.issuer)) {
    fail("NotAService", `token issuer is not the pinned svctoken issuer ${opts.issuer}`);
  }
  const parsed = parseService(identity);
  if (typeof parsed === "string") fail("NotAService", parsed);

  if (opts.client !== undefined) {
    const allowed = typeof opts.client === "string" ? [opts.client] : opts.client;
    if (!allowed.includes(parsed.clientId)) {
      fail("ClientNotAllowed", `client ${parsed.clientId} is not allowed to call this function`);
    }
  }
  if (opts.scope !== undefined) {
    const required = splitScopes(typeof opts.scope === "string" ? [opts.scope] : opts.scope);
    const missing = required.filter((s) => !parsed.scopes.includes(s));
    if (missing.length > 0) fail("MissingScope", `missing required scope(s): ${missing.join(" ")}`);
  }
  return parsed;
}

/**
 * The user a service acts for: `identity.subject` (the token's `sub`, e.g. `"user:42"`) when
 * the caller is an svctoken service (has `client_id`) whose token carries an actor
 * (`act.sub`, flattened `"act.sub"` for customJwt or nested `act.sub` for OIDC).
 *
 * Returns `null` when there is no identity, when the caller is not a service (no
 * `client_id`), and when the service acts as itself (no `act` claim).
 * Throws `ConvexError` `NotAService` for a service token whose `act` claim has no usable
 * string `sub`: answering `null` there would pass the user off as the service itself.
 *
 * It checks no issuer, client or scope: call {@link requireService} first (it applies the
 * same parsing, so `svc.actor !== null` exactly when this returns non-null for that caller).
 *
 * @example
 * const svc = await requireService(ctx, { scope: "notes:write" });
 * const owner = (await actingFor(ctx)) ?? svc.subject; // the user, or the service's own notes
 */
export async function actingFor(ctx: AuthCtx): Promise<string | null> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null || !hasClientId(identity)) return null;
  const parsed = parseService(identity);
  if (typeof parsed === "string") fail("NotAService", parsed);
  return parsed.actor === null ? null : identity.subject;
}

/** What {@link whoami} reports: the identity Convex built, and how these helpers read it. */
export type WhoAmI = {
  /** `ctx.auth.getUserIdentity()` as is, or `null` for an anonymous call. */
  identity: UserIdentity | null;
  /** The caller as {@link requireService} would return it, or `null` when it is not a service. */
  service: ServiceIdentity | null;
  /** The user a service acts for ({@link actingFor}), or `null`. */
  actingFor: string | null;
  /** Why the caller is not a service (`null` when it is one): what `requireService` would say. */
  problem: string | null;
};

/**
 * A diagnosis of the caller that never throws: what Convex made of its token, and whether
 * {@link requireService} would accept it. Export it as a query for `svctoken doctor
 * --deployment <url> --function service:whoami`, which calls it with a fresh token and prints
 * the answer (it reveals only the caller's own identity to the caller):
 *
 * ```ts
 * // convex/service.ts
 * import { query } from "./_generated/server";
 * import { whoami as diagnose } from "svctoken/convex";
 * export const whoami = query({ args: {}, handler: (ctx) => diagnose(ctx) });
 * ```
 */
export async function whoami(ctx: AuthCtx): Promise<WhoAmI> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null) {
    return { identity, service: null, actingFor: null, problem: "no identity: the call carried no token Convex accepted" };
  }
  const parsed = parseService(identity);
  if (typeof parsed === "string") return { identity, service: null, actingFor: null, problem: parsed };
  return { identity, service: parsed, actingFor: parsed.actor === null ? null : identity.subject, problem: null };
}

// ---- internals ------------------------------------------------------------------------------

function fail(code: ServiceAuthErrorCode, message: string): never {
  throw new ConvexError<ServiceAuthErrorData>({ code, message });
}

function trimSlashes(s: string): string {
  return s.replace(/\/+$/, "");
}

function hasClientId(identity: UserIdentity): boolean {
  return typeof identity.client_id === "string" && identity.client_id !== "";
}

/** Splits space-separated scope strings (RFC 6749 §3.3) into distinct scopes, order kept. */
function splitScopes(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const value of values) {
    for (const s of value.split(/\s+/)) if (s !== "" && !out.includes(s)) out.push(s);
  }
  return out;
}

/**
 * The granted scopes. svctoken sends `scope` as a space-separated string; an array of strings
 * (what some issuers send) is accepted too. Absent or any other type: no scopes.
 */
function grantedScopes(identity: UserIdentity): string[] {
  const scope = identity.scope;
  if (typeof scope === "string") return splitScopes([scope]);
  if (Array.isArray(scope) && scope.every((s): s is string => typeof s === "string")) return splitScopes(scope);
  return [];
}

/**
 * The immediate actor: `null` when the token has no delegation claim at all, a string when
 * it names one, `undefined` when a delegation claim is present but unusable.
 * OIDC passes `act` through as an object; customJwt flattens it to `"act.sub"` (and
 * `"act.act.sub"`, ... for earlier actors, which are not needed here).
 */
function immediateActor(identity: UserIdentity): string | null | undefined {
  const nested = identity.act;
  const flat = identity["act.sub"];
  const flatKeys = Object.keys(identity).some((k) => k.startsWith("act."));
  if (nested === undefined && !flatKeys) return null;
  const sub = nested !== undefined ? actSub(nested) : flat;
  return typeof sub === "string" && sub !== "" ? sub : undefined;
}

function actSub(act: unknown): unknown {
  return typeof act === "object" && act !== null && !Array.isArray(act) ? (act as { sub?: unknown }).sub : undefined;
}

/** The ServiceIdentity, or a message saying why the identity is not a usable service. */
function parseService(identity: UserIdentity): ServiceIdentity | string {
  if (!hasClientId(identity)) return "not a service token: the identity has no client_id claim";
  const actor = immediateActor(identity);
  if (actor === undefined) return "malformed delegation: the act claim has no string sub";
  return {
    clientId: identity.client_id as string,
    subject: actor ?? identity.subject,
    scopes: grantedScopes(identity),
    actor,
    issuer: identity.issuer,
    tokenIdentifier: identity.tokenIdentifier,
  };
}
