// Bundles the extension (and compiles the unit tests) with esbuild.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

await build({
  entryPoints: ["src/extension.ts"],
  bundle: true,
  outfile: "dist/extension.js",
  external: ["vscode"],
  format: "cjs",
  platform: "node",
  target: "node18",
  sourcemap: false,
  minify: true,
});
await build({
  entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`),
  bundle: true,
  outdir: "out/test",
  format: "cjs",
  platform: "node",
  target: "node18",
});
