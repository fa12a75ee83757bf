/**
 * The real components the Node tests run against, all on 127.0.0.1:
 *
 * - `svctoken serve` (the issuer binary built from this repository), with a configuration of
 *   the test's own in a temporary directory: an audience `convex` (Convex customJwt profile),
 *   a client `worker` with a secret, a client `billing-worker` with a P-256 key that may act for
 *   `user:*`.
 * - `fake-convex` (tests/src/bin/fake-convex.rs): Convex's HTTP function API, verifying tokens
 *   under Convex's rules for a customJwt provider that trusts that issuer, with the functions
 *   `service:whoami` (query), `notes:add` (mutation) and `jobs:whoami` (action).
 *
 * `js/run-tests` builds both binaries and passes their paths in `SVCTOKEN_BIN` and
 * `FAKE_CONVEX_BIN`; without them the default Cargo target directory is searched.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, type JsonWebKey } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** How long a process may take to print that it serves. */
const START_PATIENCE_MS = 60_000;

function binary(env: string, name: string): string {
  const given = process.env[env];
  const path = given ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug", name);
  if (!existsSync(path)) {
    throw new Error(
      `${path} not found: run js/run-tests (it builds ${name}), or build it and set ${env}`,
    );
  }
  return path;
}

/** A free port on 127.0.0.1 (bound, then released). */
export async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolvePort(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

/** Spawns `command` and resolves once a stdout line matches `ready`; rejects if it exits first. */
async function spawnUntil(
  command: string,
  args: string[],
  ready: RegExp,
  options: { cwd?: string; stdin?: "pipe" | "ignore" } = {},
): Promise<{ child: ChildProcess; line: string; log: () => string }> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    stdio: [options.stdin ?? "ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString("utf8");
  });
  const lines = createInterface({ input: child.stdout! });
  const line = await new Promise<string>((resolveLine, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} did not start within ${START_PATIENCE_MS} ms:\n${log}`));
    }, START_PATIENCE_MS);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code ?? signal}) before serving:\n${log}`));
    });
    lines.on("line", (l) => {
      if (ready.test(l)) {
        clearTimeout(timer);
        resolveLine(l);
      }
    });
  });
  child.removeAllListeners("exit");
  return { child, line, log: () => log };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The test clients' credentials. */
export interface Clients {
  /** `worker`: a secret client, audience `convex`, scopes `notes:read notes:write`. */
  readonly workerSecret: string;
  /** `billing-worker`'s private key: a PKCS#8 PEM and the same key as a private JWK. */
  readonly billingKeyPem: string;
  readonly billingKeyJwk: JsonWebKey;
}

/** A running `svctoken serve`, restartable on the same port and data directory. */
export class Issuer {
  readonly url: string;
  readonly dir: string;
  readonly clients: Clients;
  #child: ChildProcess | undefined;
  #log: () => string = () => "";

  private constructor(url: string, dir: string, clients: Clients) {
    this.url = url;
    this.dir = dir;
    this.clients = clients;
  }

  static async start(): Promise<Issuer> {
    const dir = mkdtempSync(join(tmpdir(), "svctoken-js-"));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const workerSecret = randomBytes(32).toString("base64url");
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const billingKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const billingKeyJwk = { ...privateKey.export({ format: "jwk" }), kid: "billing-1", alg: "ES256" };
    const pub = publicKey.export({ format: "jwk" });
    const config = [
      `issuer = "${url}"`,
      `listen = "127.0.0.1:${port}"`,
      // Nothing here reads /metrics or /readyz; the default admin port would collide.
      `admin_listen = "off"`,
      `data_dir = "data"`,
      ``,
      `[[audiences]]`,
      `name = "convex"`,
      `profile = "convex-custom-jwt"`,
      ``,
      `[[clients]]`,
      `id = "worker"`,
      `secret_sha256 = "${createHash("sha256").update(workerSecret).digest("hex")}"`,
      `audiences = ["convex"]`,
      `scopes = ["notes:read", "notes:write"]`,
      ``,
      `[[clients]]`,
      `id = "billing-worker"`,
      `jwks = [{ kty = "EC", kid = "billing-1", use = "sig", alg = "ES256", crv = "P-256", x = "${pub.x}", y = "${pub.y}" }]`,
      `audiences = ["convex"]`,
      `scopes = ["notes:write"]`,
      `act_as = ["user:*"]`,
      ``,
    ].join("\n");
    writeFileSync(join(dir, "svctoken.toml"), config);
    const issuer = new Issuer(url, dir, { workerSecret, billingKeyPem, billingKeyJwk });
    await issuer.restart();
    return issuer;
  }

  /** Starts the issuer (again): same port, same keys. */
  async restart(): Promise<void> {
    await this.kill();
    const { child, log } = await spawnUntil(
      binary("SVCTOKEN_BIN", "svctoken"),
      ["serve", "--config", "svctoken.toml"],
      /signing:/,
      { cwd: this.dir },
    );
    this.#child = child;
    this.#log = log;
  }

  /** Stops the issuer; its port then refuses connections. */
  async kill(): Promise<void> {
    if (this.#child !== undefined) await stop(this.#child);
    this.#child = undefined;
  }

  /** The issuer's stderr so far. */
  log(): string {
    return this.#log();
  }

  /** Tokens the issuer handed out, per its audit trail. */
  issuedCount(clientId: string): number {
    const path = join(this.dir, "data", "audit.log");
    if (!existsSync(path)) return 0;
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as { outcome?: string; client_id?: string })
      .filter((e) => e.outcome === "issued" && e.client_id === clientId).length;
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A running `fake-convex` trusting `issuer` (customJwt, application ID `convex`). */
export class FakeConvex {
  readonly url: string;
  readonly #child: ChildProcess;

  private constructor(url: string, child: ChildProcess) {
    this.url = url;
    this.#child = child;
  }

  static async start(issuer: string): Promise<FakeConvex> {
    const jwks = `${issuer}/audiences/convex/jwks.json`;
    const { child, line } = await spawnUntil(
      binary("FAKE_CONVEX_BIN", "fake-convex"),
      ["--custom-jwt", issuer, jwks, "ES256", "convex"],
      /listening on /,
      { stdin: "pipe" },
    );
    const url = line.slice(line.indexOf("http://"));
    return new FakeConvex(url, child);
  }

  async close(): Promise<void> {
    await stop(this.#child);
  }
}
