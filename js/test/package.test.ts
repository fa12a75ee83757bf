/**
 * What `npm pack` ships installs and loads as its users load it: `svctoken` and
 * `svctoken/convex` from a project of their own (ESM, with type declarations), `jose` its only
 * runtime dependency, and none of the tests or sources of this repository beyond `src/`.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, expect, test } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const scratch = mkdtempSync(join(tmpdir(), "svctoken-pack-"));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(command: string, args: string[], cwd: string) {
  const out = spawnSync(command, args, { cwd, encoding: "utf8", timeout: 180_000 });
  expect(out.status, `${command} ${args.join(" ")}:\n${out.stderr}`).toBe(0);
  return out.stdout;
}

test("npm pack gives a tarball that installs and imports, with types", () => {
  const packed = JSON.parse(
    run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", scratch], root),
  ) as [{ filename: string; files: { path: string }[] }];
  const files = packed[0].files.map((f) => f.path).sort();
  for (const needed of ["dist/index.js", "dist/index.d.ts", "dist/convex.js", "dist/convex.d.ts", "package.json"]) {
    expect(files).toContain(needed);
  }
  expect(files.filter((f) => !/^(dist|src)\/|^(package\.json|README\.md)$/.test(f))).toEqual([]);

  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  expect(Object.keys(manifest.dependencies)).toEqual(["jose"]);

  const app = join(scratch, "app");
  run("mkdir", ["-p", app], scratch);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  const convexVersion = (
    JSON.parse(readFileSync(join(root, "node_modules", "convex", "package.json"), "utf8")) as { version: string }
  ).version;
  run(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", join(scratch, packed[0].filename), `convex@${convexVersion}`],
    app,
  );
  writeFileSync(
    join(app, "check.mjs"),
    [
      'import * as svctoken from "svctoken";',
      'import * as helpers from "svctoken/convex";',
      "const names = [...Object.keys(svctoken), ...Object.keys(helpers)].sort();",
      "console.log(JSON.stringify(names));",
    ].join("\n"),
  );
  const names = JSON.parse(run("node", ["check.mjs"], app)) as string[];
  for (const name of ["createTokenSource", "withServiceAuth", "OAuthError", "SvctokenError", "requireService", "actingFor"]) {
    expect(names).toContain(name);
  }
  // The declarations resolve through the exports map.
  const types = readFileSync(join(app, "node_modules", "svctoken", "dist", "index.d.ts"), "utf8");
  expect(types).toContain("createTokenSource");
});
