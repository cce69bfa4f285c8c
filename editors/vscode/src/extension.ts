// The Refine extension: starts refine-ls through vscode-languageclient and gives it VS Code's
// commands, status bar, diff editor and secret storage. Everything about reviews (findings,
// lightbulb actions, hover, hints, lenses) comes from the server over standard LSP.
import * as fs from "node:fs";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
  WorkDoneProgress,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
  type WorkDoneProgressEnd,
} from "vscode-languageclient/node";
import { findServer } from "./discovery";
import { apiKeyEnv, summary, toServerSettings, type ReviewFinished } from "./settings";

const REVISION_SCHEME = "refine-revision";

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let status: vscode.StatusBarItem;
let ctx: vscode.ExtensionContext;
/** Reviews started from this window and not finished yet: id → document URI. */
const running = new Map<string, string>();
/** Reviews started with "Refine Selection": open the preview when they finish. */
/** Revised texts shown in diff editors, by virtual URI. */
const revisions = new Map<string, string>();
const revisionChanged = new vscode.EventEmitter<vscode.Uri>();
let progressCounter = 0;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  ctx = context;
  output = vscode.window.createOutputChannel("Refine", { log: true });
  status = vscode.window.createStatusBarItem("refine.status", vscode.StatusBarAlignment.Left, 10);
  status.name = "Refine";
  context.subscriptions.push(output, status, revisionChanged);

  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(REVISION_SCHEME, {
      onDidChange: revisionChanged.event,
      provideTextDocumentContent: (uri) => revisions.get(uri.toString()) ?? "",
    }),
    vscode.commands.registerCommand("refineVsc.reviewSelection", () => review(false)),
    vscode.commands.registerCommand("refineVsc.refineSelection", () => review(true)),
    vscode.commands.registerCommand("refineVsc.applyRevision", (uri?: string) => applyRevision(uri)),
    vscode.commands.registerCommand("refineVsc.showRevisionDiff", (uri?: string) => showRevisionDiff(uri)),
    vscode.commands.registerCommand("refineVsc.cancel", cancel),
    vscode.commands.registerCommand("refineVsc.clear", clear),
    vscode.commands.registerCommand("refineVsc.setApiKey", setApiKey),
    vscode.commands.registerCommand("refineVsc.showLogs", () => output.show()),
    vscode.commands.registerCommand("refineVsc.restartServer", restart),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      output.info("workspace trusted: starting refine-ls");
      void start();
    }),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}

function settings(): Record<string, unknown> {
  const cfg = vscode.workspace.getConfiguration("refine");
  return toServerSettings((key) => {
    const inspected = cfg.inspect(key);
    // Only values the user set: defaults stay the server's, so .refine.toml still applies.
    return (
      inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue
    );
  }, vscode.workspace.isTrusted);
}

async function serverEnv(): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const kind of ["openai", "anthropic"]) {
    const key = await ctx.secrets.get(`refine.apiKey.${kind}`);
    const name = apiKeyEnv(kind);
    if (key && name) {
      env[name] = key;
    }
  }
  return env;
}

