/**
 * Pending package updates, from the package manager's local state only (never the network: the
 * agent does not refresh metadata; the host's own `apt update` / dnf timer does). Debian family:
 * `apt-get -s dist-upgrade` (a simulation, no lock, works unprivileged); RHEL family:
 * `dnf -C check-update` plus `dnf -C updateinfo list --security` (yum when dnf is missing).
 * The parsers are pure and tested on recorded output; the reader runs the commands through an
 * injected async runner bounded in time.
 */

export type PendingUpdates =
  | { status: "ok"; source: "apt" | "dnf" | "yum"; security: number; other: number; total: number; securityPackages: string[] }
  | { status: "unknown"; reason: string };

/** At most this many security package names are reported (the counts are always complete). */
export const MAX_NAMES = 50;

// trailing "[…]" groups after the parenthesis: packages apt configures together ("[a:amd64 on b:amd64] [a:amd64 ]", "[]")
const APT_INST = /^Inst (\S+) \[([^\]]*)\] \((\S+) ([^()]*)\)(?: \[[^\]]*\])*\s*$/;

/**
 * `apt-get -s dist-upgrade` output: one `Inst name [old] (new origin:release/suite, … [arch])`
 * line per upgraded package. Lines without `[old]` install a new package (a new dependency) and
 * are not pending updates. Security: a suite ending in `-security` (Debian and Ubuntu).
 * Returns undefined when the text is not apt output at all (so garbage is never "0 pending").
 */
export function parseAptSimulation(text: string): { security: string[]; other: string[] } | undefined {
  if (!/^(Reading package lists|\d+ upgraded, \d+ newly installed)/m.test(text)) return undefined;
  const security: string[] = [];
  const other: string[] = [];
  const seen = new Set<string>();
  for (const line of text.split("\n")) {
    const m = APT_INST.exec(line);
    if (!m || seen.has(m[1]!)) continue;
    seen.add(m[1]!);
    const origins = m[4]!.replace(/\s*\[[^\]]*\]\s*$/, "").split(",").map((s) => s.trim());
    const isSecurity = origins.some((o) => /\/[^/\s]*-security$/.test(o) || /^[^:]*-Security:/i.test(o));
    (isSecurity ? security : other).push(m[1]!);
  }
  return { security, other };
}

/**
 * `dnf -q -C check-update` (exit 100 when updates exist) / `yum -q -C check-update`: one
 * `name.arch  version  repo` row per package (a long name wraps: version and repo on the next,
 * indented line); the "Obsoleting Packages" section is skipped. Returns the set of package names (name without arch).
 */
export function parseDnfCheckUpdate(text: string): Set<string> | undefined {
  const out = new Set<string>();
  let obsoleting = false;
  let rows = 0;
  let wrapped = ""; // a name too long for its column: version and repo follow on the next line
  for (const raw of text.split("\n")) {
    let line = raw.trimEnd();
    if (/^Obsoleting Packages/i.test(line)) obsoleting = true;
    if (obsoleting || !line) continue;
    if (/^\s/.test(line)) {
      if (!wrapped) continue;
      line = `${wrapped} ${line.trim()}`;
    }
    wrapped = "";
    const f = line.split(/\s+/);
    if (f.length === 1 && /\.\w+$/.test(f[0]!)) {
      wrapped = f[0]!;
      continue;
    }
    if (f.length !== 3) continue;
    const dot = f[0]!.lastIndexOf(".");
    if (dot <= 0 || !/^[\w:.+~^-]+$/.test(f[1]!)) continue;
    out.add(f[0]!.slice(0, dot));
    rows++;
  }
  // non-empty output that has no package rows is not check-update output
  if (rows === 0 && text.trim() !== "" && !/^(Last metadata expiration|Security:)/m.test(text)) return undefined;
  return out;
}

/**
 * `dnf -q -C updateinfo list --security --available` / `yum -q -C updateinfo list security`:
 * `ADVISORY  TYPE  name-version-release.arch` rows (dnf 4: `RHSA-…  Important/Sec.  pkg-…`).
 * Returns the names of packages with at least one security advisory.
 */
export function parseDnfUpdateinfo(text: string): Set<string> | undefined {
  const out = new Set<string>();
  let rows = 0;
  for (const raw of text.split("\n")) {
    const f = raw.trim().split(/\s+/);
    if (f.length < 3 || !/^[A-Z][A-Z0-9]*-\d{4}[:-][\w:-]+$/i.test(f[0]!) || !/sec/i.test(f[1]!)) continue;
    const nevra = f[f.length - 1]!;
    // name-version-release.arch: drop the arch, then the last two dash-separated fields
    const noArch = nevra.replace(/\.[^.]+$/, "");
    const parts = noArch.split("-");
    if (parts.length < 3) continue;
    out.add(parts.slice(0, -2).join("-"));
    rows++;
  }
  if (rows === 0 && text.trim() !== "" && !/^(Last metadata expiration|Updates Information Summary)/m.test(text)) return undefined;
  return out;
}

