import { test } from "node:test";
import * as assert from "node:assert/strict";
import { findServer } from "../src/discovery";

const only = (...paths: string[]) => ({ isExecutable: (p: string) => paths.includes(p) });

test("the setting wins", () => {
  const r = findServer("/opt/refine-ls", { REFINE_LS_PATH: "/env/refine-ls", PATH: "/bin" }, "/ext", "linux", only("/opt/refine-ls", "/env/refine-ls"));
  assert.deepEqual(r, { path: "/opt/refine-ls", source: "setting" });
});

test("a setting that points nowhere is an error, not a silent fallback", () => {
  const r = findServer("/nope", { PATH: "/bin" }, "/ext", "linux", only("/bin/refine-ls"));
  assert.ok("error" in r && r.error.includes("refine.server.path"));
});

test("then the environment, then the bundled binary, then PATH", () => {
  assert.deepEqual(findServer("", { REFINE_LS_PATH: "/env/refine-ls" }, "/ext", "linux", only("/env/refine-ls")), {
    path: "/env/refine-ls",
    source: "environment",
  });
  assert.deepEqual(findServer(undefined, { PATH: "/usr/bin:/bin" }, "/ext", "linux", only("/ext/server/refine-ls", "/bin/refine-ls")), {
    path: "/ext/server/refine-ls",
    source: "bundled",
  });
  assert.deepEqual(findServer(undefined, { PATH: "/usr/bin:/bin" }, "/ext", "linux", only("/bin/refine-ls")), {
    path: "/bin/refine-ls",
    source: "PATH",
  });
});

test("windows looks for refine-ls.exe on ; separated PATH", () => {
  const r = findServer(undefined, { PATH: "C:\\a;C:\\b" }, "C:\\ext", "win32", { isExecutable: (p) => p.endsWith("refine-ls.exe") && p.includes("b") });
  assert.ok(!("error" in r) && r.source === "PATH");
});

test("nothing found gives a fix", () => {
  const r = findServer(undefined, { PATH: "/bin" }, "/ext", "linux", only());
  assert.ok("error" in r && r.error.includes("cargo install"));
});
