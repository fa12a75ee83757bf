// Schema of the minimal Convex app that exercises svctoken/convex (src/convex.ts) in tests.
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  notes: defineTable({
    /** The user the note belongs to (the token's sub when a service acts for a user). */
    owner: v.string(),
    body: v.string(),
    /** The service that wrote it (ServiceIdentity.subject), e.g. "svc:billing-worker". */
    writtenBy: v.string(),
    /** Its OAuth client id. */
    clientId: v.string(),
  }).index("by_owner", ["owner"]),
});
