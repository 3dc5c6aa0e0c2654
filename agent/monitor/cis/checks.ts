/**
 * One evaluator per check type. Each reads only through a RootFs and returns a verdict with what
 * it observed and, for settings, where the effective value came from (file and line), which the
 * remediation planner edits in place.
 */
import { posix } from "node:path";
import type { Check, CompareOp } from "./controls.ts";
import type { RootFs } from "./root-fs.ts";

export type Status = "pass" | "fail" | "notapplicable" | "error";

export interface Source {
  file: string;
  line: number; // 0-based
}

export interface CheckResult {
  status: Status;
  observed: string;
  expected: string;
  source?: Source;
}

export interface CheckOptions {
  /** Also compare live values (/proc/sys) when scanning the running system. */
  runtime?: boolean;
}

export function evaluate(fs: RootFs, check: Check, opts: CheckOptions = {}): CheckResult {
  switch (check.type) {
    case "file-mode":
      return fileMode(fs, check);
    case "sshd":
      return sshd(fs, check);
    case "sysctl":
      return sysctl(fs, check, opts);
    case "login-defs":
      return loginDefs(fs, check);
    case "module-disabled":
      return moduleDisabled(fs, check.module);
    case "package-absent":
    case "package-present":
      return packages(fs, check.type, check.names);
    case "service-enabled":
      return serviceEnabled(fs, check.units);
    case "shadow-no-empty":
      return shadowNoEmpty(fs);
    case "passwd-uid0-only-root":
      return uid0(fs);
    case "no-legacy-plus":
      return legacyPlus(fs);
    case "limits-core-zero":
      return limitsCore(fs);
  }
}

// ---------------------------------------------------------------- ids

export function idMap(fs: RootFs, file: "/etc/passwd" | "/etc/group"): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of (fs.read(file) ?? "").split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && /^\d+$/.test(f[2])) m.set(f[0], Number(f[2]));
  }
  if (!m.has("root")) m.set("root", 0);
  return m;
}

const octal = (n: number) => n.toString(8).padStart(4, "0");

function fileMode(fs: RootFs, c: Extract<Check, { type: "file-mode" }>): CheckResult {
  const max = parseInt(c.maxMode, 8);
  const expected = `mode <= ${c.maxMode}, owner ${c.owner.join("|")}, group ${c.group.join("|")}`;
  const st = fs.stat(c.path);
  if (!st) return { status: c.missingOk ? "notapplicable" : "fail", observed: `${c.path} does not exist`, expected };
  const users = idMap(fs, "/etc/passwd");
  const groups = idMap(fs, "/etc/group");
  const okOwner = c.owner.some((n) => users.get(n) === st.uid);
  const okGroup = c.group.some((n) => groups.get(n) === st.gid);
  const okMode = (st.mode & ~max) === 0;
  return { status: okOwner && okGroup && okMode ? "pass" : "fail", observed: `mode ${octal(st.mode)}, uid ${st.uid}, gid ${st.gid}`, expected };
}

// ---------------------------------------------------------------- comparisons

export function compare(op: CompareOp, value: unknown, observed: string): boolean {
  const v = observed.trim();
  switch (op) {
    case "in":
      return (value as string[]).some((x) => x.toLowerCase() === v.toLowerCase());
    case "not":
      return !(value as string[]).some((x) => x.toLowerCase() === v.toLowerCase());
    case "max":
      return /^\d+$/.test(v) && Number(v) <= Number(value);
    case "min":
      return /^\d+$/.test(v) && Number(v) >= Number(value);
    case "range": {
      const [lo, hi] = value as [number, number];
      const n = parseDuration(v);
      return n !== null && n >= lo && n <= hi;
    }
    case "umask": {
      const want = parseInt(String(value), 8);
      return /^[0-7]{3,4}$/.test(v) && (parseInt(v, 8) & want) === want;
    }
    case "startups": {
      const [a, b, c] = value as [number, number, number];
      const p = v.split(":").map(Number);
      if (p.some((x) => !Number.isFinite(x))) return false;
      if (p.length === 1) return p[0] <= a;
      return p.length === 3 && p[0] <= a && p[1] >= b && p[2] <= c;
    }
  }
}

