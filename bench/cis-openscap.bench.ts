/**
 * Our CIS verdicts vs OpenSCAP's (openscap-scanner + ssg-debian) on the rules both cover.
 *
 * Both scan the same prepared roots: a known-good and a known-bad Debian tree (test/support/
 * cis-root.ts), plus a "mixed" tree (the bad one with half of our fixable controls remediated).
 * OpenSCAP runs with OSCAP_PROBE_ROOT pointing at the tree (as oscap-chroot does), with a
 * tailoring file that selects exactly the mapped SSG rules and sets their values to our
 * thresholds. ssg-debian ships Debian 11 content only, so the trees also carry
 * /etc/debian_version 11 to satisfy its platform check. One of ours maps to one or more SSG rules
 * (permissions + owner + group owner); ours agrees when we pass iff all of them pass.
 *
 *   bun bench/cis-openscap.bench.ts [--out bench/results/cis-openscap.json]
 * Full bench (about a minute: three oscap runs). Prints JSON with agreement per tree and per rule.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { scanRoot } from "../agent/monitor/cis/scan.ts";
import { CONTROLS } from "../agent/monitor/cis/controls.ts";
import { createOverlayFs, createRootFs } from "../agent/monitor/cis/root-fs.ts";
import { planControl } from "../agent/control/remediate/plan.ts";
import { makeCisRoot } from "../test/support/cis-root.ts";
import { arg, environment } from "./support.ts";

const DS = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml";
const R = (r: string) => `xccdf_org.ssgproject.content_rule_${r}`;
const perms = (f: string) => [`file_permissions_${f}`, `file_owner_${f}`, `file_groupowner_${f}`];

/**
 * Ours -> the SSG rules that together say the same thing. Left out on purpose: package and
 * service rules (OpenSCAP's dpkginfo probe reads the host's package database, not the probe
 * root's) and sysctl rules (they combine the running kernel, which a probe root does not have).
 */
export const MAPPING: Record<string, string[]> = {
  "smx.files.passwd": perms("etc_passwd"),
  "smx.files.passwd-backup": perms("backup_etc_passwd"),
  "smx.files.group": perms("etc_group"),
  "smx.files.group-backup": perms("backup_etc_group"),
  "smx.files.shadow": perms("etc_shadow"),
  "smx.files.shadow-backup": perms("backup_etc_shadow"),
  "smx.files.gshadow": perms("etc_gshadow"),
  "smx.files.gshadow-backup": perms("backup_etc_gshadow"),
  "smx.accounts.empty-passwords": ["no_empty_passwords_etc_shadow"],
  "smx.accounts.uid0": ["accounts_no_uid_except_zero"],
  "smx.modules.rds": ["kernel_module_rds_disabled"],
  "smx.modules.tipc": ["kernel_module_tipc_disabled"],
};

/**
 * Mapped but not compared: every SSH and login.defs rule in ssg-debian 0.1.65 is gated on a
 * package being installed, and OpenSCAP's dpkginfo probe fails inside a probe root
 * ("dpkginfo_init has failed"), so those rules come out fail/notapplicable whatever the file
 * says. They are evaluated and reported under `excluded` for the record, not counted.
 */
export const EXCLUDED: Record<string, string[]> = {
  "smx.ssh.root-login": ["sshd_disable_root_login"],
  "smx.ssh.empty-passwords": ["sshd_disable_empty_passwords"],
  "smx.ssh.ignore-rhosts": ["sshd_disable_rhosts"],
  "smx.ssh.x11": ["sshd_disable_x11_forwarding"],
  "smx.ssh.max-auth-tries": ["sshd_set_max_auth_tries"],
  "smx.ssh.max-sessions": ["sshd_set_max_sessions"],
  "smx.ssh.login-grace": ["sshd_set_login_grace_time"],
  "smx.ssh.user-environment": ["sshd_do_not_permit_user_env"],
  "smx.ssh.use-pam": ["sshd_enable_pam"],
  "smx.ssh.tcp-forwarding": ["sshd_disable_tcp_forwarding"],
  "smx.ssh.max-startups": ["sshd_set_maxstartups"],
  "smx.login.pass-max-days": ["accounts_maximum_age_login_defs"],
  "smx.login.pass-min-days": ["accounts_minimum_age_login_defs"],
  "smx.login.pass-warn-age": ["accounts_password_warn_age_login_defs"],
  "smx.login.umask": ["accounts_umask_etc_login_defs"],
};

