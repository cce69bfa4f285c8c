// End-to-end: the packaged extension in a real VS Code (code-server), driven by Playwright in
// Debian's Chromium, with the real refine-ls binary and the scripted model (mock-llm).
//
// It opens a file, selects lines, runs "Refine: Review Selection" from the palette, waits for
// the finding in the Problems panel and the summary in the status bar, opens "Refine: Show
// Revision Diff", checks the lightbulb's sparkle (the revision is tagged LLMGenerated), applies
// the revision through the lightbulb (Ctrl+.) without the refactor preview (its diff was seen),
// saves, checks the file on disk, refines and discards, then dismisses the finding from the
// lightbulb (its squiggle goes, .refine/dismissed.toml is written). Screenshots go to
// test-output/vscode/.
//
// Environment: REFINE_LS (server binary), MOCK_LLM (mock-llm binary), CODE_SERVER (its bin),
// VSIX (the packaged extension), CHROMIUM (default /usr/bin/chromium), OUT (screenshots).
// Exit code 0 only when every check passed.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const need = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`e2e: set ${name}`);
    process.exit(2);
  }
  return path.resolve(v);
};
const REFINE_LS = need("REFINE_LS");
const MOCK_LLM = need("MOCK_LLM");
const CODE_SERVER = need("CODE_SERVER");
const VSIX = need("VSIX");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const OUT = path.resolve(process.env.OUT ?? "test-output/vscode");

const CODE = "// Summe über alle Einträge 😀\nfn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 1..xs.len() {\n        s += xs[i];\n    }\n    s\n}\n\nfn main() {\n    println!(\"{}\", sum(&[1, 2, 3]));\n}\n";
const FIXED = CODE.replace("1..xs.len()", "0..xs.len()");
const FINDING = "the loop starts at 1, so xs[0] is never added to the sum";
const SCRIPT = {
  critique: [
    {
      content: JSON.stringify({
        findings: [
          {
            start_line: 4, end_line: 4, quote: "1..xs.len()", severity: "warning", principle: "correctness",
            message: FINDING, suggestion: "iterate from 0, or use xs.iter().sum()", confidence: 0.9,
          },
        ],
      }),
    },
    { content: JSON.stringify({ findings: [] }) },
  ],
  // The revised selection (lines 2-8), as a model answers it.
  revise: [{ content: "```rust\n" + FIXED.split("\n").slice(1, 8).join("\n") + "\n```" }],
  // The evidence stage (issue 28): `sum` runs on inputs made from its parameter type; the fix
  // changes `sum(&[2])`, `sum(&[1, 2, -1, 2])` and `sum(&[-1, 0])`, and the intent (asked by
  // name and signature) agrees with the fix, so the revision is offered with its counterexample.
  intent: [
    {
      content: JSON.stringify({
        answers: [
          { call: 1, returns: "2" },
          { call: 2, returns: "4" },
          { call: 3, returns: "-1" },
        ],
      }),
    },
  ],
  models: ["gpt-4o-mini"],
};

