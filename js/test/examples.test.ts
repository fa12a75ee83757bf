/**
 * The examples, run as a user would run them, against the real issuer and the fake Convex
 * deployment: `examples/node-job.mjs` (a job acting for a user with private_key_jwt), and
 * `examples/sveltekit/` built with `vite build` and served with `node build` (a load and a form
 * action calling Convex, credentials in the server's private environment only).
 *
 * The SvelteKit example's node_modules is installed by `js/run-tests` (`npm ci` there).
 */
import { spawn, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { FakeConvex, Issuer, freePort } from "./support/servers.js";

const examples = resolve(dirname(fileURLToPath(import.meta.url)), "../examples");
const sveltekit = join(examples, "sveltekit");

let issuer: Issuer;
let convex: FakeConvex;
let scratch: string;

beforeAll(async () => {
  issuer = await Issuer.start();
  convex = await FakeConvex.start(issuer.url);
  scratch = mkdtempSync(join(tmpdir(), "svctoken-examples-"));
});

afterAll(async () => {
  await convex?.close();
  await issuer?.close();
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
});

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const out = spawnSync(command, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 180_000,
  });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

describe("examples/node-job.mjs", () => {
  test("acts for the user given, as billing-worker, with its private key", () => {
    const keyFile = join(scratch, "billing-worker.pem");
    writeFileSync(keyFile, issuer.clients.billingKeyPem, { mode: 0o600 });
    const env = {
      SVCTOKEN_ISSUER: issuer.url,
      SVCTOKEN_CLIENT_ID: "billing-worker",
      SVCTOKEN_PRIVATE_KEY_FILE: keyFile,
      CONVEX_URL: convex.url,
    };
    const out = run("node", ["node-job.mjs", "user:42", "Invoice 118 paid"], examples, env);
    expect(out.stderr).toBe("");
    expect(out.status).toBe(0);
    const result = JSON.parse(out.stdout) as { identity: Record<string, string>; args: Record<string, string> };
    expect(result.identity.subject).toBe("user:42");
    expect(result.identity["act.sub"]).toBe("svc:billing-worker");
    expect(result.args).toEqual({ body: "Invoice 118 paid" });
  });

  test("says which variable is missing", () => {
    const out = run("node", ["node-job.mjs", "user:42", "x"], examples, { SVCTOKEN_ISSUER: "" });
    expect(out.status).toBe(2);
    expect(out.stderr).toContain("SVCTOKEN_ISSUER");
  });

  test("a key the issuer doesn't know: the OAuth error, exit 1", () => {
    const keyFile = join(scratch, "unknown.pem");
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    writeFileSync(keyFile, key.export({ type: "pkcs8", format: "pem" }).toString(), { mode: 0o600 });
    const out = run("node", ["node-job.mjs", "user:42", "x"], examples, {
      SVCTOKEN_ISSUER: issuer.url,
      SVCTOKEN_CLIENT_ID: "billing-worker",
      SVCTOKEN_PRIVATE_KEY_FILE: keyFile,
      CONVEX_URL: convex.url,
    });
    expect(out.status).toBe(1);
    expect(out.stderr).toContain("invalid_client");
  });
});

describe("examples/sveltekit", () => {
  test("builds with vite build, and its load and form action call Convex as the service", async () => {
    expect(existsSync(join(sveltekit, "node_modules", "@sveltejs", "kit")), "run js/run-tests: it installs the example").toBe(true);
    const built = run("npx", ["vite", "build"], sveltekit);
    expect(built.status, built.stderr + built.stdout).toBe(0);
    expect(existsSync(join(sveltekit, "build", "index.js"))).toBe(true);

    // The credentials stay on the server: nothing shipped to browsers reads them.
    for (const file of filesUnder(join(sveltekit, "build", "client"))) {
      const text = readFileSync(file, "utf8");
      expect(text, file).not.toContain("SVCTOKEN_CLIENT_SECRET");
      expect(text, file).not.toContain("createTokenSource");
    }

    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const server = spawn("node", ["build"], {
      cwd: sveltekit,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        HOST: "127.0.0.1",
        PORT: String(port),
        ORIGIN: origin,
        SVCTOKEN_ISSUER: issuer.url,
        SVCTOKEN_CLIENT_ID: "worker",
        SVCTOKEN_CLIENT_SECRET: issuer.clients.workerSecret,
        CONVEX_URL: convex.url,
      },
    });
    let log = "";
    server.stdout.on("data", (c: Buffer) => (log += c.toString()));
    server.stderr.on("data", (c: Buffer) => (log += c.toString()));
    try {
      const page = await getWhenUp(`${origin}/`);
      expect(page, log).toContain('<code id="caller">svc:worker</code>');

      const posted = await fetch(`${origin}/`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html", origin },
        body: new URLSearchParams({ body: "from the form" }).toString(),
      });
      const html = await posted.text();
      expect(posted.status, log).toBe(200);
      expect(html).toContain("Added “from the form” as <code>svc:worker</code>");
      expect(log).not.toContain(issuer.clients.workerSecret);
    } finally {
      server.kill("SIGTERM");
    }
  });
});

/** GETs `url` until the server answers (at most 30 s), and returns the body. */
async function getWhenUp(url: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(url);
      return await response.text();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}