/** sshd time values ("60", "1m", "1m30s") in seconds; plain numbers elsewhere. */
function parseDuration(v: string): number | null {
  if (/^\d+$/.test(v)) return Number(v);
  const m = v.toLowerCase().match(/^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/);
  if (!m || v === "") return null;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

function describe(op: CompareOp, value: unknown): string {
  switch (op) {
    case "in":
      return `one of ${(value as string[]).join(", ")}`;
    case "not":
      return `not ${(value as string[]).join(", ")}`;
    case "max":
      return `<= ${value}`;
    case "min":
      return `>= ${value}`;
    case "range":
      return `between ${(value as number[])[0]} and ${(value as number[])[1]}`;
    case "umask":
      return `masks at least ${value}`;
    case "startups":
      return `at most ${(value as number[]).join(":")}`;
  }
}

// ---------------------------------------------------------------- sshd

export interface Directive {
  key: string;
  value: string;
  source: Source;
}

/** Global sshd directives in the order sshd reads them (Include expanded, Match blocks skipped). */
export function sshdDirectives(fs: RootFs, file = "/etc/ssh/sshd_config", depth = 0): Directive[] {
  const text = fs.read(file);
  if (text === null || depth > 8) return [];
  const out: Directive[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].trim();
    if (!t || t.startsWith("#")) continue;
    const m = t.match(/^(\S+)\s*(?:=\s*|\s+)(.*)$/);
    if (!m) continue;
    const key = m[1].toLowerCase();
    if (key === "match") break; // everything after the first Match belongs to Match blocks
    if (key === "include") {
      for (const pattern of m[2].split(/\s+/)) {
        const abs = pattern.startsWith("/") ? pattern : posix.join("/etc/ssh", pattern);
        for (const f of expandGlob(fs, abs)) out.push(...sshdDirectives(fs, f, depth + 1));
      }
      continue;
    }
    out.push({ key, value: m[2].replace(/^"(.*)"$/, "$1").trim(), source: { file, line: i } });
  }
  return out;
}

