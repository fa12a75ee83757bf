// Server-only (src/lib/server/ can't be imported by code that reaches the browser): the
// credentials come from private environment variables, read when the server runs, never at
// build time.
//
//   SVCTOKEN_ISSUER         https://auth.example.com
//   SVCTOKEN_CLIENT_ID      web-frontend
//   SVCTOKEN_CLIENT_SECRET  the secret `svctoken clients add --id web-frontend` printed
//   CONVEX_URL              https://happy-otter-123.convex.cloud
import { env } from "$env/dynamic/private";
import { ConvexHttpClient } from "convex/browser";
import { createTokenSource, withServiceAuth, type ServiceConvexClient } from "svctoken";

let client: ServiceConvexClient | undefined;

/** One client for the whole server: it is safe to share across concurrent requests. */
export function convex(): ServiceConvexClient {
  client ??= withServiceAuth(
    new ConvexHttpClient(required("CONVEX_URL")),
    createTokenSource({
      issuer: required("SVCTOKEN_ISSUER"),
      clientId: required("SVCTOKEN_CLIENT_ID"),
      clientSecret: required("SVCTOKEN_CLIENT_SECRET"),
      audience: "convex",
    }),
  );
  return client;
}

function required(name: string): string {
  const value = env[name];
  if (value === undefined || value === "") throw new Error(`set ${name} in the server's environment`);
  return value;
}
