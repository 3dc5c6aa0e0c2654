/**
 * The agent targets the server builds and serves (the same list as agent/build.ts TARGETS, which
 * test/downloads/agent-builds.test.ts compares), and their file names in the dist directory.
 */
export const AGENT_TARGETS = ["linux-x64", "linux-x64-musl", "linux-arm64", "darwin-arm64", "darwin-x64", "windows-x64"] as const;

export function agentBinaryName(target: string): string {
  return `servermind-agent-${target}${target.startsWith("windows") ? ".exe" : ""}`;
}

/** This machine's target first: its binary is ready seconds after start, the cross-compiled ones follow. */
export function hostTargetFirst(targets: readonly string[]): string[] {
  const os = process.platform === "win32" ? "windows" : process.platform;
  const own = `${os}-${process.arch}`;
  return [...targets].sort((a, b) => Number(b === own) - Number(a === own));
}
