/**
 * Fleet log search with the ClickHouse tier on: lines older than PostgreSQL's log retention are
 * read from ClickHouse (src/logs/archive.ts), newest first after PostgreSQL's, with the same
 * query language and the caller's host scope, keyset-paged into the archive, a line shipped twice
 * shown once, and PostgreSQL's lines still returned when ClickHouse does not answer. Against a
 * real PostgreSQL and a real clickhouse-server.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { HostScope } from "../../src/auth/host-scope.ts";
import { createApiToken } from "../../src/auth/api-tokens.ts";
import { clickhouseLogArchive } from "../../src/logs/archive.ts";
import { parseLogQuery } from "../../src/logs/log-query.ts";
import { decodeCursor, encodeCursor, searchFleetLogs, searchFleetLogsTiered } from "../../src/logs/search.ts";
import { createClickhouse, type Clickhouse } from "../../src/store/clickhouse/client.ts";
import { ensureSchema, LOGS_TABLE } from "../../src/store/clickhouse/schema.ts";
import { requireComponent } from "../support/ci.ts";
import { hasClickhouse, startTestClickhouse, type TestClickhouse } from "../support/clickhouse.ts";
import { consoleHarness, type ConsoleHarness } from "../support/console-app.ts";

const run = requireComponent(hasClickhouse, "clickhouse-server (Debian package) or CLICKHOUSE_URL");
const DAY = 86_400_000;
const now = Date.now();
const ALL = HostScope.system("test");
const WEB = HostScope.forPermission([{ permissions: ["logs.view"], tags: ["group:web"] }], "logs.view");

let h: ConsoleHarness;
let chServer: TestClickhouse;
let ch: Clickhouse;
const ids = { web1: 0, db1: 0 };

if (run) {
  beforeAll(async () => {
    h = await consoleHarness();
    chServer = await startTestClickhouse();
    ch = createClickhouse({ url: `${chServer.url}/${chServer.database}` });
    await ensureSchema(ch);
    const { sql } = h.db;
    for (const [key, hostname, tag, fill] of [["web1", "web-1", "group:web", 1], ["db1", "db-secret-1", "group:db", 2]] as const) {
      const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values (${hostname}, ${Buffer.alloc(32, fill)}, ${[tag]}, now()) returning id`;
      ids[key] = Number(a!.id);
    }
    // PostgreSQL (retention 3 days here): a recent line
    await sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${ids.web1}, 1, ${new Date(now - 3600_000)}, 6, 'app', 'zebra recent on web-1')`;
    // ClickHouse: what the shipper copied before PostgreSQL dropped those days; one row twice
    const old = (days: number, agent: number, batch: number, n: number, sev: number, src: string, msg: string) =>
      ch.exec(`insert into ${ch.database}.${LOGS_TABLE} (agent_id, ts, batch_id, n, severity, source, message)
        values ({a:UInt64}, {ts:Int64}, {b:UInt64}, {n:UInt32}, {s:Int16}, {src:String}, {msg:String})`,
        { a: agent, ts: now - days * DAY, b: batch, n, s: sev, src, msg });
    await old(10, ids.web1, 100, 0, 3, "nginx.service", "zebra old: disk full on web-1");
    await old(10, ids.web1, 100, 0, 3, "nginx.service", "zebra old: disk full on web-1"); // shipped twice
    await old(10, ids.web1, 100, 1, 6, "cron.service", "zebra old: cron ran on web-1");
    await old(12, ids.db1, 200, 0, 3, "postgresql.service", "zebra old: secret on db-secret-1");
    await old(20, ids.web1, 101, 0, 6, "sshd.service", "zebra oldest: Accepted publickey on web-1");
    await old(40, ids.web1, 102, 0, 6, "sshd.service", "zebra too old for the range");
  }, 90_000);

  afterAll(async () => {
    await ch?.close();
    await chServer?.close();
    await h?.close();
  }, 30_000);
}

const search = (q: string, scope = ALL, o: { limit?: number; before?: string; archive?: ReturnType<typeof clickhouseLogArchive> } = {}) =>
  searchFleetLogsTiered(h.db.sql, scope, {
    query: parseLogQuery(q), from: new Date(now - 30 * DAY), to: new Date(now + 60_000), limit: o.limit ?? 100,
    before: o.before ? decodeCursor(o.before) : undefined,
  }, o.archive ?? clickhouseLogArchive(ch, 3));
const messages = (r: { lines: Array<{ message: string }> }) => r.lines.map((l) => l.message);

test.skipIf(!run)("lines older than PostgreSQL's retention come from ClickHouse, newest first after PostgreSQL's, each once", async () => {
  // PostgreSQL alone knows only the recent line (what the search did before the archive)
  expect((await searchFleetLogs(h.db.sql, ALL, { query: parseLogQuery("zebra"), from: new Date(now - 30 * DAY), to: new Date(now + 60_000), limit: 100 })).map((l) => l.message)).toEqual(["zebra recent on web-1"]);
  const r = await search("zebra");
  expect(r.archive).toBe("searched");
  expect(messages(r)).toEqual([
    "zebra recent on web-1", "zebra old: cron ran on web-1", "zebra old: disk full on web-1", "zebra old: secret on db-secret-1", "zebra oldest: Accepted publickey on web-1",
  ]);
  expect(r.lines[2]).toMatchObject({ hostname: "web-1", agent_id: ids.web1, severity: 3, source: "nginx.service", id: `c${ids.web1}-100-0` });
  // a range within PostgreSQL's retention does not ask ClickHouse
  const recent = await searchFleetLogsTiered(h.db.sql, ALL, { query: parseLogQuery("zebra"), from: new Date(now - DAY), to: new Date(now), limit: 100 }, clickhouseLogArchive(ch, 3));
  expect(recent.archive).toBe("not-needed");
  expect(messages(recent)).toEqual(["zebra recent on web-1"]);
}, 30_000);

test.skipIf(!run)("the query language and the host scope apply in the archive too", async () => {
  expect(messages(await search('"disk full" level:err'))).toEqual(["zebra old: disk full on web-1"]);
  expect(messages(await search("zebra unit:nginx*"))).toEqual(["zebra old: disk full on web-1"]);
  expect(messages(await search("zebra unit:CRON.SERVICE"))).toEqual(["zebra old: cron ran on web-1"]);
  expect(messages(await search("zebra -web-1"))).toEqual(["zebra old: secret on db-secret-1"]);
  expect(messages(await search("host:db-* OR accepted"))).toEqual(["zebra old: secret on db-secret-1", "zebra oldest: Accepted publickey on web-1"]);
  expect(messages(await search("zebra tag:group:db"))).toEqual(["zebra old: secret on db-secret-1"]);
  // a caller scoped to group:web never sees db-secret-1's archived lines, however it asks
  for (const q of ["zebra", "secret", "host:db-secret-1", "tag:group:db", "zebra OR NOT zebra"]) {
    const r = await search(q, WEB);
    expect({ q, leak: r.lines.filter((l) => l.hostname !== "web-1").map((l) => l.message) }).toEqual({ q, leak: [] });
  }
  expect(messages(await search("zebra", WEB))).toHaveLength(4);
  expect((await search("zebra", HostScope.none())).lines).toEqual([]);
}, 30_000);

test.skipIf(!run)("lines shipped many times still come back once each and in order, also when the copies fill the newest rows read", async () => {
  const put = (days: number, batch: number, msg: string) =>
    ch.exec(`insert into ${ch.database}.${LOGS_TABLE} (agent_id, ts, batch_id, n, severity, source, message)
      values ({a:UInt64}, {ts:Int64}, {b:UInt64}, 0, 6, 'app', {msg:String})`, { a: ids.web1, ts: now - days * DAY - 1000, b: batch, msg });
  // the newest line four times (a chunk shipped again and again), then two older ones
  for (let i = 0; i < 4; i++) await put(5, 300, "quokka newest");
  await put(6, 301, "quokka middle");
  await put(7, 302, "quokka oldest");
  // limit 2: the newest 4 rows read are all copies of one line, so the grouped query answers
  expect(messages(await search("quokka", ALL, { limit: 2 }))).toEqual(["quokka newest", "quokka middle"]);
  expect(messages(await search("quokka", ALL, { limit: 3 }))).toEqual(["quokka newest", "quokka middle", "quokka oldest"]);
  expect(messages(await search("quokka", ALL, { limit: 10 }))).toEqual(["quokka newest", "quokka middle", "quokka oldest"]);
}, 30_000);

test.skipIf(!run)("paging walks from PostgreSQL into the archive by cursor, every line once", async () => {
  const seen: string[] = [];
  let before: string | undefined;
  for (let i = 0; i < 10; i++) {
    const r = await search("zebra", ALL, { limit: 2, before });
    seen.push(...messages(r));
    if (r.lines.length < 2) break;
    before = encodeCursor(r.lines[r.lines.length - 1]!);
  }
  expect(seen).toEqual(messages(await search("zebra")));
}, 30_000);

test.skipIf(!run)("when ClickHouse does not answer, PostgreSQL's lines come back with the reason; the API and the page say so", async () => {
  const down = clickhouseLogArchive(createClickhouse({ url: "http://127.0.0.1:9/servermind", requestTimeoutMs: 2000 }), 3);
  const r = await search("zebra", ALL, { archive: down });
  expect(r.archive).toBe("unavailable");
  expect(messages(r)).toEqual(["zebra recent on web-1"]);
  expect(r.archiveError).toBeTruthy();

  // through the routes: the services' archive, a token scoped to group:web
  (h.services as { logArchive?: unknown }).logArchive = clickhouseLogArchive(ch, 3);
  const owner = await h.userWith(["logs.view"]);
  const token = (await createApiToken(h.db.sql, owner.userId, { name: "archive", permissions: ["logs.view"], scopeTags: ["group:web"], expiresInDays: 1, aiClient: false, clientName: "" })).token;
  const res = await h.send(`/api/logs?${new URLSearchParams({ q: "zebra", from: String(now - 30 * DAY) })}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { archive: string; lines: Array<{ message: string; host: { hostname: string } }> };
  expect(body.archive).toBe("searched");
  expect(body.lines.map((l) => l.message)).toEqual(["zebra recent on web-1", "zebra old: cron ran on web-1", "zebra old: disk full on web-1", "zebra oldest: Accepted publickey on web-1"]);
  (h.services as { logArchive?: unknown }).logArchive = down;
  const page = await (await h.send(`/logs?${new URLSearchParams({ q: "zebra", range: "custom", from: new Date(now - 30 * DAY).toISOString().slice(0, 16) })}`, { session: owner })).text();
  expect(page).toContain('id="log-archive-error"');
  expect(page).toContain("</mark> recent on web-1"); // the line, with its match highlighted
  (h.services as { logArchive?: unknown }).logArchive = undefined;
}, 30_000);
