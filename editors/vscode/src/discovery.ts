// Finding the refine-ls binary: the setting, then $REFINE_LS_PATH, then a binary bundled in the
// extension, then PATH. Pure (the file system is passed in) so that it can be unit-tested.
import * as path from "node:path";

export interface Probe {
  /** Whether an executable file exists at this path. */
  isExecutable(p: string): boolean;
}

export interface Found {
  path: string;
  source: "setting" | "environment" | "bundled" | "PATH";
}

const exe = (name: string, platform: string) => (platform === "win32" ? `${name}.exe` : name);

export function findServer(
  setting: string | undefined,
  env: Record<string, string | undefined>,
  extensionDir: string,
  platform: string,
  probe: Probe,
): Found | { error: string } {
  const bin = exe("refine-ls", platform);
  if (setting && setting.trim() !== "") {
    return probe.isExecutable(setting)
      ? { path: setting, source: "setting" }
      : { error: `refine.server.path is set to ${setting}, which is not an executable file. Fix the setting or clear it.` };
  }
  const fromEnv = env.REFINE_LS_PATH;
  if (fromEnv && probe.isExecutable(fromEnv)) {
    return { path: fromEnv, source: "environment" };
  }
  const bundled = path.join(extensionDir, "server", bin);
  if (probe.isExecutable(bundled)) {
    return { path: bundled, source: "bundled" };
  }
  const sep = platform === "win32" ? ";" : ":";
  for (const dir of (env.PATH ?? "").split(sep).filter((d) => d !== "")) {
    const candidate = path.join(dir, bin);
    if (probe.isExecutable(candidate)) {
      return { path: candidate, source: "PATH" };
    }
  }
  return {
    error:
      "refine-ls was not found. Install it (`cargo install --path .` in the refine-ls repository) and put it on PATH, or set refine.server.path.",
  };
}
