/**
 * The control catalog: CIS Level 1 style checks written as data in ./controls/*.json (one file
 * per area, reviewed like code). Imported statically so they are embedded in the compiled agent.
 */
import files from "./controls/files.json";
import cron from "./controls/cron.json";
import ssh from "./controls/ssh.json";
import sysctl from "./controls/sysctl.json";
import modules from "./controls/modules.json";
import accounts from "./controls/accounts.json";
import packages from "./controls/packages.json";

export type Platform = "debian12" | "ubuntu22.04" | "rhel9";
export const PLATFORMS: Platform[] = ["debian12", "ubuntu22.04", "rhel9"];

export type Check =
  | { type: "file-mode"; path: string; maxMode: string; owner: string[]; group: string[]; missingOk?: boolean }
  | { type: "sshd"; key: string; op: CompareOp; value: unknown; default: string }
  | { type: "sysctl"; key: string; value: string; op?: "min" }
  | { type: "login-defs"; key: string; op: CompareOp; value: unknown; default: string }
  | { type: "module-disabled"; module: string }
  | { type: "package-absent"; names: string[] }
  | { type: "package-present"; names: string[] }
  | { type: "service-enabled"; units: string[] }
  | { type: "shadow-no-empty" }
  | { type: "passwd-uid0-only-root" }
  | { type: "no-legacy-plus" }
  | { type: "limits-core-zero" };

export type CompareOp = "in" | "not" | "max" | "min" | "range" | "umask" | "startups";

export type RemediationAction = "fix-file-mode" | "set-sshd" | "set-sysctl" | "set-login-defs" | "disable-module" | "set-limits-core" | "manual";

export interface Control {
  id: string;
  title: string;
  rationale: string;
  severity: number;
  category: string;
  platforms: Platform[];
  check: Check;
  remediation: { action: RemediationAction; value?: string; text: string };
  rollback: { action: "restore-snapshot" | "manual"; text: string };
}

type ControlFile = { category: string; controls: Array<Omit<Control, "category">> };

function load(...files: ControlFile[]): Control[] {
  const out: Control[] = [];
  const ids = new Set<string>();
  for (const f of files) {
    for (const c of f.controls) {
      if (ids.has(c.id)) throw new Error(`control ${c.id} is defined twice`);
      ids.add(c.id);
      out.push({ ...c, category: f.category } as Control);
    }
  }
  return out;
}

export const CONTROLS: Control[] = load(files as ControlFile, cron as ControlFile, ssh as ControlFile, sysctl as ControlFile, modules as ControlFile, accounts as ControlFile, packages as ControlFile);

export function controlById(id: string): Control | undefined {
  return CONTROLS.find((c) => c.id === id);
}
