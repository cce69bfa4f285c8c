// VS Code settings (`refine.*`, camelCase) to the server's configuration schema (snake_case,
// sections provider/loop/hints/verify). Settings left at their empty default are not sent, so
// the server's own sources (.refine.toml, the user's config file) still apply.

export type Settings = Record<string, unknown>;

const MAP: Array<[string, string]> = [
  ["provider.kind", "provider.kind"],
  ["provider.model", "provider.model"],
  ["provider.baseUrl", "provider.base_url"],
  ["provider.timeoutSecs", "provider.timeout_secs"],
  ["provider.modelPath", "provider.model_path"],
  ["loop.maxIterations", "loop.max_iterations"],
  ["loop.minConfidence", "loop.min_confidence"],
  ["loop.reflect", "loop.reflect"],
  ["hints.inlay", "hints.inlay"],
  ["hints.codeLens", "hints.code_lens"],
  ["verify.command", "verify.command"],
];

/** Reads `refine.<key>` through `get`, which returns undefined for unset keys. */
export function toServerSettings(get: (key: string) => unknown, trusted: boolean): Settings {
  const out: Settings = {};
  for (const [from, to] of MAP) {
    const value = get(from);
    if (value === undefined || value === null || value === "") {
      continue;
    }
    if (from === "verify.command" && !trusted) {
      continue;
    }
    const [section, key] = to.split(".");
    const target = (out[section] ??= {}) as Settings;
    target[key] = value;
  }
  return out;
}

/** The environment variable the server reads a provider's API key from (none for Ollama). */
export function apiKeyEnv(kind: string): string | undefined {
  return { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY" }[kind];
}

/** `refine/reviewFinished` (the fields the extension uses). */
export interface ReviewFinished {
  reviewId: string;
  uri: string;
  findings: number;
  lowConfidence: number;
  revision: boolean;
  llmCalls: number;
  notes?: string[];
  error?: string;
}

/** One line for the status bar once a review ends. */
export function summary(p: ReviewFinished): string {
  if (p.error) {
    return `review failed: ${p.error}`;
  }
  const findings = p.findings === 0 ? "no issues found" : p.findings === 1 ? "1 finding" : `${p.findings} findings`;
  const hidden = p.lowConfidence > 0 ? ` (${p.lowConfidence} low-confidence hidden)` : "";
  const revision = p.revision ? ", revision ready" : "";
  return `${findings}${hidden}${revision}`;
}