const VALUES: Record<string, string> = {
  sshd_required: "2", // "required": sshd settings must be checked
  sshd_max_auth_tries_value: "4",
  var_sshd_max_sessions: "10",
  var_sshd_set_login_grace_time: "60",
  var_sshd_set_maxstartups: "10:30:60",
  var_accounts_maximum_age_login_defs: "365",
  var_accounts_minimum_age_login_defs: "1",
  var_accounts_password_warn_age_login_defs: "7",
  var_accounts_user_umask: "027",
};

/** Every Group that contains one of the rules: a rule in a deselected group is never evaluated. */
function ancestorGroups(rules: string[]): string[] {
  const xml = readFileSync(DS, "utf8");
  const want = new Set(rules.map(R));
  const stack: string[] = [];
  const out = new Set<string>();
  for (const m of xml.matchAll(/<(\/?)xccdf-1\.2:(Group|Rule)\b(?:[^>]*?\bid="([^"]+)")?[^>]*?(\/?)>/g)) {
    const [, close, kind, id, selfClose] = m;
    if (kind === "Group") {
      if (close) stack.pop();
      else if (!selfClose) stack.push(id);
    } else if (!close && want.has(id)) stack.forEach((g) => out.add(g));
  }
  return [...out];
}

export function tailoring(): string {
  const rules = [...new Set([...Object.values(MAPPING), ...Object.values(EXCLUDED)].flat())];
  const groups = ancestorGroups(rules);
  return `<?xml version="1.0" encoding="UTF-8"?>
<xccdf:Tailoring xmlns:xccdf="http://checklists.nist.gov/xccdf/1.2" id="xccdf_servermind_tailoring_bench">
  <xccdf:version time="2026-11-28T00:00:00">1</xccdf:version>
  <xccdf:Profile id="xccdf_servermind_profile_bench" extends="xccdf_org.ssgproject.content_profile_standard">
    <xccdf:title>ServerMind comparison</xccdf:title>
${groups.map((g) => `    <xccdf:select idref="${g}" selected="true"/>`).join("\n")}
${rules.map((r) => `    <xccdf:select idref="${R(r)}" selected="true"/>`).join("\n")}
${Object.entries(VALUES).map(([k, v]) => `    <xccdf:set-value idref="xccdf_org.ssgproject.content_value_${k}">${v}</xccdf:set-value>`).join("\n")}
  </xccdf:Profile>
</xccdf:Tailoring>
`;
}

