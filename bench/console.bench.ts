/**
 * Fleet overview render time for a large fleet (issue 4: 2,000 hosts in under 200 ms, server
 * side). Inserts synthetic agents and metric_latest rows (100 series each, like the agent's),
 * then times GET /hosts?per=all (every host on one page) through the console plugin in-process
 * (`app.handle`: session, permission check, query, template), the htmx poll of that table, the
 * default paged view (250 rows), a search, and the query alone.
 *
 *   bun bench/console.bench.ts [--hosts 2000] [--runs 60]
 *
 * Prints one JSON line last: median and p95 per case, the target and the environment.
 */
import { HostScope } from "../src/auth/host-scope.ts";
import { Elysia } from "elysia";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPg } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { migrate } from "../src/store/postgres/migrate.ts";
import { loadConfig } from "../src/config.ts";
import { consolePlugin, startConsole } from "../src/web/plugin.ts";
import { createUser } from "../src/auth/users.ts";
import { roleIdByName } from "../src/auth/roles.ts";
import { createSession, SESSION_COOKIE } from "../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../src/settings/console-settings.ts";
import { fleetOverview } from "../src/store/postgres/queries-console.ts";
import { arg, environment, latencies, percentile, round } from "./support.ts";

const HOSTS = Number(arg("hosts", "2000"));
const RUNS = Number(arg("runs", "60"));
const TARGET_MS = 200;

const dir = mkdtempSync(join(tmpdir(), "servermind-console-bench-"));
chmodSync(dir, 0o755); // the postgres user (when run as root) must reach its data directory
const pg = process.env.DATABASE_URL ? undefined : await startEmbeddedPg({ dataDir: join(dir, "pg") });
const sql = createPgClient(process.env.DATABASE_URL || pg!.url, 4);
try {
  await migrate(sql);
  const deps = { sql, config: loadConfig({}), dataDir: dir, serverFingerprint: "00".repeat(32) };
  const started = await startConsole(deps, () => {});
  const app = new Elysia().use(consolePlugin(deps));

  // synthetic fleet: 100 series per host, the three the overview shows among them
  const names = ["cpu.usage_pct", "mem.used_pct", 'disk.used_pct{mount="/"}', ...Array.from({ length: 97 }, (_, i) => `bench.series_${i}`)];
  await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
    select 'host-' || lpad(g::text, 5, '0'), sha256(g::text::bytea), array['env=' || (case when g % 3 = 0 then 'prod' else 'dev' end)],
      '1.0.' || (g % 7), case when g % 2 = 0 then 'wss' else 'h2' end, 'linux', 'x64',
      now() - make_interval(secs => (g % 120))
    from generate_series(1, ${HOSTS}) g`;
  await sql`insert into metric_latest (agent_id, ts, names, vals)
    select id, now(), ${names}::text[], array(select random() * 100 from generate_series(1, ${names.length}))
    from agents`;
  await sql`analyze`;

  const id = await createUser(sql, { username: "bench", password: "Quiet-Lantern-4821", roleIds: [(await roleIdByName(sql, "admin"))!] }, DEFAULT_SETTINGS.password);
  const { token } = await createSession(sql, id, "full", "127.0.0.1", "bench", DEFAULT_SETTINGS.session);

  async function time(fn: () => Promise<unknown>): Promise<{ median_ms: number; p95_ms: number; min_ms: number }> {
    const xs = await latencies(RUNS, fn, 5);
    return { median_ms: round(percentile(xs, 50), 2), p95_ms: round(percentile(xs, 95), 2), min_ms: round(xs[0]!, 2) };
  }

  let bytes = 0;
  let rows = 0;
  const page = (path: string, headers: Record<string, string> = {}) => async () => {
    const r = await app.handle(new Request(`http://bench${path}`, { headers: { cookie: `${SESSION_COOKIE}=${token}`, ...headers } }));
    const body = await r.text();
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
    bytes = body.length;
    rows = (body.match(/<tr>/g) ?? []).length;
  };

  // every host on one page (per=all): the case the issue sets the 200 ms target for
  const full = await time(page("/hosts?sort=hostname&per=all"));
  const fullRows = rows;
  const fullBytes = bytes;
  const sortedCpu = await time(page("/hosts?sort=cpu&dir=desc&per=all"));
  const poll = await time(page("/hosts?sort=hostname&per=all", { "hx-request": "true", "hx-target": "fleet-table", "x-console-poll": "1" }));
  // the default view: the first 250 rows and the counts over the whole fleet
  const paged = await time(page("/hosts?sort=cpu&dir=desc"));
  const pagedBytes = bytes;
  const search = await time(page("/hosts?q=host-01"));
  const query = await time(() => fleetOverview(sql, HostScope.system("bench"), { sort: "hostname" }));
  started.stop();

  const result = {
    bench: "console.fleet_overview",
    hosts: HOSTS,
    runs: RUNS,
    rows_rendered: fullRows,
    html_bytes: fullBytes,
    full_page: full,
    full_page_sorted_by_cpu: sortedCpu,
    poll_partial: poll,
    default_page_250_rows: paged,
    default_page_html_bytes: pagedBytes,
    search: search,
    query_only: query,
    target_ms: TARGET_MS,
    meets_target: full.p95_ms < TARGET_MS && poll.p95_ms < TARGET_MS,
    env: environment(),
  };
  console.log(JSON.stringify(result));
} finally {
  await sql.end({ timeout: 5 });
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
}
