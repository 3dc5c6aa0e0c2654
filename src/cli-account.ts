/**
 * The account running a command-line tool, as the audit trail names it: `cli:root`, or
 * `cli:root (sudo from alice)` when run through sudo. Shared by the token, backup and license CLIs.
 */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";

export function cliAccount(): string {
  const uid = process.getuid?.() ?? -1;
  let name = "";
  try {
    name = userInfo().username;
  } catch {
    // no passwd entry for this uid (containers)
  }
  // Bun answers "unknown" when $USER is unset (cron, systemd, a bare `sudo -i` shell): ask passwd
  if (!name || name === "unknown") name = passwdName(uid) ?? `uid ${uid}`;
  const sudo = process.env.SUDO_USER;
  return `cli:${name}${sudo && sudo !== name ? ` (sudo from ${sudo})` : ""}`;
}

function passwdName(uid: number): string | undefined {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [name, , id] = line.split(":");
      if (name && id === String(uid)) return name;
    }
  } catch {
    // no /etc/passwd (Windows): the uid says it
  }
  return undefined;
}
