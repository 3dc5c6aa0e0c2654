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
 * SSG gates its SSH and login.defs rules on a package being installed (openssh-server, login),
 * which OpenSCAP's dpkginfo probe answers through libapt with RootDir = the probe root. So each
 * tree also carries what libapt needs to open its package database (dpkg's CPU/OS tables, an
 * Architecture field per package), and oscap runs with an APT_CONFIG that keeps the host's own
 * apt.conf.d (a Docker image's "pkgcache empty" setting, for one) out of the probe. A probe
 * failure is an error, never a quiet "fail".
 *
 * A disagreement is never dropped: each one carries an explanation computed from the tree (the
 * documented ways SSG 0.1.65 reads a file differently from sshd and us), or `null` when nothing
 * explains it, which the quick test treats as a failure.
 *
 *   bun bench/cis-openscap.bench.ts [--out bench/results/cis-openscap.json]
 * Full bench (a few seconds: five oscap runs). Prints one line per rule and tree on stderr
 * (agree / DISAGREE with the explanation / not compared) and JSON with agreement per tree and
 * per rule on stdout.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { scanRoot } from "../agent/monitor/cis/scan.ts";
import { CONTROLS } from "../agent/monitor/cis/controls.ts";
import { createOverlayFs, createRootFs } from "../agent/monitor/cis/root-fs.ts";
import { sshdDirectives } from "../agent/monitor/cis/checks.ts";
import { planControl } from "../agent/control/remediate/plan.ts";
import { makeCisRoot } from "../test/support/cis-root.ts";
import { arg, environment } from "./support.ts";

const DS = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml";
const R = (r: string) => `xccdf_org.ssgproject.content_rule_${r}`;
const perms = (f: string) => [`file_permissions_${f}`, `file_owner_${f}`, `file_groupowner_${f}`];

/**
 * Ours -> the SSG rules that together say the same thing. Left out on purpose: package and
 * service rules (the trees' package databases are three-line stubs, see prepare) and sysctl
 * rules (they combine the running kernel, which a probe root does not have).
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
  "smx.ssh.hostbased": ["disable_host_auth"],
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
  const rules = [...new Set(Object.values(MAPPING).flat())];
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
  // libapt in the dpkginfo probe reads this instead of the host's /etc/apt (RootDir is the tree)
  const aptConfig = join(work, "apt.conf");
  writeFileSync(aptConfig, 'Dir::Etc::parts "/nonexistent/servermind-bench";\nDir::Etc::main "/dev/null";\n');
  const p = Bun.spawnSync(["oscap", "xccdf", "eval", "--tailoring-file", join(work, "tailoring.xml"), "--profile", "xccdf_servermind_profile_bench", "--results", results, DS], {
    env: { ...process.env, OSCAP_PROBE_ROOT: root, APT_CONFIG: aptConfig },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0 && p.exitCode !== 2) throw new Error(`oscap failed (${p.exitCode}): ${p.stderr.toString().slice(0, 2000)}`);
  const probeErrors = p.stderr.toString().split("\n").filter((l) => /has failed|probe.*error/i.test(l));
  if (probeErrors.length) throw new Error(`an OpenSCAP probe failed under OSCAP_PROBE_ROOT=${root}; package-gated rules would be meaningless: ${[...new Set(probeErrors.map((l) => l.trim()))].join("; ")}`);
  const xml = readFileSync(results, "utf8");
  const out: Record<string, string> = {};
  for (const m of xml.matchAll(/<rule-result[^>]*idref="xccdf_org\.ssgproject\.content_rule_([a-z0-9_]+)"[^>]*>[\s\S]*?<result>([a-z]+)<\/result>/g)) out[m[1]] = m[2];
  return out;
}

/**
 * The "explicit" trees write every compared SSH setting out in sshd_config itself, with no
 * Include and no Match block: there SSG and sshd read the file the same way, so every rule must
 * agree. The other trees keep Debian's Include line, a Match block and unset keys on purpose.
 */
const EXPLICIT_SSHD: Record<"good" | "bad", string[]> = {
  good: ["PermitRootLogin no", "PermitEmptyPasswords no", "HostbasedAuthentication no", "IgnoreRhosts yes", "X11Forwarding no", "MaxAuthTries 4", "MaxSessions 10", "LoginGraceTime 60", "PermitUserEnvironment no", "UsePAM yes", "AllowTcpForwarding no", "MaxStartups 10:30:60"],
  bad: ["PermitRootLogin yes", "PermitEmptyPasswords yes", "HostbasedAuthentication yes", "IgnoreRhosts no", "X11Forwarding yes", "MaxAuthTries 6", "MaxSessions 20", "LoginGraceTime 120", "PermitUserEnvironment yes", "UsePAM no", "AllowTcpForwarding yes", "MaxStartups 10:30:100"],
};

export type TreeKind = "good" | "bad" | "mixed" | "explicit-good" | "explicit-bad";
export const TREES: TreeKind[] = ["good", "bad", "mixed", "explicit-good", "explicit-bad"];

export function prepare(kind: TreeKind): string {
  const root = makeCisRoot(kind === "good" || kind === "explicit-good" ? "good" : "bad");
  if (kind === "explicit-good" || kind === "explicit-bad") {
    writeFileSync(join(root, "etc/ssh/sshd_config"), EXPLICIT_SSHD[kind === "explicit-good" ? "good" : "bad"].join("\n") + "\n");
    rmSync(join(root, "etc/ssh/sshd_config.d"), { recursive: true, force: true });
  }
  writeFileSync(join(root, "etc/debian_version"), "11.9\n");
  // backup copies as shadow-utils leaves them, so the backup-file rules have something to judge
  for (const f of ["passwd", "group", "shadow", "gshadow"]) Bun.spawnSync(["cp", "-a", join(root, "etc", f), join(root, "etc", `${f}-`)]);
  mkdirSync(join(root, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
  packageDatabase(root);
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

/**
 * What libapt needs to open the tree's dpkg database (see the header): dpkg's CPU and OS tables,
 * the directories apt expects, and an Architecture field per package. Adds `login`, which SSG's
 * login.defs rules are gated on (it owns /etc/login.defs on Debian).
 */
function packageDatabase(root: string) {
  const arch = Bun.spawnSync(["dpkg", "--print-architecture"]).stdout.toString().trim() || "amd64";
  mkdirSync(join(root, "usr/share/dpkg"), { recursive: true });
  for (const t of ["cputable", "ostable", "tupletable"]) Bun.spawnSync(["cp", `/usr/share/dpkg/${t}`, join(root, "usr/share/dpkg", t)]);
  for (const d of ["etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg/updates", "var/lib/dpkg/info"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "etc/apt/sources.list"), "");
  writeFileSync(join(root, "var/lib/dpkg/available"), "");
  const status = join(root, "var/lib/dpkg/status");
  const blocks = readFileSync(status, "utf8").trim().split(/\n\n+/);
  blocks.push("Package: login\nStatus: install ok installed\nVersion: 1:4.13+dfsg1-1");
  writeFileSync(status, blocks.map((b) => (/^Architecture:/m.test(b) ? b : b.replace(/^(Status:.*)$/m, `$1\nArchitecture: ${arch}`))).join("\n\n") + "\n");
}

/**
 * Why SSG 0.1.65 and we can read the same tree differently, for one control; null when none of
 * the known differences applies (an unexplained disagreement is a bug on one side).
 */
export function explain(root: string, controlId: string): string | null {
  const c = CONTROLS.find((x) => x.id === controlId);
  if (!c) return null;
  const fs = createRootFs(root);
  if (c.check.type === "sshd") {
    const key = c.check.key;
    const lines = (fs.read("/etc/ssh/sshd_config") ?? "").split("\n");
    const match = lines.findIndex((l) => /^\s*match\s/i.test(l));
    const inMatch = match >= 0 && lines.slice(match).some((l) => l.trim().toLowerCase().split(/[\s=]+/)[0] === key.toLowerCase());
    const effective = sshdDirectives(fs).find((d) => d.key === key.toLowerCase());
    if (effective && effective.source.file !== "/etc/ssh/sshd_config") {
      return `the effective ${key} ${effective.value} comes from ${effective.source.file}, which sshd_config Includes before its own lines; SSG reads /etc/ssh/sshd_config only`;
    }
    if (inMatch) return `${key} also appears inside a Match block; SSG requires every occurrence in sshd_config to comply, while the global value (ours and sshd's) is the first one outside Match`;
    if (!effective) return `${key} is not set: ours judges sshd's built-in default (${c.check.default}), SSG wants the setting written out`;
    if (c.check.op === "startups") {
      const full = Number(effective.value.split(":")[2]);
      const limit = (c.check.value as number[])[2]!;
      if (full > limit && full <= 100) return `MaxStartups full parameter ${full}: SSG 0.1.65's OVAL accepts up to 100 (hard-coded, whatever var_sshd_set_maxstartups says), ours holds the CIS limit ${limit}`;
    }
  }
  if (c.check.type === "login-defs") {
    const { key, default: def } = c.check;
    const set = (fs.read("/etc/login.defs") ?? "").split("\n").some((l) => l.trim().split(/\s+/)[0] === key);
    if (!set) return `${key} is not set: ours judges the shadow-utils default (${def}), SSG wants the setting written out`;
  }
  return null;
}

export interface Row {
  control: string;
  ours: string;
  openscap: string;
  rules: Record<string, string>;
  agree: boolean | null;
  /** For a disagreement: why the two differ, or null when nothing known explains it. */
  explanation?: string | null;
}

/** Our verdicts vs OpenSCAP's on one tree; `root` (the tree) lets disagreements be explained. */
export function compare(ours: Record<string, string>, theirs: Record<string, string>, root?: string, mapping = MAPPING) {
  const rows: Row[] = [];
  for (const [control, rules] of Object.entries(mapping)) {
    const r = Object.fromEntries(rules.map((x) => [x, theirs[x] ?? "missing"]));
    const vals = Object.values(r);
    const theirVerdict = vals.some((v) => v === "fail") ? "fail" : vals.every((v) => v === "pass") ? "pass" : vals.includes("error") ? "error" : "notapplicable";
    const o = ours[control];
    const comparable = (o === "pass" || o === "fail") && (theirVerdict === "pass" || theirVerdict === "fail");
    const agree = comparable ? o === theirVerdict : null;
    rows.push({ control, ours: o, openscap: theirVerdict, rules: r, agree, ...(agree === false ? { explanation: root ? explain(root, control) : null } : {}) });
  }
  const compared = rows.filter((r) => r.agree !== null);
  const disagreements = rows.filter((r) => r.agree === false);
  return {
    compared: compared.length,
    agreed: compared.filter((r) => r.agree).length,
    agreement: compared.length ? compared.filter((r) => r.agree).length / compared.length : null,
    rows,
    disagreements,
    unexplained: disagreements.filter((r) => !r.explanation).map((r) => r.control),
    notCompared: rows.filter((r) => r.agree === null).map((r) => ({ control: r.control, ours: r.ours, openscap: r.openscap, rules: r.rules })),
  };
}

/** One line per control and tree: "agree", "DISAGREE (why)" or "not compared (…)", for logs. */
export function perRuleLines(tree: string, c: ReturnType<typeof compare>): string[] {
  return c.rows.map((r) => `${tree.padEnd(5)} ${r.control.padEnd(32)} ours ${r.ours.padEnd(13)} openscap ${r.openscap.padEnd(13)} ${r.agree === null ? "not compared" : r.agree ? "agree" : `DISAGREE: ${r.explanation ?? "UNEXPLAINED"}`}`);
}

if (import.meta.main) {
  const work = mkdtempSync(join(tmpdir(), "servermind-oscap-"));
  writeFileSync(join(work, "tailoring.xml"), tailoring());
  const trees: Record<string, ReturnType<typeof compare>> = {};
  let compared = 0;
  let agreed = 0;
  const t0 = performance.now();
  for (const kind of TREES) {
    const root = prepare(kind);
    try {
      const ours = Object.fromEntries(scanRoot(root, { runtime: false, allPlatforms: true }).results.map((r) => [r.id, r.status]));
      const theirs = oscap(root, work);
      const c = compare(ours, theirs, root);
      trees[kind] = c;
      compared += c.compared;
      agreed += c.agreed;
      for (const line of perRuleLines(kind, c)) console.error(line);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  rmSync(work, { recursive: true, force: true });
  const oscapVersion = Bun.spawnSync(["oscap", "--version"]).stdout.toString().split("\n")[0];
  // per rule across the trees: how often we agree, and every disagreement with its explanation
  const perRule = Object.fromEntries(
    Object.keys(MAPPING).map((control) => {
      const rows = Object.entries(trees).map(([tree, c]) => ({ tree, ...c.rows.find((r) => r.control === control)! }));
      const cmp = rows.filter((r) => r.agree !== null);
      return [control, { rules: MAPPING[control], compared: cmp.length, agreed: cmp.filter((r) => r.agree).length, disagreements: rows.filter((r) => r.agree === false).map((r) => ({ tree: r.tree, ours: r.ours, openscap: r.openscap, explanation: r.explanation })) }];
    }),
  );
  const unexplained = Object.entries(trees).flatMap(([tree, c]) => c.unexplained.map((control) => `${tree}:${control}`));
  const report = { bench: "cis-openscap", env: environment(), oscap: oscapVersion, content: DS, mappedControls: Object.keys(MAPPING).length, compared, agreed, agreement: compared ? agreed / compared : null, explainedDisagreements: compared - agreed - unexplained.length, unexplained, seconds: (performance.now() - t0) / 1000, perRule, trees };
  const out = arg("out", "");
  if (out) writeFileSync(out, JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report));
}
