/**
 * Remediation planning: for each control, the file states that would make it pass, computed on
 * an overlay (nothing is written). Plans for several controls compose, because each one reads the
 * overlay left by the previous one (three sshd settings end up as three edits of one file).
 */
import { posix } from "node:path";
import type { Control } from "../../monitor/cis/controls.ts";
import { evaluate, idMap, sshdDirectives, sysctlSetting, type Source } from "../../monitor/cis/checks.ts";
import type { OverlayFs } from "../../monitor/cis/root-fs.ts";

export const SYSCTL_DROPIN = "/etc/sysctl.d/99-zz-servermind.conf";
export const LIMITS_DROPIN = "/etc/security/limits.d/60-servermind-core.conf";

export class PlanError extends Error {}

/** Adds the control's fix to the overlay; returns false when the control already passes. */
export function planControl(fs: OverlayFs, c: Control): boolean {
  const before = evaluate(fs, c.check);
  if (before.status === "pass" || before.status === "notapplicable") return false;
  const r = c.remediation;
  switch (r.action) {
    case "fix-file-mode": {
      if (c.check.type !== "file-mode") throw new PlanError(`${c.id}: fix-file-mode needs a file-mode check`);
      const st = fs.stat(c.check.path);
      if (!st) throw new PlanError(`${c.id}: ${c.check.path} does not exist; nothing to fix`);
      const users = idMap(fs, "/etc/passwd");
      const groups = idMap(fs, "/etc/group");
      const max = parseInt(c.check.maxMode, 8);
      const uid = c.check.owner.some((n) => users.get(n) === st.uid) ? st.uid : users.get(c.check.owner[0]) ?? 0;
      const gid = c.check.group.some((n) => groups.get(n) === st.gid) ? st.gid : groups.get(c.check.group[0]) ?? 0;
      fs.set(c.check.path, { exists: true, isDir: st.isDir, mode: st.mode & max, uid, gid }); // content untouched
      break;
    }
    case "set-sshd": {
      if (c.check.type !== "sshd") throw new PlanError(`${c.id}: set-sshd needs an sshd check`);
      const key = c.check.key;
      const d = sshdDirectives(fs).find((x) => x.key === key.toLowerCase());
      if (d) replaceLine(fs, d.source, (indent) => `${indent}${key} ${r.value}`);
      else {
        const text = fs.read("/etc/ssh/sshd_config") ?? "";
        const lines = text.split("\n");
        let at = lines.findIndex((l) => /^\s*match\s/i.test(l));
        if (at < 0) at = lines.length && lines[lines.length - 1] === "" ? lines.length - 1 : lines.length;
        lines.splice(at, 0, `${key} ${r.value}`);
        setText(fs, "/etc/ssh/sshd_config", lines.join("\n"));
      }
      break;
    }
    case "set-sysctl": {
      if (c.check.type !== "sysctl") throw new PlanError(`${c.id}: set-sysctl needs a sysctl check`);
      const key = c.check.key;
      const s = sysctlSetting(fs, key);
      if (s && (s.source.file.startsWith("/etc/") || s.source.file === SYSCTL_DROPIN)) replaceLine(fs, s.source, (indent) => `${indent}${key} = ${r.value}`);
      else appendLine(fs, SYSCTL_DROPIN, `${key} = ${r.value}`, "# Written by ServerMind CIS remediation.\n");
      break;
    }
    case "set-login-defs": {
      if (c.check.type !== "login-defs") throw new PlanError(`${c.id}: set-login-defs needs a login-defs check`);
      if (before.source) replaceLine(fs, before.source, (indent) => `${indent}${c.check.type === "login-defs" ? c.check.key : ""}\t${r.value}`);
      else appendLine(fs, "/etc/login.defs", `${c.check.key}\t${r.value}`, "");
      break;
    }
    case "disable-module": {
      if (c.check.type !== "module-disabled") throw new PlanError(`${c.id}: disable-module needs a module-disabled check`);
      const m = c.check.module;
      setText(fs, `/etc/modprobe.d/servermind-${m}.conf`, `# Written by ServerMind CIS remediation.\ninstall ${m} /bin/false\nblacklist ${m}\n`);
      break;
    }
    case "set-limits-core":
      appendLine(fs, LIMITS_DROPIN, "* hard core 0", "# Written by ServerMind CIS remediation.\n");
      break;
    case "manual":
      throw new PlanError(`${c.id} has no automatic remediation: ${r.text}`);
  }
  const after = evaluate(fs, c.check);
  if (after.status !== "pass") throw new PlanError(`${c.id}: the planned change does not make the control pass (${after.observed})`);
  return true;
}

function setText(fs: OverlayFs, path: string, content: string) {
  const st = fs.stat(path);
  if (!st) ensureParents(fs, posix.dirname(path));
  fs.set(path, { exists: true, content, mode: st?.mode ?? 0o644, uid: st?.uid ?? 0, gid: st?.gid ?? 0 });
}

function ensureParents(fs: OverlayFs, dir: string) {
  if (dir === "/" || fs.stat(dir)) return;
  ensureParents(fs, posix.dirname(dir));
  fs.set(dir, { exists: true, isDir: true, mode: 0o755, uid: 0, gid: 0 });
}

function replaceLine(fs: OverlayFs, s: Source, make: (indent: string) => string) {
  const lines = (fs.read(s.file) ?? "").split("\n");
  const indent = lines[s.line].match(/^\s*/)?.[0] ?? "";
  lines[s.line] = make(indent);
  setText(fs, s.file, lines.join("\n"));
}

function appendLine(fs: OverlayFs, path: string, line: string, header: string) {
  const text = fs.read(path);
  const base = text === null ? header : text.length && !text.endsWith("\n") ? text + "\n" : text;
  setText(fs, path, `${base}${line}\n`);
}
