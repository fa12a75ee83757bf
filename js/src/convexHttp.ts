/**
 * `withServiceAuth`: the official `ConvexHttpClient`, with a svctoken token on every call.
 *
 * A bare `ConvexHttpClient` keeps its token as instance state (`setAuth`), and reads it when a
 * request is sent: queued mutations read it later still. In a server that shares one client
 * across concurrent requests, a `setAuth` for one request can send another's call with the
 * wrong token. So the wrapper never calls `setAuth` on the client it is given: each call runs
 * on a call-scoped client of the same class and deployment URL (constructing one sets a few
 * fields; it opens nothing), created with the token that call got. The given client is left
 * untouched, and the wrapper is safe to share.
 *
 * @module
 */
import type { ConvexHttpClient } from "convex/browser";

import type { TokenSource } from "./tokenSource.js";

/** `query`, `mutation` and `action` with the client's own types, and its `url`. */
export type ServiceConvexClient = Pick<ConvexHttpClient, "query" | "mutation" | "action" | "url">;

/** Options of the call-scoped clients: what the given client was constructed with, if anything. */
export interface WithServiceAuthOptions {
  /** Passed to each call-scoped client (a `ConvexHttpClient` constructor option). */
  readonly fetch?: typeof globalThis.fetch;
  /** Passed to each call-scoped client: `false` silences function log lines. */
  readonly logger?: NonNullable<ConstructorParameters<typeof ConvexHttpClient>[1]>["logger"];
}

type Kind = "query" | "mutation" | "action";
type ClientClass = new (
  address: string,
  options: {
    auth: string;
    fetch: typeof globalThis.fetch;
    logger?: unknown;
    skipConvexDeploymentUrlCheck: boolean;
  },
) => ConvexHttpClient;

/**
 * Wraps `client` so that every `query`, `mutation` and `action` carries a token from `source`
 * (`Authorization: Bearer`), refreshed ahead of expiry. When the deployment refuses the token
 * (HTTP 401: it ran nothing), the call gets a new token once and is sent once more.
 *
 * Mutations from one wrapper are sent one at a time in call order, as the client's own queue
 * does, unless called with `{ skipQueue: true }`.
 *
 * ```ts
 * const convex = withServiceAuth(new ConvexHttpClient(process.env.CONVEX_URL!), tokens);
 * const notes = await convex.query(api.notes.list, { limit: 10 });
 * ```
 */
export function withServiceAuth(
  client: ConvexHttpClient,
  source: Pick<TokenSource, "getToken" | "forceRefresh">,
  options: WithServiceAuthOptions = {},
): ServiceConvexClient {
  const Client = client.constructor as ClientClass;
  const url = client.url;
  const baseFetch = options.fetch ?? globalThis.fetch;
  let queue: Promise<unknown> = Promise.resolve();

  async function call(kind: Kind, fn: unknown, args: unknown): Promise<unknown> {
    let token = await source.getToken();
    for (let attempt = 0; ; attempt += 1) {
      let status = 0;
      const observing: typeof globalThis.fetch = async (input, init) => {
        const response = await baseFetch(input, init);
        status = response.status;
        return response;
      };
      const scoped = new Client(url, {
        auth: token,
        fetch: observing,
        ...(options.logger === undefined ? {} : { logger: options.logger }),
        skipConvexDeploymentUrlCheck: true,
      });
      try {
        const run = scoped[kind] as (fn: unknown, args: unknown) => Promise<unknown>;
        return await run.call(scoped, fn, args);
      } catch (e) {
        if (status !== 401 || attempt > 0) throw e;
        token = await source.forceRefresh({ rejected: token });
      }
    }
  }

  function queued(fn: unknown, args: unknown): Promise<unknown> {
    const result = queue.then(() => call("mutation", fn, args));
    // The next mutation waits for this one, whatever its outcome.
    queue = result.catch(() => undefined);
    return result;
  }

  const wrapped = {
    get url() {
      return url;
    },
    query: (fn: unknown, args?: unknown) => call("query", fn, args),
    mutation: (fn: unknown, args?: unknown, mutationOptions?: { skipQueue?: boolean }) =>
      mutationOptions?.skipQueue === true ? call("mutation", fn, args) : queued(fn, args),
    action: (fn: unknown, args?: unknown) => call("action", fn, args),
  };
  return wrapped as unknown as ServiceConvexClient;
}
