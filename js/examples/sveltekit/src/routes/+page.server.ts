import { fail } from "@sveltejs/kit";
import { anyApi } from "convex/server";
import { convex } from "$lib/server/convex";
import type { Actions, PageServerLoad } from "./$types";

// With the Convex app's generated API (`import { api } from "$convex/_generated/api"`), use
// api.service.whoami and api.notes.add: the calls are then typed end to end.
const api = anyApi;

interface Identity {
  subject: string;
  client_id?: string;
}

export const load: PageServerLoad = async () => {
  const caller = (await convex().query(api.service.whoami, {})) as Identity | null;
  return { caller: caller?.subject ?? null };
};

export const actions: Actions = {
  default: async ({ request }) => {
    const body = (await request.formData()).get("body");
    if (typeof body !== "string" || body.trim() === "") return fail(400, { error: "write a note" });
    const added = (await convex().mutation(api.notes.add, { body })) as { identity: Identity };
    return { added: body, by: added.identity.subject };
  },
};
