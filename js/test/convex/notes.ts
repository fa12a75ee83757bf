// Notes a service keeps on behalf of users: the typical use of requireService + actingFor.
import { ConvexError, v } from "convex/values";
import { mutation, query } from "./_generated/server";
import { actingFor, requireService } from "svctoken/convex";

/** The svctoken issuer this app trusts; pinned on every note function. */
export const ISSUER = "https://auth.example.com";
/** The services allowed to touch notes. */
const CLIENTS = ["billing-worker", "support-bot"];

/** A service writes a note for the user it acts for. Needs notes:write. */
export const addForUser = mutation({
  args: { body: v.string() },
  handler: async (ctx, { body }) => {
    const svc = await requireService(ctx, { client: CLIENTS, scope: "notes:write", issuer: ISSUER });
    const owner = await actingFor(ctx);
    if (owner === null) {
      throw new ConvexError({ code: "NotActingForUser", message: "call this with a token that acts for a user" });
    }
    return await ctx.db.insert("notes", { owner, body, writtenBy: svc.subject, clientId: svc.clientId });
  },
});

/** The notes of the user the service acts for, or the service's own when it acts as itself. Needs notes:read. */
export const list = query({
  args: {},
  handler: async (ctx) => {
    const svc = await requireService(ctx, { client: CLIENTS, scope: "notes:read", issuer: ISSUER });
    const owner = (await actingFor(ctx)) ?? svc.subject;
    const notes = await ctx.db
      .query("notes")
      .withIndex("by_owner", (q) => q.eq("owner", owner))
      .collect();
    return notes.map(({ owner, body, writtenBy }) => ({ owner, body, writtenBy }));
  },
});