async function start(): Promise<void> {
  if (client) {
    return;
  }
  if (!vscode.workspace.isTrusted) {
    setStatus("$(shield) Refine: untrusted", "Refine does not run until this workspace is trusted: no code is sent to a model.");
    output.info("workspace not trusted: refine-ls not started");
    return;
  }
  const found = findServer(
    vscode.workspace.getConfiguration("refine").get<string>("server.path"),
    process.env,
    ctx.extensionPath,
    process.platform,
    { isExecutable },
  );
  if ("error" in found) {
    output.error(found.error);
    setStatus("$(error) Refine: no server", found.error);
    void vscode.window.showErrorMessage(found.error, "Open Settings").then((pick) => {
      if (pick) {
        void vscode.commands.executeCommand("workbench.action.openSettings", "refine.server.path");
      }
    });
    return;
  }
  output.info(`using refine-ls at ${found.path} (${found.source})`);
  const serverOptions: ServerOptions = {
    command: found.path,
    args: ["--stdio"],
    options: { env: await serverEnv() },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    // The server takes trust-gated keys (where code goes, what runs) from .refine.toml only in
    // a trusted workspace: VS Code's own workspace trust is the user's word (the server only
    // starts in a trusted workspace at all).
    initializationOptions: { refine: settings(), diagnostics: "push", trustedWorkspace: vscode.workspace.isTrusted },
    middleware: {
      workspace: {
        configuration: (params, token, next) => {
          const rest = params.items.filter((i) => i.section !== "refine");
          const answered = rest.length === 0 ? [] : next({ ...params, items: rest }, token);
          return Promise.resolve(answered).then((others) => {
            const list = Array.isArray(others) ? [...others] : [];
            return params.items.map((i) => (i.section === "refine" ? settings() : list.shift() ?? null));
          });
        },
      },
    },
  };
  const c = new LanguageClient("refine", "Refine", serverOptions, clientOptions);
  client = c;
  c.onDidChangeState((e) => {
    if (e.newState === State.Stopped) {
      running.clear();
      setStatus("$(circle-slash) Refine: stopped", "refine-ls is not running. Run 'Refine: Restart Server'.");
    }
  });
  try {
    await c.start();
  } catch (e) {
    client = undefined;
    output.error(`refine-ls did not start: ${String(e)}`);
    setStatus("$(error) Refine: failed", String(e));
    return;
  }
  c.onNotification("refine/reviewFinished", (p: ReviewFinished) => onFinished(p));
  setStatus("$(check) Refine", "refine-ls is running. Select code and run 'Refine: Review Selection'.");
}

async function stop(): Promise<void> {
  const c = client;
  client = undefined;
  running.clear();
  if (c) {
    try {
      await c.stop(5000);
    } catch (e) {
      output.warn(`stopping refine-ls: ${String(e)}`);
    }
  }
}

async function restart(): Promise<void> {
  await stop();
  await start();
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function setStatus(text: string, tooltip: string, command?: string): void {
  status.text = text;
  status.tooltip = tooltip;
  status.command = command;
  status.show();
}

function needClient(): LanguageClient | undefined {
  if (client && client.state === State.Running) {
    return client;
  }
  const why = vscode.workspace.isTrusted
    ? "refine-ls is not running: see 'Refine: Show Logs', then 'Refine: Restart Server'."
    : "Refine is off in untrusted workspaces: trust this workspace to send code for review.";
  void vscode.window.showWarningMessage(why);
  return undefined;
}

async function run(command: string, args: unknown[], token?: string): Promise<any> {
  const c = needClient();
  if (!c) {
    return undefined;
  }
  try {
    return await c.sendRequest(ExecuteCommandRequest.type, {
      command,
      arguments: args,
      workDoneToken: token,
    });
  } catch (e: any) {
    const message = e?.message ?? String(e);
    void vscode.window.showErrorMessage(`Refine: ${message}`);
    return undefined;
  }
}

async function review(refine: boolean): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const c = needClient();
  if (!editor || !c) {
    return;
  }
  const doc = editor.document;
  let range: vscode.Range = editor.selection;
  if (editor.selection.isEmpty) {
    // No selection: the whole file.
    range = new vscode.Range(0, 0, doc.lineCount, 0);
  }
  const token = `refine-vscode/${++progressCounter}`;
  const disposable = c.onProgress(WorkDoneProgress.type, token, (p) => onProgress(p));
  const result = await run(
    refine ? "refine.refine" : "refine.review",
    [{ uri: doc.uri.toString(), range: c.code2ProtocolConverter.asRange(range) }],
    token,
  );
  const id: string | undefined = result?.reviewId;
  if (!id) {
    disposable.dispose();
    return;
  }
  running.set(id, doc.uri.toString());
  progressDisposables.set(id, disposable);
  setStatus("$(sync~spin) Refine: reviewing…", "Click to cancel the review", "refineVsc.cancel");
}

const progressDisposables = new Map<string, vscode.Disposable>();

function onProgress(p: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd): void {
  if (p.kind === "end" || running.size === 0) {
    return;
  }
  const text = "message" in p && p.message ? p.message : "title" in p ? p.title : "reviewing";
  const pct = "percentage" in p && typeof p.percentage === "number" ? ` ${p.percentage}%` : "";
  setStatus(`$(sync~spin) Refine: ${text}${pct}`, "Click to cancel the review", "refineVsc.cancel");
}

