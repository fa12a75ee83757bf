// The token source and Convex client tests (test/*.test.ts) run in Node.js against a real
// `svctoken serve` and a fake Convex deployment (test/support/); the Convex-side helpers' suite
// (test/convex.test.ts) runs in the edge-runtime environment, as convex-test prescribes (its
// file says so): Convex's default runtime is not Node.js.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    server: { deps: { inline: ["convex-test"] } },
    include: ["test/**/*.test.ts"],
    exclude: ["node_modules/**", "examples/**"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
