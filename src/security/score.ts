/**
 * The 0-100 security score of one server, from six categories. The formula is documented in
 * docs/security-score.md; `computeScore` is pure (inputs in, score out) so the formula is tested
 * on its own, and `loadScoreInputs` gathers the inputs from PostgreSQL.
 */
import type { Sql } from "postgres";
import type { HostScope } from "../auth/host-scope.ts";
import { inScope, type ScopedHost } from "../store/postgres/queries-console.ts";

export const WEIGHTS = { config: 30, integrity: 15, patches: 15, network: 15, authentication: 15, agent: 10 } as const;
export type Category = keyof typeof WEIGHTS;

/** Ports that should never face the network on a hardened server (clear-text, databases, caches). */
export const RISKY_PORTS = new Set([21, 23, 69, 111, 135, 139, 445, 512, 513, 514, 873, 2049, 2375, 3306, 5432, 5900, 6379, 9200, 11211, 27017]);

export interface ScoreInputs {
  /** Latest CIS verdicts (pass/fail only count), with severities. */
  cis: Array<{ control_id: string; status: string; severity: number; category: string }>;
  /** FIM events of the last 7 days not made by the package manager. */
  fim: Array<{ severity: number }>;
  /** From inventory: pending updates when the agent reports them. */
  updates: { security: number; other: number; source?: string; securityPackages?: string[] } | null;
  /** Why the agent could not count them (no supported package manager, timeout), when it said so. */
  updatesUnknown?: string;
  /** Listening sockets from inventory (null when no inventory yet). */
  ports: Array<{ proto: string; address: string; port: number }> | null;
  /** Authentication failures in logs in the last 24 h. */
  authFailures: number;
  /** Agent liveness. */
  agent: { lastSeenMs: number | null; processes: Record<string, string> | null };
  nowMs: number;
}

export interface CategoryScore {
  score: number | null; // null: no data, counted as 50 and flagged
  weight: number;
  detail: string;
}

export interface SecurityScore {
  score: number;
  categories: Record<Category, CategoryScore>;
  unknown: Category[];
}

const clamp = (n: number) => Math.max(0, Math.min(100, Math.round(n)));

function weightedPass(rows: ScoreInputs["cis"]): { score: number | null; pass: number; fail: number } {
  let pass = 0;
  let all = 0;
  let p = 0;
  let f = 0;
  for (const r of rows) {
    if (r.status !== "pass" && r.status !== "fail") continue;
    const w = Math.max(1, r.severity);
    all += w;
    if (r.status === "pass") (pass += w), p++;
    else f++;
  }
  return { score: all ? clamp((100 * pass) / all) : null, pass: p, fail: f };
}

const isLoopback = (a: string) => a.startsWith("127.") || a === "::1" || a === "0:0:0:0:0:0:0:1";

function patchesDetail(u: NonNullable<ScoreInputs["updates"]>): string {
  const names = u.securityPackages?.slice(0, 5) ?? [];
  const more = u.security > names.length && names.length ? `, and ${u.security - names.length} more` : "";
  return `${u.security} security and ${u.other} other updates pending${u.source ? ` (${u.source})` : ""}${names.length ? `: ${names.join(", ")}${more}` : ""}`;
}

export function computeScore(i: ScoreInputs): SecurityScore {
  const cats = {} as Record<Category, CategoryScore>;
  const cfg = weightedPass(i.cis.filter((r) => r.category !== "ssh" && r.category !== "authentication"));
  cats.config = { score: cfg.score, weight: WEIGHTS.config, detail: cfg.score === null ? "no CIS scan yet" : `${cfg.pass} controls pass, ${cfg.fail} fail (severity-weighted)` };

  const fimPenalty = i.fim.reduce((s, e) => s + (e.severity >= 7 ? 15 : e.severity >= 4 ? 5 : 1), 0);
  cats.integrity = { score: clamp(100 - fimPenalty), weight: WEIGHTS.integrity, detail: `${i.fim.length} unexplained file changes in 7 days` };

  cats.patches = i.updates
    ? { score: clamp(100 - 10 * i.updates.security), weight: WEIGHTS.patches, detail: patchesDetail(i.updates) }
    : { score: null, weight: WEIGHTS.patches, detail: i.updatesUnknown ? `pending updates unknown: ${i.updatesUnknown}` : "the agent has not reported pending updates yet" };

  if (i.ports) {
    // inventory is the agent's JSON: an entry without an address counts as listening everywhere
    const exposed = i.ports
      .map((p) => ({ proto: String(p?.proto ?? ""), address: String(p?.address ?? ""), port: Number(p?.port) }))
      .filter((p) => Number.isInteger(p.port) && !isLoopback(p.address) && (p.proto.startsWith("tcp") || p.proto.startsWith("udp")));
    const uniq = new Map(exposed.map((p) => [`${p.proto.replace(/6$/, "")}/${p.port}`, p]));
    const risky = [...uniq.values()].filter((p) => RISKY_PORTS.has(p.port));
    cats.network = { score: clamp(100 - 15 * risky.length - 3 * (uniq.size - risky.length)), weight: WEIGHTS.network, detail: `${uniq.size} ports reachable from the network, ${risky.length} of them risky (${risky.map((p) => p.port).join(", ") || "none"})` };
  } else cats.network = { score: null, weight: WEIGHTS.network, detail: "no inventory yet" };

  const auth = weightedPass(i.cis.filter((r) => r.category === "ssh" || r.category === "authentication"));
  const authPenalty = Math.min(30, Math.floor(i.authFailures / 10) * 2);
  cats.authentication = {
    score: auth.score === null ? null : clamp(auth.score - authPenalty),
    weight: WEIGHTS.authentication,
    detail: `${auth.pass} SSH/account controls pass, ${auth.fail} fail; ${i.authFailures} failed logins in 24 h`,
  };

  let agent: number;
  const age = i.agent.lastSeenMs === null ? Infinity : i.nowMs - i.agent.lastSeenMs;
  agent = age <= 120_000 ? 100 : age <= 900_000 ? 60 : 0;
  const bad = Object.entries(i.agent.processes ?? {}).filter(([, s]) => s !== "ok").map(([n]) => n);
  agent -= 20 * bad.length;
  cats.agent = { score: clamp(agent), weight: WEIGHTS.agent, detail: `${age === Infinity ? "never seen" : `last seen ${Math.round(age / 1000)} s ago`}${bad.length ? `; not ok: ${bad.join(", ")}` : ""}` };

  let sum = 0;
  let w = 0;
  const unknown: Category[] = [];
  for (const [k, c] of Object.entries(cats) as Array<[Category, CategoryScore]>) {
    if (c.score === null) unknown.push(k);
    sum += c.weight * (c.score ?? 50);
    w += c.weight;
  }
  return { score: clamp(sum / w), categories: cats, unknown };
}

