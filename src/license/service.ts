/**
 * The server's view of its license: reads the installed file (<data dir>/license.txt, or
 * SERVERMIND_LICENSE_FILE), verifies it against the vendor key, counts enrolled agents, and
 * answers whether one more agent may enroll. State changes (installed, expired, over seats, back
 * to normal) and refused enrollments are audited. Nothing here touches ingest.
 */
import { readFileSync, statSync, writeFileSync, renameSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Sql } from "postgres";
import { audit, type AuditEvent } from "../audit/audit.ts";
import { LicenseError, verifyLicense, type LicensePayload } from "./format.ts";
import { vendorKey, type VendorKey } from "./key.ts";
import { evaluate, seatFree, type LicenseStatus } from "./state.ts";
import type { EnrollmentSeats } from "../ingest/routes.ts";

export function licensePath(dataDir: string, env: Record<string, string | undefined> = process.env): string {
  return env.SERVERMIND_LICENSE_FILE || join(dataDir, "license.txt");
}

export interface InstalledLicense {
  license: LicensePayload | null;
  /** Why the file present could not be used. */
  problem?: string;
}

/** Reads and verifies the installed file; a missing file is community mode, not a problem. */
export function readInstalled(path: string, key: VendorKey): InstalledLicense {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { license: null };
    return { license: null, problem: `cannot read ${path}: ${(e as Error).message}` };
  }
  try {
    return { license: verifyLicense(text, key.key) };
  } catch (e) {
    if (e instanceof LicenseError) return { license: null, problem: e.message };
    throw e;
  }
}

/** Verifies `text` and writes it, atomically, where the server reads it. Throws LicenseError. */
export function installLicenseFile(path: string, text: string, key: VendorKey): LicensePayload {
  const payload = verifyLicense(text, key.key);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
  return payload;
}

export interface LicenseService {
  readonly path: string;
  readonly key: VendorKey;
  /** Re-reads the file (when changed) and the agent count; audits a change of state. */
  refresh(): Promise<LicenseStatus>;
  /** The last evaluated status (refresh() first). */
  current(): LicenseStatus | null;
  /** The enrollment hook (src/ingest/routes.ts): the seat check inside the enrollment's transaction, and the audit of a refusal after it. */
  readonly seats: EnrollmentSeats;
  start(intervalMs?: number): void;
  stop(): void;
}

export function createLicenseService(o: { sql: Sql; dataDir: string; env?: Record<string, string | undefined>; now?: () => Date; log?: (line: string) => void }): LicenseService {
  const env = o.env ?? process.env;
  const key = vendorKey(env);
  const path = licensePath(o.dataDir, env);
  const now = o.now ?? (() => new Date());
  const log = o.log ?? console.log;
  if (key.overridden) log("LICENSE: SERVERMIND_LICENSE_PUBLIC_KEY is set: licenses are verified against that development key, NOT the vendor key");
  let cached: { mtimeMs: number; size: number; installed: InstalledLicense } | null = null;
  let status: LicenseStatus | null = null;
  let lastAudited: string | null | undefined; // undefined: not read from the audit trail yet
  let timer: ReturnType<typeof setInterval> | undefined;

  const installed = (): InstalledLicense => {
    let st: { mtimeMs: number; size: number } | null = null;
    try {
      st = statSync(path);
    } catch {
      st = null;
    }
    if (!st) return (cached = null, { license: null });
    if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.installed;
    cached = { mtimeMs: st.mtimeMs, size: st.size, installed: readInstalled(path, key) };
    return cached.installed;
  };

  const stateKey = (s: LicenseStatus) => `${s.state}${s.license ? `:${s.license.id}` : ""}${s.fileProblem ? ":file_problem" : ""}`;

  const record = (e: Omit<AuditEvent, "actor" | "category"> & { category?: AuditEvent["category"] }) =>
    audit(o.sql, { actor: { type: "system", name: "license" }, category: "config_change", ...e });

  async function refresh(): Promise<LicenseStatus> {
    const inst = installed();
    const [row] = await o.sql<{ n: number }[]>`select count(*)::int as n from agents where revoked_at is null`;
    const s = evaluate({ license: inst.license, agents: Number(row!.n), now: now(), fileProblem: inst.problem, keyOverridden: key.overridden });
    status = s;
    if (lastAudited === undefined) {
      try {
        const [last] = await o.sql<{ k: string }[]>`select details->>'key' as k from audit_log where action = 'license.state' order by id desc limit 1`;
        lastAudited = last?.k ?? null;
      } catch {
        lastAudited = null;
      }
    }
    const k = stateKey(s);
    if (k !== lastAudited) {
      lastAudited = k;
      for (const w of s.warnings) log(`LICENSE: ${w}`);
      await record({
        action: "license.state", target: s.license ? `license ${s.license.id}` : "community mode",
        success: s.state === "valid" || s.state === "community",
        category: s.state === "valid" || s.state === "community" ? "config_change" : "security_event",
        details: { key: k, state: s.state, agents: s.agents, seats: s.seats, ...(s.license ? { licensee: s.license.licensee, expiresAt: s.license.expiresAt } : {}), ...(s.fileProblem ? { problem: s.fileProblem } : {}) },
      });
    }
    return s;
  }

  return {
    path,
    key,
    refresh,
    current: () => status,
    seats: {
      // inside the enrollment's transaction: counts with `tx`, evaluates, writes nothing
      async check(tx) {
        const [row] = await tx<{ n: number }[]>`select count(*)::int as n from agents where revoked_at is null`;
        const inst = installed();
        const s = evaluate({ license: inst.license, agents: Number(row!.n), now: now(), fileProblem: inst.problem, keyOverridden: key.overridden });
        if (seatFree(s)) return null;
        const what = s.license ? `license ${s.license.id} covers ${s.seats} agents` : `community mode allows ${s.seats} agents (no license installed)`;
        return { status: 403, code: "license_seats_exhausted", message: `${s.agents} agents are enrolled and the ${what}: revoke an agent or install a license with more seats` };
      },
      async enrolled() {
        await refresh();
      },
      async refused(from) {
        const s = await refresh();
        await record({
          action: "license.enrollment_refused", category: "security_event", success: false, ip: from.ip, userAgent: from.userAgent,
          target: from.hostname ?? "", details: { agents: s.agents, seats: s.seats, state: s.state },
        });
      },
    },
    start(intervalMs = 60_000) {
      timer ??= setInterval(() => void refresh().catch((e) => log(`license refresh failed: ${e instanceof Error ? e.message : e}`)), intervalMs);
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