export interface RunResult {
  code: number | null; // null: not run (missing, timed out)
  stdout: string;
}

export type AsyncRun = (argv: string[], timeoutMs: number) => Promise<RunResult>;

export interface UpdatesOptions {
  run: AsyncRun;
  /** Whether a program exists on PATH. */
  has: (program: string) => boolean;
  timeoutMs?: number;
}

export const UPDATES_TIMEOUT_MS = 120_000;

function ok(source: "apt" | "dnf" | "yum", security: string[], other: number): PendingUpdates {
  const sec = [...security].sort();
  return { status: "ok", source, security: sec.length, other, total: sec.length + other, securityPackages: sec.slice(0, MAX_NAMES) };
}

export async function readPendingUpdates({ run, has, timeoutMs = UPDATES_TIMEOUT_MS }: UpdatesOptions): Promise<PendingUpdates> {
  if (has("apt-get")) {
    const r = await run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "-o", "APT::Get::Show-User-Simulation-Note=false", "dist-upgrade"], timeoutMs);
    if (r.code === null) return { status: "unknown", reason: `apt-get did not finish within ${Math.round(timeoutMs / 1000)} s` };
    if (r.code !== 0) return { status: "unknown", reason: `apt-get exited with ${r.code}` };
    const p = parseAptSimulation(r.stdout);
    if (!p) return { status: "unknown", reason: "apt-get output not understood" };
    return ok("apt", p.security, p.other.length);
  }
  for (const tool of ["dnf", "yum"] as const) {
    if (!has(tool)) continue;
    const start = Date.now();
    const all = await run([tool, "-q", "-C", "check-update"], timeoutMs);
    if (all.code === null) return { status: "unknown", reason: `${tool} did not finish within ${Math.round(timeoutMs / 1000)} s` };
    if (all.code !== 0 && all.code !== 100) return { status: "unknown", reason: `${tool} check-update exited with ${all.code} (no local metadata cache?)` };
    const names = parseDnfCheckUpdate(all.stdout);
    if (!names) return { status: "unknown", reason: `${tool} check-update output not understood` };
    const left = Math.max(1000, timeoutMs - (Date.now() - start));
    const argv = tool === "dnf" ? ["dnf", "-q", "-C", "updateinfo", "list", "--security", "--available"] : ["yum", "-q", "-C", "updateinfo", "list", "security"];
    const sec = await run(argv, left);
    if (sec.code !== 0) return { status: "unknown", reason: `${tool} updateinfo ${sec.code === null ? "did not finish in time" : `exited with ${sec.code}`}` };
    const secNames = parseDnfUpdateinfo(sec.stdout);
    if (!secNames) return { status: "unknown", reason: `${tool} updateinfo output not understood` };
    const security = [...names].filter((n) => secNames.has(n));
    return ok(tool, security, names.size - security.length);
  }
  return { status: "unknown", reason: "no supported package manager (apt-get, dnf, yum)" };
}

const running = new Set<{ kill(signal?: number | NodeJS.Signals): void }>();

/** Kills the checks still running (Collector's shutdown). */
export function killRunningChecks(): void {
  for (const p of running) p.kill("SIGKILL");
  running.clear();
}

/** The real runner: async (the Collector's event loop keeps ticking), killed at the timeout, output capped. */
export const runAsync: AsyncRun = async (argv, timeoutMs) => {
  try {
    const p = Bun.spawn(argv, { stdout: "pipe", stderr: "ignore", stdin: "ignore", env: { ...process.env, PATH: searchPath(), LC_ALL: "C", LANG: "C" } });
    running.add(p);
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; p.kill("SIGKILL"); }, timeoutMs);
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const c of p.stdout as ReadableStream<Uint8Array>) {
      if (size < 16 << 20) chunks.push(c);
      size += c.length;
    }
    const code = await p.exited;
    clearTimeout(timer);
    running.delete(p);
    if (timedOut) return { code: null, stdout: "" };
    return { code, stdout: Buffer.concat(chunks).toString("utf8") };
  } catch {
    return { code: null, stdout: "" };
  }
};

/** The service's PATH, or systemd's default when it has none. */
const searchPath = () => process.env.PATH || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const hasProgram = (program: string): boolean => Bun.which(program, { PATH: searchPath() }) !== null;
