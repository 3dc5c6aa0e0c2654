/**
 * What a remediation must do besides writing files for the change to take effect on the running
 * system, planned with the file changes (so a dry run shows it) and carried out through an
 * injected `HostServices`:
 *
 *   sshd-reload  the content of sshd_config or a drop-in changed: `sshd -t` first (when sshd is
 *                installed); if it rejects the configuration the files are restored and nothing
 *                is reloaded; otherwise sshd is reloaded.
 *   sysctl       a kernel parameter was set persistently: the same value is written to the
 *                running kernel (/proc/sys, what `sysctl -w` does). The value it had is recorded
 *                so a rollback puts it back.
 *
 * Nothing else needs an action: login.defs and limits.d are read at each login, modprobe.d at the
 * next module load, and file modes apply at once. The running system is touched only when the
 * root is "/" (createHostServices); any other root gets createDetachedServices, which skips every
 * effect and says so, so tests on prepared roots never reach the host's services.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Control } from "../../monitor/cis/controls.ts";
import type { RootFs } from "../../monitor/cis/root-fs.ts";

export type Effect =
  | { kind: "sshd-reload"; files: string[]; what: string }
  | { kind: "sysctl"; key: string; value: string; before: string | null; what: string };

export interface Outcome {
  status: "done" | "failed" | "skipped";
  output: string;
}

export type EffectOutcome = Effect & Outcome & { step?: "validate" | "reload" };

export interface HostServices {
  /** False when the root is not the running system: every effect is skipped. */
  readonly live: boolean;
  /** `sshd -t`; skipped when sshd is not installed. */
  validateSshd(): Outcome;
  reloadSshd(): Outcome;
  setSysctl(key: string, value: string): Outcome;
}

export const isSshdConfig = (path: string) => path === "/etc/ssh/sshd_config" || path.startsWith("/etc/ssh/sshd_config.d/");
const procPath = (key: string) => `/proc/sys/${key.replace(/\./g, "/")}`;

/**
 * The effects of a plan: `contentChanged` are the in-root paths whose bytes change, `planned` the
 * controls that will be fixed, `fs` the root before the change (for the running sysctl values).
 */
export function planEffects(planned: Control[], contentChanged: string[], fs: RootFs): Effect[] {
  const out: Effect[] = [];
  const sshd = contentChanged.filter(isSshdConfig);
  if (sshd.length) out.push({ kind: "sshd-reload", files: sshd, what: "validate with sshd -t, then reload sshd" });
  for (const c of planned) {
    if (c.remediation.action !== "set-sysctl" || c.check.type !== "sysctl" || c.remediation.value === undefined) continue;
    const before = fs.read(procPath(c.check.key))?.trim() ?? null;
    out.push({ kind: "sysctl", key: c.check.key, value: c.remediation.value, before, what: `sysctl -w ${c.check.key}=${c.remediation.value}${before === null ? "" : ` (running value ${before})`}` });
  }
  return out;
}

/** sshd is validated first; a rejected configuration stops here (the caller restores the files). */
export function validate(effects: Effect[], services: HostServices): EffectOutcome | null {
  const e = effects.find((x) => x.kind === "sshd-reload");
  if (!e) return null;
  return { ...e, step: "validate", ...services.validateSshd() };
}

/** Applies every effect; failures are reported, not thrown. `undo` sets sysctl values back to `before`. */
export function apply(effects: Effect[], services: HostServices, undo = false): EffectOutcome[] {
  const out: EffectOutcome[] = [];
  for (const e of effects) {
    if (e.kind === "sshd-reload") out.push({ ...e, step: "reload", ...services.reloadSshd() });
    else if (undo && e.before === null) out.push({ ...e, status: "skipped", output: "the running value was not known before the change" });
    else out.push({ ...e, ...services.setSysctl(e.key, undo ? e.before! : e.value) });
  }
  return out;
}

function run(argv: string[]): Outcome {
  try {
    const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
    const output = (p.stderr.toString() + p.stdout.toString()).trim().slice(0, 4000);
    return p.exitCode === 0 ? { status: "done", output: output || `${argv.join(" ")}: ok` } : { status: "failed", output: `${argv.join(" ")} exited with ${p.exitCode ?? p.signalCode}: ${output}` };
  } catch (e) {
    return { status: "failed", output: `${argv[0]}: ${e instanceof Error ? e.message : e}` };
  }
}

const SSHD = ["/usr/sbin/sshd", "/usr/bin/sshd"];
const PRIVSEP_DIR = "/run/sshd";
const UNIT_DIRS = ["/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

/** The running system ("/"): sshd -t, systemctl (or SIGHUP without systemd), /proc/sys. */
export function createHostServices(): HostServices {
  return {
    live: true,
    validateSshd() {
      const bin = SSHD.find((b) => existsSync(b));
      if (!bin) return { status: "skipped", output: "sshd is not installed" };
      // `sshd -t` refuses to run without its privilege separation directory, whatever the
      // configuration says; ssh.service creates it at start (RuntimeDirectory=sshd), so on a host
      // where sshd is not running yet it is missing. Made here as the unit would make it, so that
      // a missing directory is never taken for a rejected configuration.
      let made = "";
      if (!existsSync(PRIVSEP_DIR)) {
        try {
          mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
          made = ` (created ${PRIVSEP_DIR}, as ssh.service does)`;
        } catch (e) {
          return { status: "failed", output: `sshd -t needs ${PRIVSEP_DIR}, which could not be created: ${(e as NodeJS.ErrnoException).code ?? e}` };
        }
      }
      const r = run([bin, "-t"]);
      return { ...r, output: r.output + made };
    },
    reloadSshd() {
      if (existsSync("/run/systemd/system")) {
        // Debian and Ubuntu call the unit ssh.service, RHEL sshd.service; a stopped sshd stays stopped
        const unit = ["ssh.service", "sshd.service"].find((u) => UNIT_DIRS.some((d) => existsSync(`${d}/${u}`)));
        return unit ? run(["systemctl", "try-reload-or-restart", unit]) : { status: "skipped", output: "no ssh.service or sshd.service unit" };
      }
      let pid: number;
      try {
        pid = Number(readFileSync("/run/sshd.pid", "utf8").trim());
      } catch {
        return { status: "skipped", output: "sshd is not running (no /run/sshd.pid)" };
      }
      try {
        process.kill(pid, "SIGHUP");
        return { status: "done", output: `sent SIGHUP to sshd (pid ${pid})` };
      } catch (e) {
        return { status: "failed", output: `SIGHUP to sshd (pid ${pid}): ${e instanceof Error ? e.message : e}` };
      }
    },
    setSysctl(key, value) {
      if (!/^[a-z0-9_.-]+$/i.test(key) || key.includes("..")) return { status: "failed", output: `${key} is not a sysctl key` };
      try {
        writeFileSync(procPath(key), `${value}\n`);
        return { status: "done", output: `${key} = ${value}` };
      } catch (e) {
        return { status: "failed", output: `writing ${procPath(key)}: ${(e as NodeJS.ErrnoException).code ?? e}` };
      }
    },
  };
}

/** A prepared root that is not the running system: nothing is validated, reloaded or set. */
export function createDetachedServices(root: string): HostServices {
  const skip = (): Outcome => ({ status: "skipped", output: `root ${root} is not the running system` });
  return { live: false, validateSshd: skip, reloadSshd: skip, setSysctl: skip };
}
