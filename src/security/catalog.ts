/**
 * What the console shows about a control besides its id: title, rationale and how it is fixed.
 * Scan events carry only ids and verdicts; the wording lives once, in the agent's control
 * catalog (agent/monitor/cis/controls/*.json). Only that data is read here, never agent code.
 */
import files from "../../agent/monitor/cis/controls/files.json";
import cron from "../../agent/monitor/cis/controls/cron.json";
import ssh from "../../agent/monitor/cis/controls/ssh.json";
import sysctl from "../../agent/monitor/cis/controls/sysctl.json";
import modules from "../../agent/monitor/cis/controls/modules.json";
import accounts from "../../agent/monitor/cis/controls/accounts.json";
import packages from "../../agent/monitor/cis/controls/packages.json";

export interface ControlInfo {
  id: string;
  title: string;
  rationale: string;
  category: string;
  severity: number;
  /** false when the agent only reports it (remediation action "manual") */
  automatic: boolean;
  remediation: string;
}

type CatalogFile = { category: string; controls: Array<{ id: string; title: string; rationale: string; severity: number; remediation: { action: string; text: string } }> };

const CATALOG = new Map<string, ControlInfo>();
for (const f of [files, cron, ssh, sysctl, modules, accounts, packages] as CatalogFile[]) {
  for (const c of f.controls) {
    CATALOG.set(c.id, {
      id: c.id, title: c.title, rationale: c.rationale, category: f.category, severity: c.severity,
      automatic: c.remediation.action !== "manual", remediation: c.remediation.text,
    });
  }
}

/** The catalog entry of a control, or undefined for an id this server does not know. */
export function controlInfo(id: string): ControlInfo | undefined {
  return CATALOG.get(id);
}

/** Every known control, by id. */
export function allControls(): ControlInfo[] {
  return [...CATALOG.values()].sort((a, b) => a.id.localeCompare(b.id));
}
