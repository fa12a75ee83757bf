// Thin wrappers that expose the helpers' results, so tests can check them through real calls.
import { v } from "convex/values";
import { query } from "./_generated/server";
import { actingFor, requireService, whoami as diagnose } from "svctoken/convex";

const strings = v.optional(v.union(v.string(), v.array(v.string())));

/** Who is calling: the ServiceIdentity (any svctoken service, no requirements) and the user acted for. */
export const whoami = query({
  args: {},
  handler: async (ctx) => ({ service: await requireService(ctx), actingFor: await actingFor(ctx) }),
});

/** requireService with caller-chosen options (tests only: a real function hard-codes its requirements). */
export const check = query({
  args: { client: strings, scope: strings, issuer: v.optional(v.string()) },
  handler: async (ctx, opts) => await requireService(ctx, opts),
});

/** actingFor alone, for any caller (service or not). */
export const actingForQuery = query({
  args: {},
  handler: async (ctx) => await actingFor(ctx),
});

/** The never-throwing diagnosis `svctoken doctor --function` prints. */
export const diagnosis = query({
  args: {},
  handler: (ctx) => diagnose(ctx),
});