function onFinished(p: ReviewFinished): void {
  // Reviews started elsewhere (a code action, a lens) end here too: their summary is shown.
  running.delete(p.reviewId);
  progressDisposables.get(p.reviewId)?.dispose();
  progressDisposables.delete(p.reviewId);
  const text = summary(p);
  output.info(`review ${p.reviewId}: ${text}`);
  if (running.size === 0) {
    setStatus(
      `$(${p.findings > 0 ? "warning" : "check"}) Refine: ${text}`,
      (p.notes ?? []).join("\n") || text,
      p.revision ? "refineVsc.showRevisionDiff" : "workbench.actions.view.problems",
    );
  }
  // (`refine.refine` has the server apply the revision itself, through workspace/applyEdit:
  // the extension applies nothing more, or a second preview would follow the first.)
}

function targetUri(uri?: string): string | undefined {
  if (typeof uri === "string" && uri !== "") {
    return uri;
  }
  return vscode.window.activeTextEditor?.document.uri.toString();
}

async function applyRevision(uri?: string): Promise<void> {
  const target = targetUri(uri);
  if (!target) {
    return;
  }
  const res = await run("refine.applyRevision", [{ uri: target }]);
  if (res === null) {
    void vscode.window.showInformationMessage("Refine: no revision to apply here. Run 'Refine: Refine Selection' first.");
  }
}

async function showRevisionDiff(uri?: string): Promise<void> {
  const target = targetUri(uri);
  if (!target) {
    return;
  }
  const res = await run("refine.showRevision", [{ uri: target }]);
  if (!res) {
    if (res === null) {
      void vscode.window.showInformationMessage("Refine: no revision for this file.");
    }
    return;
  }
  if (typeof res.revised !== "string") {
    void vscode.window.showWarningMessage("Refine: the file changed since the review; review it again to see a revision.");
    return;
  }
  const original = vscode.Uri.parse(target);
  const virtual = vscode.Uri.from({
    scheme: REVISION_SCHEME,
    path: original.path,
    query: `review=${encodeURIComponent(String(res.reviewId))}`,
  });
  revisions.set(virtual.toString(), res.revised);
  revisionChanged.fire(virtual);
  const name = original.path.split("/").pop() ?? original.path;
  await vscode.commands.executeCommand(
    "vscode.diff",
    original,
    virtual,
    `${name} ↔ Refine revision (${res.fixes} of ${res.findings} findings addressed)`,
    // Its own tab: replacing the file's preview tab would close the file, and its findings.
    { preview: false },
  );
}

async function cancel(): Promise<void> {
  const ids = [...running.keys()];
  if (ids.length === 0) {
    void vscode.window.showInformationMessage("Refine: no review is running.");
    return;
  }
  for (const id of ids) {
    await run("refine.cancel", [{ reviewId: id }]);
  }
}

async function clear(): Promise<void> {
  const target = targetUri();
  if (target) {
    await run("refine.clear", [{ uri: target }]);
  }
}

async function setApiKey(): Promise<void> {
  const current = vscode.workspace.getConfiguration("refine").get<string>("provider.kind") ?? "openai";
  const kinds = ["openai", "anthropic"];
  const kind = await vscode.window.showQuickPick(
    [current, ...kinds.filter((k) => k !== current)].filter((k) => kinds.includes(k)),
    { title: "Refine: API key for which provider?" },
  );
  if (!kind) {
    return;
  }
  const key = await vscode.window.showInputBox({
    title: `Refine: ${kind} API key`,
    prompt: "Kept in VS Code's secret storage and given to refine-ls as an environment variable; never written to settings. Empty removes it.",
    password: true,
    ignoreFocusOut: true,
  });
  if (key === undefined) {
    return;
  }
  if (key.trim() === "") {
    await ctx.secrets.delete(`refine.apiKey.${kind}`);
  } else {
    await ctx.secrets.store(`refine.apiKey.${kind}`, key.trim());
  }
  output.info(`API key for ${kind} ${key.trim() === "" ? "removed" : "stored"}; restarting refine-ls`);
  await restart();
}

function onConfigurationChanged(e: vscode.ConfigurationChangeEvent): void {
  if (!e.affectsConfiguration("refine")) {
    return;
  }
  if (e.affectsConfiguration("refine.server.path")) {
    void restart();
    return;
  }
  // The server asks for the `refine` section again (workspace/configuration) and applies it.
  if (client && client.state === State.Running) {
    void client.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
  }
}
