/**
 * Service commands on the wire (service.list / service.status / service.action): what they may
 * name, shared by the server (checks before it signs) and the agent's Control process (checks
 * again before it runs anything). Unit names are strict: ASCII letters, digits and `:_.@-`
 * (plus systemd's `\xNN` escapes), not starting with `-` (so never an option) or `.`, at most
 * 200 characters, and with a unit suffix systemd knows (a bare name means `.service`).
 */
export const SERVICE_OPS = ["start", "stop", "restart", "reload", "enable", "disable"] as const;
export type ServiceOp = (typeof SERVICE_OPS)[number];

export const UNIT_SUFFIXES = [".service", ".socket", ".timer", ".target", ".path", ".mount", ".automount", ".swap", ".slice", ".scope", ".device"] as const;

/** Letters, digits, `:_.@-`, and systemd's `\xNN` escapes (e.g. `systemd-fsck@dev-disk-by\x2duuid-….service`). */
const UNIT_RE = /^(?:[A-Za-z0-9:_.@-]|\\x[0-9a-f]{2})+$/;

export function isServiceOp(op: unknown): op is ServiceOp {
  return typeof op === "string" && (SERVICE_OPS as readonly string[]).includes(op);
}

/** The unit's canonical name (a bare "nginx" becomes "nginx.service"), or null when it is not acceptable. */
export function normalizeUnit(name: unknown): string | null {
  if (typeof name !== "string") return null;
  const n = name.trim();
  if (!n || n.length > 200 || n.startsWith("-") || n.startsWith(".") || !UNIT_RE.test(n)) return null;
  if (n.includes("..")) return null;
  const suffixed = UNIT_SUFFIXES.some((s) => n.endsWith(s)) ? n : `${n}.service`;
  // the part before the suffix must not be empty nor end in "-"
  const stem = suffixed.slice(0, suffixed.lastIndexOf("."));
  if (!stem || stem.endsWith("-")) return null;
  return suffixed;
}

/** Units whose stop/disable can cut the host off from its operators: SSH (service or socket-activated) and this agent. */
export function isCriticalUnit(unit: string): boolean {
  const stem = unit.replace(/\.(service|socket)$/, "");
  return stem === "ssh" || stem === "sshd" || stem.startsWith("sshd@") || stem.startsWith("ssh@") || stem.startsWith("servermind-agent");
}

/** Whether this op on this unit needs the typed confirmation and re-authentication (on one host). */
export function isDangerousOp(unit: string, op: ServiceOp): boolean {
  return (op === "stop" || op === "disable") && isCriticalUnit(unit);
}