export const AUTH_FAILURE_PATTERN = "(Failed password|authentication failure|Invalid user|Failed publickey|FAILED LOGIN|maximum authentication attempts)";

const count = (n: unknown) => (typeof n === "number" && Number.isInteger(n) && n >= 0 ? n : undefined);

/** `inventory.updates` as the agent sends it (docs/protocol.md 4.3); anything else is "not reported". */
function readUpdates(u: any): ScoreInputs["updates"] {
  if (!u || typeof u !== "object" || u.status === "unknown") return null;
  const security = count(u.security);
  const other = count(u.other);
  if (security === undefined || other === undefined) return null;
  return {
    security, other,
    source: typeof u.source === "string" ? u.source.slice(0, 16) : undefined,
    securityPackages: Array.isArray(u.securityPackages) ? u.securityPackages.filter((n: unknown) => typeof n === "string").slice(0, 50).map((n: string) => n.slice(0, 128)) : undefined,
  };
}

export async function loadScoreInputs(sql: Sql, host: ScopedHost, nowMs = Date.now()): Promise<ScoreInputs> {
  const agentId = host.id;
  const now = new Date(nowMs);
  const [cis, fim, inv, auth, agent] = await Promise.all([
    sql`select control_id, status, severity, category from cis_results where agent_id = ${agentId}`,
    sql`select severity from security_events where agent_id = ${agentId} and type like 'fim.%' and type not in ('fim.status', 'fim.rate_limited', 'fim.watch_limit', 'fim.queue_overflow')
        and ts > ${new Date(nowMs - 7 * 86_400_000)} and ts <= ${now} and coalesce(data ? 'packageManager', false) = false
        and servermind_change(agent_id, path, data->>'from', ts) is null limit 1000`,
    sql`select data from inventory_current where agent_id = ${agentId}`,
    sql`select count(*)::int as n from logs where agent_id = ${agentId} and ts > ${new Date(nowMs - 86_400_000)} and ts <= ${now} and message ~* ${AUTH_FAILURE_PATTERN}`,
    sql`select last_seen, status from agents where id = ${agentId}`,
  ]);
  const d = (inv[0]?.data ?? null) as Record<string, any> | null;
  const u = d?.updates;
  return {
    cis: cis as any,
    fim: fim.map((r) => ({ severity: Number(r.severity) })),
    updates: readUpdates(u),
    updatesUnknown: u && u.status === "unknown" ? String(u.reason ?? "not reported").slice(0, 200) : undefined,
    ports: d && Array.isArray(d.ports) ? d.ports : null,
    authFailures: auth[0].n,
    agent: { lastSeenMs: agent[0]?.last_seen ? new Date(agent[0].last_seen).getTime() : null, processes: agent[0]?.status?.processes ?? null },
    nowMs,
  };
}

/** Computes, stores (for the trend chart) and returns the current score. */
export async function scoreHost(sql: Sql, host: ScopedHost, nowMs = Date.now()): Promise<SecurityScore> {
  const s = computeScore(await loadScoreInputs(sql, host, nowMs));
  await sql`insert into security_scores (agent_id, ts, score, breakdown) values (${host.id}, ${new Date(nowMs)}, ${s.score}, ${sql.json(s as any)})
    on conflict (agent_id, ts) do update set score = excluded.score, breakdown = excluded.breakdown`;
  return s;
}

export async function scoreTrend(sql: Sql, host: ScopedHost, since: Date) {
  return sql`select ts, score from security_scores where agent_id = ${host.id} and ts >= ${since} order by ts limit 5000`;
}

export interface LatestScore {
  agent_id: number;
  hostname: string;
  ts: Date | null;
  score: number | null;
  breakdown: SecurityScore | null;
}

/** The latest stored score of every live host (in scope), worst first, hosts never scored last. */
export async function latestScores(sql: Sql, scope: HostScope): Promise<LatestScore[]> {
  return sql<LatestScore[]>`
    select a.id::int as agent_id, a.hostname, s.ts, s.score, s.breakdown
    from agents a left join lateral (select ts, score, breakdown from security_scores where agent_id = a.id order by ts desc limit 1) s on true
    where a.revoked_at is null ${inScope(sql, scope)}
    order by s.score asc nulls last, a.hostname limit 5000`;
}

/** The latest stored score of one host, computing (and storing) one when there is none yet. */
export async function currentScore(sql: Sql, host: ScopedHost, nowMs = Date.now()): Promise<SecurityScore> {
  const [row] = await sql`select breakdown from security_scores where agent_id = ${host.id} order by ts desc limit 1`;
  return row ? (row.breakdown as SecurityScore) : scoreHost(sql, host, nowMs);
}
