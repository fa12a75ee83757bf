// convex-test runs Convex functions in the edge-runtime environment, as its docs prescribe
// (https://docs.convex.dev/testing/convex-test): Convex's default runtime is not Node.js.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "edge-runtime",
    server: { deps: { inline: ["convex-test"] } },
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**"],
  },
});