export function oscap(root: string, work: string): Record<string, string> {
  const results = join(work, `results-${Date.now()}.xml`);
  const p = Bun.spawnSync(["oscap", "xccdf", "eval", "--tailoring-file", join(work, "tailoring.xml"), "--profile", "xccdf_servermind_profile_bench", "--results", results, DS], {
    env: { ...process.env, OSCAP_PROBE_ROOT: root },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0 && p.exitCode !== 2) throw new Error(`oscap failed (${p.exitCode}): ${p.stderr.toString().slice(0, 2000)}`);
  const xml = readFileSync(results, "utf8");
  const out: Record<string, string> = {};
  for (const m of xml.matchAll(/<rule-result[^>]*idref="xccdf_org\.ssgproject\.content_rule_([a-z0-9_]+)"[^>]*>[\s\S]*?<result>([a-z]+)<\/result>/g)) out[m[1]] = m[2];
  return out;
}

export function prepare(kind: "good" | "bad" | "mixed"): string {
  const root = makeCisRoot(kind === "good" ? "good" : "bad");
  writeFileSync(join(root, "etc/debian_version"), "11.9\n");
  // backup copies as shadow-utils leaves them, so the backup-file rules have something to judge
  for (const f of ["passwd", "group", "shadow", "gshadow"]) Bun.spawnSync(["cp", "-a", join(root, "etc", f), join(root, "etc", `${f}-`)]);
  mkdirSync(join(root, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
  if (kind === "mixed") {
    // remediate every other fixable mapped control in place (plan on an overlay, then write)
    const fs = createOverlayFs(createRootFs(root));
    const ids = Object.keys(MAPPING).filter((_, i) => i % 2 === 0);
    for (const id of ids) {
      try {
        planControl(fs, CONTROLS.find((c) => c.id === id)!);
      } catch {
        /* manual ones stay broken */
      }
    }
    for (const [p, s] of fs.pending()) {
      const host = fs.hostPath(p)!;
      mkdirSync(dirname(host), { recursive: true });
      if (s.isDir) mkdirSync(host, { recursive: true });
      else if (s.content !== undefined) writeFileSync(host, s.content);
      Bun.spawnSync(["chown", `${s.uid ?? 0}:${s.gid ?? 0}`, host]);
      Bun.spawnSync(["chmod", (s.mode ?? 0o644).toString(8), host]);
    }
  }
  return root;
}

export function compare(ours: Record<string, string>, theirs: Record<string, string>, mapping = MAPPING) {
  const rows: Array<{ control: string; ours: string; openscap: string; rules: Record<string, string>; agree: boolean | null }> = [];
  for (const [control, rules] of Object.entries(mapping)) {
    const r = Object.fromEntries(rules.map((x) => [x, theirs[x] ?? "missing"]));
    const vals = Object.values(r);
    const theirVerdict = vals.some((v) => v === "fail") ? "fail" : vals.every((v) => v === "pass") ? "pass" : vals.includes("error") ? "error" : "notapplicable";
    const o = ours[control];
    const comparable = (o === "pass" || o === "fail") && (theirVerdict === "pass" || theirVerdict === "fail");
    rows.push({ control, ours: o, openscap: theirVerdict, rules: r, agree: comparable ? o === theirVerdict : null });
  }
  const compared = rows.filter((r) => r.agree !== null);
  return { compared: compared.length, agreed: compared.filter((r) => r.agree).length, agreement: compared.length ? compared.filter((r) => r.agree).length / compared.length : null, disagreements: rows.filter((r) => r.agree === false), notCompared: rows.filter((r) => r.agree === null).map((r) => ({ control: r.control, ours: r.ours, openscap: r.openscap, rules: r.rules })) };
}

if (import.meta.main) {
  const work = mkdtempSync(join(tmpdir(), "servermind-oscap-"));
  writeFileSync(join(work, "tailoring.xml"), tailoring());
  const trees: Record<string, ReturnType<typeof compare>> = {};
  let compared = 0;
  let agreed = 0;
  const t0 = performance.now();
  for (const kind of ["good", "bad", "mixed"] as const) {
    const root = prepare(kind);
    try {
      const ours = Object.fromEntries(scanRoot(root, { runtime: false, allPlatforms: true }).results.map((r) => [r.id, r.status]));
      const theirs = oscap(root, work);
      const c = compare(ours, theirs);
      const x = compare(ours, theirs, EXCLUDED);
      trees[kind] = { ...c, excluded: { reason: "dpkginfo probe fails under OSCAP_PROBE_ROOT", wouldAgree: x.agreed, of: x.compared } } as any;
      compared += c.compared;
      agreed += c.agreed;
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  rmSync(work, { recursive: true, force: true });
  const oscapVersion = Bun.spawnSync(["oscap", "--version"]).stdout.toString().split("\n")[0];
  const report = { bench: "cis-openscap", env: environment(), oscap: oscapVersion, content: DS, mappedControls: Object.keys(MAPPING).length, excludedControls: Object.keys(EXCLUDED).length, compared, agreed, agreement: compared ? agreed / compared : null, seconds: (performance.now() - t0) / 1000, trees };
  const out = arg("out", "");
  if (out) writeFileSync(out, JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report));
}
