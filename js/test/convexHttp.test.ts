/**
 * withServiceAuth with the official `ConvexHttpClient`, calling a fake Convex deployment that
 * verifies tokens under Convex's rules (a customJwt provider trusting the real issuer): the
 * identity functions see, sharing one wrapped client across concurrent requests, the retry on
 * a refused token and the mutation queue (`fetchToken`'s fit with `ConvexClient.setAuth` is
 * checked by `tsc` in types.check.ts).
 */
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { createTokenSource, withServiceAuth, type TokenSource } from "svctoken";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { FakeConvex, Issuer } from "./support/servers.js";

let issuer: Issuer;
let convex: FakeConvex;

beforeAll(async () => {
  issuer = await Issuer.start();
  convex = await FakeConvex.start(issuer.url);
});

afterAll(async () => {
  await convex?.close();
  await issuer?.close();
});

interface Identity {
  tokenIdentifier: string;
  subject: string;
  issuer: string;
  client_id?: string;
  scope?: string;
  "act.sub"?: string;
}

const api = anyApi;

function workerSource(): TokenSource {
  return createTokenSource({
    issuer: issuer.url,
    clientId: "worker",
    clientSecret: issuer.clients.workerSecret,
    audience: "convex",
  });
}

function actingFor(user: string): TokenSource {
  return createTokenSource({
    issuer: issuer.url,
    clientId: "billing-worker",
    privateKey: issuer.clients.billingKeyPem,
    audience: "convex",
    subject: user,
  });
}

function deployment(): ConvexHttpClient {
  return new ConvexHttpClient(convex.url, { skipConvexDeploymentUrlCheck: true, logger: false });
}

describe("withServiceAuth", () => {
  test("query, mutation and action carry the service's identity", async () => {
    const client = withServiceAuth(deployment(), workerSource());
    const who = (await client.query(api.service!.whoami!, {})) as Identity;
    expect(who.subject).toBe("svc:worker");
    expect(who.issuer).toBe(issuer.url);
    expect(who.tokenIdentifier).toBe(`${issuer.url}|svc:worker`);
    expect(who.client_id).toBe("worker");
    expect(who.scope).toBe("notes:read notes:write");
    const added = (await client.mutation(api.notes!.add!, { body: "hi", n: 42n })) as {
      identity: Identity;
      args: Record<string, unknown>;
    };
    expect(added.identity.subject).toBe("svc:worker");
    expect(added.args).toEqual({ body: "hi", n: 42n });
    const viaAction = (await client.action(api.jobs!.whoami!, {})) as Identity;
    expect(viaAction.subject).toBe("svc:worker");
  });

  test("acting for a user: Convex sees the user as subject and the service as act.sub", async () => {
    const client = withServiceAuth(deployment(), actingFor("user:42"));
    const who = (await client.query(api.service!.whoami!, {})) as Identity;
    expect(who.subject).toBe("user:42");
    expect(who["act.sub"]).toBe("svc:billing-worker");
  });

  test("one shared client, concurrent requests for different users: each call carries its own token", async () => {
    const shared = deployment();
    const users = Array.from({ length: 5 }, (_, i) => `user:${i + 1}`);
    const clients = users.map((u) => withServiceAuth(shared, actingFor(u)));
    const calls = Array.from({ length: 200 }, (_, i) => {
      const k = i % users.length;
      const call =
        i % 2 === 0
          ? clients[k]!.query(api.service!.whoami!, {})
          : clients[k]!.mutation(api.notes!.add!, { body: `${i}` }, { skipQueue: true }).then(
              (r) => (r as { identity: Identity }).identity,
            );
      return call.then((who) => [users[k], (who as Identity).subject] as const);
    });
    for (const [expected, seen] of await Promise.all(calls)) expect(seen).toBe(expected);
    // The given client was never given a token: called bare, it is anonymous.
    expect(await shared.query(api.service!.whoami!, {})).toBeNull();
  });

  test("a refused token is replaced once and the call sent again", async () => {
    const real = workerSource();
    let handedBad = false;
    const forced: (string | undefined)[] = [];
    const source: Pick<TokenSource, "getToken" | "forceRefresh"> = {
      // The first token is one Convex refuses (another issuer's would do the same).
      getToken: async () => {
        if (handedBad) return await real.getToken();
        handedBad = true;
        return "eyJhbGciOiJFUzI1NiJ9.e30.AAAA";
      },
      forceRefresh: async (options) => {
        forced.push(options?.rejected);
        return await real.forceRefresh(options);
      },
    };
    const client = withServiceAuth(deployment(), source);
    const who = (await client.query(api.service!.whoami!, {})) as Identity;
    expect(who.subject).toBe("svc:worker");
    expect(forced).toEqual(["eyJhbGciOiJFUzI1NiJ9.e30.AAAA"]);
  });

  test("a token refused twice is the deployment's error, after exactly one retry", async () => {
    let calls = 0;
    const bad: Pick<TokenSource, "getToken" | "forceRefresh"> = {
      getToken: async () => "not.a.token",
      forceRefresh: async () => {
        calls += 1;
        return "still.not.token";
      },
    };
    let requests = 0;
    const client = withServiceAuth(deployment(), bad, {
      fetch: async (input, init) => {
        requests += 1;
        return await fetch(input, init);
      },
    });
    await expect(client.query(api.service!.whoami!, {})).rejects.toThrow(/token|auth/i);
    expect(calls).toBe(1);
    expect(requests).toBe(2);
  });

  test("a function error is not retried", async () => {
    let requests = 0;
    const client = withServiceAuth(deployment(), workerSource(), {
      fetch: async (input, init) => {
        requests += 1;
        return await fetch(input, init);
      },
    });
    await expect(client.query(api.nowhere!.missing!, {})).rejects.toThrow(/Could not find public function/);
    expect(requests).toBe(1);
  });

  test("mutations are sent one at a time in call order, unless skipQueue", async () => {
    const sent: string[] = [];
    let inFlight = 0;
    let most = 0;
    const client = withServiceAuth(deployment(), workerSource(), {
      fetch: async (input, init) => {
        const body = JSON.parse(String(init?.body)) as { args: [{ body: string }] };
        sent.push(body.args[0].body);
        inFlight += 1;
        most = Math.max(most, inFlight);
        try {
          return await fetch(input, init);
        } finally {
          inFlight -= 1;
        }
      },
    });
    const bodies = Array.from({ length: 20 }, (_, i) => `m${i}`);
    await Promise.all(bodies.map((body) => client.mutation(api.notes!.add!, { body })));
    expect(sent).toEqual(bodies);
    expect(most).toBe(1);
    sent.length = 0;
    most = 0;
    await Promise.all(bodies.map((body) => client.mutation(api.notes!.add!, { body }, { skipQueue: true })));
    expect(most).toBeGreaterThan(1);
  });

});
