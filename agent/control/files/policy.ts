/**
 * Which paths a file operation may touch. The server computes the policy from the requesting
 * user's roles and sends it inside the signed command: a list of rules, one per role, each with
 * allowed roots and denied paths; a path is allowed when some rule has it under one of its roots
 * and under none of its denied paths. On top of that the agent refuses, whatever the policy says,
 * its built-in list: password hashes, kernel pseudo-filesystems and device nodes (in-root paths),
 * and its own state and run directories (host paths: identity store, keys, snapshots, sockets).
 * Paths are compared after resolution (./resolve.ts), so a symlink cannot lead around a rule.
 */
import { FileOpError } from "./resolve.ts";

export interface PolicyRule {
  roots: string[];
  denied: string[];
}
export interface FilePolicy {
  rules: PolicyRule[];
}

/** In-root paths no policy can open. */
export const ALWAYS_DENIED: readonly string[] = ["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/servermind-agent", "/proc", "/sys", "/dev", "/run/servermind-agent", "/var/lib/servermind-agent"];

export const within = (p: string, base: string) => base === "/" || p === base || p.startsWith(base.endsWith("/") ? base : base + "/");

const cleanList = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string" && x.startsWith("/") && !x.includes("\0")).map((x) => (x.length > 1 ? x.replace(/\/+$/, "") : x)) : [];

/** The policy carried in a command's args; anything malformed allows nothing. */
export function parsePolicy(v: unknown): FilePolicy {
  const rules = (v as { rules?: unknown } | undefined)?.rules;
  if (!Array.isArray(rules)) return { rules: [] };
  return { rules: rules.slice(0, 100).map((r) => ({ roots: cleanList(r?.roots), denied: cleanList(r?.denied) })) };
}

export interface Guard {
  /** Host directories of the agent itself (state, run), denied by host path. */
  agentDirs: string[];
}

/** Why the canonical in-root `path` (host path `host`) is refused, or null when it is allowed. */
export function refusal(policy: FilePolicy, path: string, host: string, g: Guard): string | null {
  const fixed = ALWAYS_DENIED.find((d) => within(path, d));
  if (fixed) return `${path} is always denied on the agent (${fixed})`;
  const own = g.agentDirs.find((d) => within(host, d));
  if (own) return `${path} is the agent's own state and is always denied`;
  if (!policy.rules.length) return `no file policy allows ${path}`;
  for (const r of policy.rules) {
    if (r.roots.some((root) => within(path, root)) && !r.denied.some((d) => within(path, d))) return null;
  }
  return `${path} is outside the allowed roots of your file policy`;
}

export function enforce(policy: FilePolicy, path: string, host: string, g: Guard): void {
  const why = refusal(policy, path, host, g);
  if (why) throw new FileOpError("denied", why);
}
