#!/usr/bin/env node
// A background job that acts for a user: it marks the user's invoice paid in Convex, as the
// service `billing-worker`, authenticating with its private key (private_key_jwt: no shared
// secret is copied into the job). Convex sees `subject` = the user and `act.sub` = the service.
//
//   SVCTOKEN_ISSUER=https://auth.example.com \
//   SVCTOKEN_CLIENT_ID=billing-worker \
//   SVCTOKEN_PRIVATE_KEY_FILE=/etc/billing/billing-worker.pem \
//   CONVEX_URL=https://happy-otter-123.convex.cloud \
//   node node-job.mjs user:42 "Invoice 118 paid"
//
// The issuer needs the worker's public key, and permission to act for users:
//   svctoken clients add --id billing-worker --jwk-file billing-worker.pem --act-as 'user:*' --scope notes:write
import { readFile } from "node:fs/promises";

import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { createTokenSource, OAuthError, withServiceAuth } from "svctoken";

function required(name) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    console.error(`node-job: set ${name} (see the comment at the top of this file)`);
    process.exit(2);
  }
  return value;
}

const [user, body] = process.argv.slice(2);
if (user === undefined || body === undefined) {
  console.error('usage: node node-job.mjs <user subject, e.g. user:42> <note body>');
  process.exit(2);
}

const tokens = createTokenSource({
  issuer: required("SVCTOKEN_ISSUER"),
  clientId: required("SVCTOKEN_CLIENT_ID"),
  privateKey: await readFile(required("SVCTOKEN_PRIVATE_KEY_FILE"), "utf8"),
  audience: "convex",
  scope: "notes:write",
  subject: user, // one token source per user the job acts for
});
// With a generated API (`import { api } from "../convex/_generated/api"`), use api.notes.add.
const convex = withServiceAuth(new ConvexHttpClient(required("CONVEX_URL")), tokens);

try {
  const result = await convex.mutation(anyApi.notes.add, { body });
  console.log(JSON.stringify(result));
} catch (e) {
  if (e instanceof OAuthError) {
    // The issuer refused: e.error is the OAuth code (invalid_client: the key is not registered).
    console.error(`node-job: the issuer refused (${e.error}): ${e.message}`);
  } else {
    console.error(`node-job: ${e instanceof Error ? e.message : String(e)}`);
  }
  process.exit(1);
}
