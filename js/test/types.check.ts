// Compile-time checks, run by `tsc --noEmit` (npm test runs it before vitest; vitest doesn't
// collect this file). A type that stops fitting fails the build of the tests.
import type { ConvexClient, ConvexHttpClient } from "convex/browser";
import type { ServiceConvexClient, TokenSource } from "svctoken";

/** `source.fetchToken` is what the official WebSocket client's `setAuth` takes. */
export function plugIntoConvexClient(client: ConvexClient, source: TokenSource): void {
  client.setAuth(source.fetchToken);
}

/** The wrapper's calls have the client's own types. */
export function sameCallsAsTheClient(wrapped: ServiceConvexClient): Pick<ConvexHttpClient, "query" | "mutation" | "action"> {
  return wrapped;
}
