import { test } from "node:test";
import * as assert from "node:assert/strict";
import { apiKeyEnv, summary, toServerSettings } from "../src/settings";

const from = (values: Record<string, unknown>) => (key: string) => values[key];

test("settings map to the server's schema", () => {
  const s = toServerSettings(
    from({ "provider.kind": "ollama", "provider.baseUrl": "http://127.0.0.1:11434", "loop.maxIterations": 3, "hints.codeLens": false }),
    true,
  );
  assert.deepEqual(s, {
    provider: { kind: "ollama", base_url: "http://127.0.0.1:11434" },
    loop: { max_iterations: 3 },
    hints: { code_lens: false },
  });
});

test("empty settings are not sent", () => {
  assert.deepEqual(toServerSettings(from({ "provider.model": "", "provider.baseUrl": undefined }), true), {});
});

test("no verify command in an untrusted workspace", () => {
  assert.deepEqual(toServerSettings(from({ "verify.command": "cargo check" }), false), {});
  assert.deepEqual(toServerSettings(from({ "verify.command": "cargo check" }), true), { verify: { command: "cargo check" } });
});

test("API keys go to the variable the server reads", () => {
  assert.equal(apiKeyEnv("openai"), "OPENAI_API_KEY");
  assert.equal(apiKeyEnv("anthropic"), "ANTHROPIC_API_KEY");
  assert.equal(apiKeyEnv("ollama"), undefined);
});

test("the status bar summary says what the review found", () => {
  const base = { reviewId: "r1", uri: "file:///a.rs", lowConfidence: 0, llmCalls: 2, revision: false };
  assert.equal(summary({ ...base, findings: 0 }), "no issues found");
  assert.equal(summary({ ...base, findings: 1, revision: true }), "1 finding, revision ready");
  assert.equal(summary({ ...base, findings: 3, lowConfidence: 2 }), "3 findings (2 low-confidence hidden)");
  assert.equal(summary({ ...base, findings: 0, error: "the model timed out" }), "review failed: the model timed out");
});

test("the local model path maps to provider.model_path", () => {
  assert.deepEqual(toServerSettings(from({ "provider.kind": "local", "provider.modelPath": "/m/x.gguf" }), true), {
    provider: { kind: "local", model_path: "/m/x.gguf" },
  });
});