function expandGlob(fs: RootFs, abs: string): string[] {
  const dir = posix.dirname(abs);
  const base = posix.basename(abs);
  if (!/[*?[]/.test(base)) return [abs];
  const re = globToRegExp(base);
  return (fs.list(dir) ?? []).filter((n) => re.test(n)).map((n) => posix.join(dir, n));
}

export function globToRegExp(glob: string): RegExp {
  let s = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === "*") {
      if (glob[i + 1] === "*") {
        s += ".*";
        i++;
      } else s += "[^/]*";
    } else if (ch === "?") s += "[^/]";
    else s += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${s}$`);
}

function sshd(fs: RootFs, c: Extract<Check, { type: "sshd" }>): CheckResult {
  const expected = `${c.key} ${describe(c.op, c.value)}`;
  if (fs.read("/etc/ssh/sshd_config") === null) return { status: "notapplicable", observed: "sshd_config not present", expected };
  const d = sshdDirectives(fs).find((x) => x.key === c.key.toLowerCase()); // first value wins
  const value = d?.value ?? c.default;
  return {
    status: compare(c.op, c.value, value) ? "pass" : "fail",
    observed: d ? `${c.key} ${value} (${d.source.file}:${d.source.line + 1})` : `${c.key} not set, default ${value}`,
    expected,
    source: d?.source,
  };
}

// ---------------------------------------------------------------- sysctl

const SYSCTL_DIRS = ["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"];

/** Files in the order systemd-sysctl applies them: by file name, earlier directory wins a name. */
export function sysctlFiles(fs: RootFs): string[] {
  const byName = new Map<string, string>();
  for (const d of SYSCTL_DIRS) for (const n of fs.list(d) ?? []) if (n.endsWith(".conf") && !byName.has(n)) byName.set(n, `${d}/${n}`);
  const hasLink = byName.has("99-sysctl.conf");
  const files = [...byName.keys()].sort().map((n) => byName.get(n)!);
  if (!hasLink && fs.read("/etc/sysctl.conf") !== null) files.push("/etc/sysctl.conf");
  return files;
}

export function sysctlSetting(fs: RootFs, key: string): { value: string; source: Source } | undefined {
  let found: { value: string; source: Source } | undefined;
  const want = key.replace(/\//g, ".");
  for (const f of sysctlFiles(fs)) {
    const lines = (fs.read(f) ?? "").split("\n");
    for (let i = 0; i < lines.length; i++) {
      const t = lines[i].trim();
      if (!t || t.startsWith("#") || t.startsWith(";")) continue;
      const m = t.match(/^-?\s*([^=\s]+)\s*=\s*(.*)$/);
      if (m && m[1].replace(/\//g, ".") === want) found = { value: m[2].trim(), source: { file: f, line: i } };
    }
  }
  return found;
}

function sysctl(fs: RootFs, c: Extract<Check, { type: "sysctl" }>, opts: CheckOptions): CheckResult {
  const ok = (v: string) => (c.op === "min" ? /^\d+$/.test(v) && Number(v) >= Number(c.value) : v === c.value);
  const expected = `${c.key} ${c.op === "min" ? ">=" : "="} ${c.value} (persistent${opts.runtime ? " and running" : ""})`;
  const s = sysctlSetting(fs, c.key);
  let runtime: string | null = null;
  if (opts.runtime) runtime = fs.read(`/proc/sys/${c.key.replace(/\./g, "/")}`)?.trim() ?? null;
  const configured = s ? ok(s.value) : false;
  const live = runtime === null ? true : ok(runtime);
  // Unset in config but the running kernel has the safe value by default: that counts as pass.
  const pass = s ? configured && live : runtime !== null && ok(runtime);
  if (opts.runtime && runtime === null && !s) return { status: "notapplicable", observed: `${c.key} does not exist in this kernel and is not configured`, expected };
  return {
    status: pass ? "pass" : "fail",
    observed: `${s ? `configured ${s.value} (${s.source.file}:${s.source.line + 1})` : "not configured"}${runtime !== null ? `, running ${runtime}` : ""}`,
    expected,
    source: s?.source,
  };
}

// ---------------------------------------------------------------- login.defs

function loginDefs(fs: RootFs, c: Extract<Check, { type: "login-defs" }>): CheckResult {
  const expected = `${c.key} ${describe(c.op, c.value)}`;
  const text = fs.read("/etc/login.defs");
  if (text === null) return { status: "notapplicable", observed: "/etc/login.defs not present", expected };
  let found: { value: string; source: Source } | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = lines[i].trim().match(/^(\S+)\s+(\S+)/);
    if (m && m[1] === c.key) found = { value: m[2], source: { file: "/etc/login.defs", line: i } };
  }
  const value = found?.value ?? c.default;
  return { status: compare(c.op, c.value, value) ? "pass" : "fail", observed: found ? `${c.key} ${value}` : `${c.key} not set, default ${value}`, expected, source: found?.source };
}

// ---------------------------------------------------------------- modules

const MODPROBE_DIRS = ["/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d"];

function moduleDisabled(fs: RootFs, module: string): CheckResult {
  const alt = module.replace(/-/g, "_");
  let install: string | undefined;
  let blacklisted = false;
  for (const d of MODPROBE_DIRS) {
    for (const n of fs.list(d) ?? []) {
      if (!n.endsWith(".conf")) continue;
      for (const line of (fs.read(`${d}/${n}`) ?? "").split("\n")) {
        const p = line.trim().split(/\s+/);
        if (p[0] === "install" && (p[1] === module || p[1] === alt) && /^(\/usr)?\/bin\/(false|true)$/.test(p[2] ?? "")) install = `${d}/${n}`;
        if (p[0] === "blacklist" && (p[1] === module || p[1] === alt)) blacklisted = true;
      }
    }
  }
  return {
    status: install ? "pass" : "fail",
    observed: install ? `install command is /bin/false or /bin/true (${install})${blacklisted ? ", blacklisted" : ""}` : `no install override${blacklisted ? " (blacklisted only, which still allows explicit loading)" : ""}`,
    expected: `loading ${module} runs /bin/false`,
  };
}

// ---------------------------------------------------------------- packages and services

/** Installed package names from dpkg's status file or the RHEL 9 sqlite rpmdb; null when neither exists. */
export function installedPackages(fs: RootFs): Set<string> | null {
  const status = fs.read("/var/lib/dpkg/status");
  if (status !== null) {
    const out = new Set<string>();
    for (const block of status.split(/\n\n+/)) {
      const name = block.match(/^Package:\s*(\S+)/m)?.[1];
      const st = block.match(/^Status:\s*(.*)$/m)?.[1] ?? "";
      if (name && /\binstalled$/.test(st.trim()) && !/not-installed|config-files/.test(st)) out.add(name);
    }
    return out;
  }
  const rpmdb = fs.hostPath("/var/lib/rpm/rpmdb.sqlite");
  if (rpmdb && fs.stat("/var/lib/rpm/rpmdb.sqlite")) {
    try {
      // required here, not imported: only RPM hosts need SQLite for this, and Control (which
      // imports these checks) otherwise never loads bun:sqlite (~2 MB RSS per process)
      const { Database } = require("bun:sqlite") as typeof import("bun:sqlite");
      const db = new Database(rpmdb, { readonly: true });
      try {
        return new Set((db.query("select key from Name").all() as Array<{ key: string }>).map((r) => r.key));
      } finally {
        db.close();
      }
    } catch {
      return null;
    }
  }
  return null;
}

function packages(fs: RootFs, type: "package-absent" | "package-present", names: string[]): CheckResult {
  const expected = type === "package-absent" ? `none of ${names.join(", ")} installed` : `one of ${names.join(", ")} installed`;
  const installed = installedPackages(fs);
  if (!installed) return { status: "error", observed: "no package database (dpkg status or rpmdb.sqlite) found", expected };
  const present = names.filter((n) => installed.has(n));
  const pass = type === "package-absent" ? present.length === 0 : present.length > 0;
  return { status: pass ? "pass" : "fail", observed: present.length ? `installed: ${present.join(", ")}` : "not installed", expected };
}

const UNIT_DIRS = ["/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

function serviceEnabled(fs: RootFs, units: string[]): CheckResult {
  const expected = `${units.join(" or ")} enabled`;
  const exists = units.filter((u) => UNIT_DIRS.some((d) => fs.stat(`${d}/${u}`)));
  if (!exists.length) return { status: "fail", observed: `${units.join(", ")} not installed`, expected };
  for (const n of fs.list("/etc/systemd/system") ?? []) {
    if (!n.endsWith(".wants")) continue;
    const hit = units.find((u) => (fs.list(`/etc/systemd/system/${n}`) ?? []).includes(u));
    if (hit) return { status: "pass", observed: `${hit} wanted by ${n.slice(0, -6)}`, expected };
  }
  return { status: "fail", observed: `${exists.join(", ")} installed but not enabled`, expected };
}

// ---------------------------------------------------------------- account databases

function shadowNoEmpty(fs: RootFs): CheckResult {
  const text = fs.read("/etc/shadow");
  if (text === null) return { status: "error", observed: "/etc/shadow not readable", expected: "every account has a password hash or a lock" };
  const empty = text.split("\n").map((l) => l.split(":")).filter((f) => f.length > 1 && f[0] && f[1] === "").map((f) => f[0]);
  return { status: empty.length ? "fail" : "pass", observed: empty.length ? `empty password: ${empty.join(", ")}` : "no empty password fields", expected: "no empty password fields" };
}

function uid0(fs: RootFs): CheckResult {
  const text = fs.read("/etc/passwd") ?? "";
  const extra = text.split("\n").map((l) => l.split(":")).filter((f) => f.length > 3 && f[2] === "0" && f[0] !== "root").map((f) => f[0]);
  return { status: extra.length ? "fail" : "pass", observed: extra.length ? `uid 0: ${extra.join(", ")}` : "only root has uid 0", expected: "only root has uid 0" };
}

function legacyPlus(fs: RootFs): CheckResult {
  const hits = ["/etc/passwd", "/etc/shadow", "/etc/group"].filter((f) => (fs.read(f) ?? "").split("\n").some((l) => l.startsWith("+")));
  return { status: hits.length ? "fail" : "pass", observed: hits.length ? `'+' entries in ${hits.join(", ")}` : "none", expected: "no '+' entries" };
}

function limitsCore(fs: RootFs): CheckResult {
  const files = ["/etc/security/limits.conf", ...(fs.list("/etc/security/limits.d") ?? []).filter((n) => n.endsWith(".conf")).map((n) => `/etc/security/limits.d/${n}`)];
  for (const f of files) {
    for (const line of (fs.read(f) ?? "").split("\n")) {
      const p = line.trim().split(/\s+/);
      if (p[0] === "*" && (p[1] === "hard" || p[1] === "-") && p[2] === "core" && p[3] === "0") return { status: "pass", observed: `hard core limit 0 (${f})`, expected: "* hard core 0" };
    }
  }
  return { status: "fail", observed: "no hard core limit of 0 for all users", expected: "* hard core 0" };
}