const cleanups = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "refine-vscode-e2e-"));
let failed = false;
let currentPage;
const step = (msg) => console.log(`e2e: ${msg} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
const t0 = Date.now();

function check(cond, msg) {
  if (!cond) {
    throw new Error(`check failed: ${msg}`);
  }
  console.log(`e2e: ok: ${msg}`);
}

async function startMock() {
  const scriptFile = path.join(tmp, "script.json");
  fs.writeFileSync(scriptFile, JSON.stringify(SCRIPT));
  const child = spawn(MOCK_LLM, [scriptFile], { stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(() => child.kill("SIGKILL"));
  const line = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`mock-llm exited with ${code}`)));
    setTimeout(() => reject(new Error("mock-llm did not print its URL in 10 s")), 10_000);
  });
  return line.trim();
}

async function freePort() {
  const net = await import("node:net");
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startCodeServer(baseUrl, { trusted = true, name = "main" } = {}) {
  const ud = path.join(tmp, `user-data-${name}`);
  const ext = path.join(tmp, `extensions-${name}`);
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: path.join(tmp, "xdg-config"),
    XDG_DATA_HOME: path.join(tmp, "xdg-data"),
    // The server's own state stays in the test's folder.
    REFINE_LS_CONFIG: path.join(tmp, "no-user-config.toml"),
    REFINE_LS_CACHE_DIR: path.join(tmp, "cache"),
    REFINE_LS_TRUST_FILE: path.join(tmp, "trusted"),
    REFINE_LS_PATH: "",
    OPENAI_API_KEY: "",
    RUST_LOG: "refine_ls=info",
  };
  fs.mkdirSync(path.join(ud, "User"), { recursive: true });
  fs.writeFileSync(
    path.join(ud, "User", "settings.json"),
    JSON.stringify(
      {
        "workbench.startupEditor": "none",
        "security.workspace.trust.enabled": !trusted,
        "security.workspace.trust.startupPrompt": "always",
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": false,
        "extensions.autoUpdate": false,
        "update.mode": "none",
        "workbench.tips.enabled": false,
        "editor.minimap.enabled": false,
        "refine.server.path": REFINE_LS,
        "refine.provider.baseUrl": baseUrl,
        "refine.provider.model": "gpt-4o-mini",
      },
      null,
      2,
    ),
  );
  const install = spawnSync(
    CODE_SERVER,
    ["--user-data-dir", ud, "--extensions-dir", ext, "--install-extension", VSIX],
    { env, encoding: "utf8", timeout: 120_000 },
  );
  check(install.status === 0, `the .vsix installs (${(install.stdout + install.stderr).trim().split("\n").pop()})`);
  const port = await freePort();
  const log = fs.openSync(path.join(OUT, `code-server-${name}.log`), "w");
  const child = spawn(
    CODE_SERVER,
    [
      "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--user-data-dir", ud, "--extensions-dir", ext,
      "--disable-telemetry", "--disable-update-check",
      ...(trusted ? ["--disable-workspace-trust"] : []),
    ],
    { env, detached: true, stdio: ["ignore", log, log] },
  );
  // Its own process group: kill all of it afterwards (it leaves children behind otherwise).
  cleanups.push(() => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) {
        return url;
      }
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("code-server did not answer /healthz in 60 s");
}

async function palette(page, command) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 10_000 });
  await input.fill(`>${command}`);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: command }).first();
  await row.waitFor({ state: "visible", timeout: 10_000 });
  await page.keyboard.press("Enter");
}

async function openPage(url, ws) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  cleanups.push(() => browser.close().catch(() => {}));
  const context = await browser.newContext({ viewport: { width: 1400, height: 850 } });
  const page = await context.newPage();
  currentPage = page;
  page.setDefaultTimeout(30_000);
  await page.goto(`${url}/?folder=${encodeURIComponent(ws)}`);
  return page;
}

async function selectFunction(page, editor) {
  await editor.click();
  await page.keyboard.press("Control+Home");
  await page.keyboard.press("ArrowDown");
  for (let i = 0; i < 7; i++) {
    await page.keyboard.press("Shift+ArrowDown");
  }
}

// An untrusted workspace: the server does not start, and a review sends nothing.
async function untrusted(baseUrl) {
  const ws = path.join(tmp, "untrusted");
  fs.mkdirSync(path.join(ws, "src"), { recursive: true });
  fs.writeFileSync(path.join(ws, "src", "sum.rs"), CODE);
  const requestsBefore = await mockRequests(baseUrl);
  const url = await startCodeServer(baseUrl, { trusted: false, name: "untrusted" });
  const page = await openPage(url, ws);
  await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
  // VS Code asks whether to trust the folder: no.
  const no = page.locator(".monaco-dialog-box .monaco-button", { hasText: "No" }).first();
  await no.waitFor({ timeout: 30_000 });
  await no.click();
  step("untrusted: opened in restricted mode");
  const status = page.locator(".statusbar-item", { hasText: "Refine: untrusted" }).first();
  await status.waitFor({ timeout: 30_000 });
  check(true, "untrusted: the status bar says Refine is off");
  const explorerRow = (name) => page.locator(".explorer-folders-view .monaco-list-row", { hasText: name }).first();
  await explorerRow("src").click();
  await explorerRow("sum.rs").click();
  const editor = page.locator(".editor-instance .monaco-editor .view-lines").first();
  await editor.waitFor();
  await selectFunction(page, editor);
  await palette(page, "Refine: Review Selection");
  const toast = page.locator(".notifications-toasts .notification-toast", { hasText: "untrusted workspaces" }).first();
  await toast.waitFor({ timeout: 20_000 });
  await page.screenshot({ path: path.join(OUT, "untrusted.png") });
  check(true, "untrusted: a review explains that nothing is sent until the workspace is trusted");
  await new Promise((r) => setTimeout(r, 1000));
  check((await mockRequests(baseUrl)) === requestsBefore, "untrusted: the model received no request");
}

// Opens the lightbulb (Ctrl+.) where the cursor is and runs the action whose title contains
// `title`, moving the keyboard focus to it (a mouse click is intercepted by an overlay).
async function chooseLightbulbAction(page, title) {
  await page.keyboard.press("Control+.");
  const action = page.locator(".action-widget .monaco-list-row", { hasText: title }).first();
  await action.waitFor({ timeout: 20_000 });
  const rows = page.locator(".action-widget .monaco-list-row.action");
  const count = await rows.count();
  let index = -1;
  for (let i = 0; i < count; i++) {
    if ((await rows.nth(i).innerText()).includes(title)) {
      index = i;
      break;
    }
  }
  check(index >= 0, `the lightbulb offers '${title}'`);
  await page.keyboard.press("Home");
  for (let i = 0; i < index; i++) {
    await page.keyboard.press("ArrowDown");
  }
  await page.keyboard.press("Enter");
}

async function mockRequests(baseUrl) {
  const r = await fetch(`${baseUrl.replace(/\/v1$/, "")}/_requests`);
  const body = await r.json();
  return Array.isArray(body) ? body.length : -1;
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const ws = path.join(tmp, "workspace");
  fs.mkdirSync(path.join(ws, "src"), { recursive: true });
  const file = path.join(ws, "src", "sum.rs");
  fs.writeFileSync(file, CODE);

  const baseUrl = await startMock();
  step(`mock model at ${baseUrl}`);
  const url = await startCodeServer(baseUrl);
  step(`code-server at ${url}`);

  const page = await openPage(url, ws);
  await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
  step("workbench rendered");

  // Open the file from the Explorer.
  const explorerRow = (name) => page.locator(".explorer-folders-view .monaco-list-row", { hasText: name }).first();
  await explorerRow("src").click();
  await explorerRow("sum.rs").click();
  const editor = page.locator(".editor-instance .monaco-editor .view-lines").first();
  await editor.waitFor();
  await page.locator(".tab", { hasText: "sum.rs" }).first().waitFor();
  step("file open");

  // The extension started the server: the status bar says so.
  const statusItem = page.locator(".statusbar-item", { hasText: "Refine" }).first();
  await statusItem.waitFor({ timeout: 60_000 });

  // Select lines 2-8 (the function), as a user would with the keyboard.
  await selectFunction(page, editor);
  await palette(page, "Refine: Review Selection");
  step("review requested");

  // The finding in the Problems panel.
  await page.keyboard.press("Control+Shift+M");
  const problem = page.locator(".markers-panel .monaco-list-row", { hasText: "xs[0] is never added" }).first();
  await problem.waitFor({ timeout: 60_000 });
  const problemText = await problem.innerText();
  check(problemText.includes(FINDING), "the finding is in the Problems panel");
  await page.locator(".squiggly-warning").first().waitFor();
  check((await page.locator(".squiggly-warning").count()) >= 1, "the finding is a warning squiggle in the editor");
  const doneStatus = page.locator(".statusbar-item", { hasText: "revision ready" }).first();
  await doneStatus.waitFor({ timeout: 60_000 });
  check((await doneStatus.innerText()).includes("1 finding, revision ready"), "the status bar shows the review summary");
  await page.screenshot({ path: path.join(OUT, "findings.png") });
  step("findings shown");

  // The revision as a diff editor.
  await palette(page, "Refine: Show Revision Diff");
  const diff = page.locator(".monaco-diff-editor").first();
  await diff.waitFor({ timeout: 30_000 });
  await page.locator(".monaco-diff-editor .line-insert, .monaco-diff-editor .char-insert").first().waitFor();
  await page.screenshot({ path: path.join(OUT, "revision-diff.png") });
  check(await page.locator(".tab", { hasText: "Refine revision" }).first().isVisible(), "the diff editor shows original ↔ revision");
  step("diff shown");

  // Back in the file (its tab is still there, findings and all): the lightbulb (Ctrl+.) on the
  // finding's line, then the refactor preview.
  await page.locator(".tab", { hasText: "sum.rs", hasNotText: "Refine revision" }).first().click();
  await page.locator(".squiggly-warning").first().waitFor();
  await editor.click();
  await page.keyboard.press("Control+Home");
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press("ArrowDown");
  }
  await page.keyboard.press("End");
  // The lightbulb on the finding's line: the revision is the model's, so it has the sparkle
  // (vscode-languageclient announces `codeAction.tagSupport`, the server sends `tags:
  // [LLMGenerated]`, the client maps it to `isAI`); without the tag it is a plain lightbulb.
  // code-server grants every extension its API proposals; desktop VS Code draws the sparkle
  // only for extensions allowed the `codeActionAI` proposal, until it is final.
  const sparkle = await page.waitForFunction(
    () => {
      const bulbs = [...document.querySelectorAll(".lightBulbWidget, .gutter-lightbulb, [class*='gutter-lightbulb']")];
      const shown = bulbs.filter((b) => b.getClientRects().length > 0);
      const classes = shown.map((b) => b.className).join(" ");
      return shown.length > 0 && /sparkle|aifix/.test(classes) ? classes : false;
    },
    null,
    { timeout: 20_000 },
  ).then((h) => h.jsonValue(), () => "");
  await page.screenshot({ path: path.join(OUT, "lightbulb.png") });
  check(sparkle !== "", `the lightbulb has the sparkle of a model's action (${sparkle})`);
  await chooseLightbulbAction(page, "Refine: apply revision");
  // The revision's diff was looked at: its change annotation no longer needs confirmation, so
  // the edit goes in at once (a revision not looked at opens the refactor preview: the
  // "Refine Selection" step below).
  check(
    (await page.locator(".bulk-edit-panel .monaco-list-row input.edit-checkbox").count()) === 0,
    "a revision whose diff was shown is applied without the refactor preview",
  );
  step("revision applied from the lightbulb");

  // Save and read the file from disk.
  await editor.click();
  await page.keyboard.press("Control+S");
  let text = "";
  for (let i = 0; i < 100; i++) {
    text = fs.readFileSync(file, "utf8");
    if (text === FIXED) {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  check(text === FIXED, "the revision is applied and saved, and nothing else changed");
  await page.screenshot({ path: path.join(OUT, "applied.png") });
  step("applied");

  // "Refine: Refine Selection": review, then the refactor preview on its own; Discard leaves
  // the text as it was.
  await fetch(`${baseUrl.replace(/\/v1$/, "")}/_script`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(SCRIPT),
  });
  fs.writeFileSync(file, CODE);
  await page.locator(".view-line", { hasText: "1..xs.len()" }).first().waitFor({ timeout: 20_000 });
  await selectFunction(page, editor);
  await palette(page, "Refine: Refine Selection");
  const discard = page.locator(".monaco-button", { hasText: /^Discard$/ }).first();
  await discard.waitFor({ timeout: 60_000 });
  check(
    (await page.locator(".bulk-edit-panel .monaco-list-row", { hasText: "0..xs.len()" }).count()) >= 1,
    "Refine Selection opens the refactor preview with the revision",
  );
  await page.screenshot({ path: path.join(OUT, "refine-preview.png") });
  await discard.click();
  // One apply per command: no second preview after Discard, and no "no revision to apply".
  await page.waitForTimeout(3000);
  check(
    (await page.locator(".monaco-button", { hasText: /^Discard$/ }).count()) === 0,
    "Refine Selection opens one preview, not a second one after Discard",
  );
  check(
    (await page.locator(".notifications-toasts", { hasText: "no revision to apply" }).count()) === 0,
    "no 'no revision to apply here' message after Refine Selection",
  );
  await editor.click();
  await page.keyboard.press("Control+S");
  await page.waitForTimeout(500);
  check(fs.readFileSync(file, "utf8") === CODE, "Discard in the preview leaves the text unchanged");

  // "Refine: dismiss this finding" from the lightbulb: the squiggle goes, and the dismissal is
  // written to the workspace's .refine/dismissed.toml for the team to commit.
  await page.locator(".squiggly-warning").first().waitFor({ timeout: 20_000 });
  await editor.click();
  await page.keyboard.press("Control+Home");
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press("ArrowDown");
  }
  await page.keyboard.press("End");
  await chooseLightbulbAction(page, "Refine: dismiss this finding");
  const dismissedFile = path.join(ws, ".refine", "dismissed.toml");
  let dismissed = "";
  for (let i = 0; i < 100 && !dismissed; i++) {
    dismissed = fs.existsSync(dismissedFile) ? fs.readFileSync(dismissedFile, "utf8") : "";
    await new Promise((r) => setTimeout(r, 100));
  }
  check(
    dismissed.includes('path = "src/sum.rs"') && dismissed.includes('scope = "finding"'),
    `the dismissal is written to .refine/dismissed.toml: ${dismissed}`,
  );
  await page.locator(".squiggly-warning").first().waitFor({ state: "detached", timeout: 20_000 });
  check((await page.locator(".squiggly-warning").count()) === 0, "the dismissed finding's squiggle is gone");
  await page.screenshot({ path: path.join(OUT, "dismissed.png") });
  step("finding dismissed");
  step("trusted workspace done");

  await untrusted(baseUrl);
  step("done");
}

try {
  await main();
} catch (e) {
  failed = true;
  console.error(`e2e: FAILED: ${e?.stack ?? e}`);
  if (currentPage) {
    await currentPage.screenshot({ path: path.join(OUT, "failure.png") }).catch(() => {});
    const html = await currentPage.content().catch(() => "");
    fs.writeFileSync(path.join(OUT, "failure.html"), html);
    console.error(`e2e: screenshot of the failure: ${path.join(OUT, "failure.png")}`);
  }
} finally {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {}
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
