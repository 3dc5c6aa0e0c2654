/**
 * Fleet log search against a real PostgreSQL: the query semantics (AND/OR/NOT, phrases,
 * fields, levels), the host scope (a tag-scoped caller never sees other hosts' lines, not even
 * with host:other), keyset paging, the live tail, and the /logs route through the guard.
 */
import { afterAll, expect, test } from "bun:test";
import { HostScope } from "../../src/auth/host-scope.ts";
import { LogQueryError, parseLogQuery } from "../../src/logs/log-query.ts";
import { decodeCursor, encodeCursor, latestLogId, searchFleetLogs, tailFleetLogs } from "../../src/logs/search.ts";
import { consoleHarness } from "../support/console-app.ts";

const h = await consoleHarness();
afterAll(() => h.close());
const { sql } = h.db;
const ALL = HostScope.system("test");
const WEB_ONLY = HostScope.forPermission([{ permissions: ["logs.view"], tags: ["group:web"] }], "logs.view");
const now = Date.now();

async function agent(hostname: string, tags: string[]): Promise<number> {
  const [{ id }] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
    values (${hostname}, ${Buffer.alloc(32, hostname.length * 7 + tags.length)}, ${tags}, '1.2.3', 'wss', 'linux', 'x64', now()) returning id`;
  return Number(id);
}
async function line(agentId: number, agoS: number, severity: number, source: string, message: string): Promise<void> {
  await sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${agentId}, 1, ${new Date(now - agoS * 1000)}, ${severity}, ${source}, ${message})`;
}

const web1 = await agent("web-1", ["group:web", "env=prod"]);
const web2 = await agent("web-2", ["group:web"]);
const db1 = await agent("db-1", ["env=prod"]);
await line(web1, 10, 3, "nginx.service", "upstream timed out while reading response");
await line(web1, 20, 6, "sshd.service", "Accepted publickey for deploy from 192.0.2.7");
await line(web1, 30, 4, "kernel", "disk full on /var: no space left on device");
await line(web2, 40, 6, "cron.service", "disk check ran (full report in /tmp)");
await line(web2, 50, 2, "nginx.service", "worker process crashed: 100% CPU_usage");
await line(db1, 15, 3, "postgresql.service", "disk full: could not extend file");
await line(db1, 25, 6, "sshd.service", "Accepted password for root");

async function find(q: string, scope = ALL): Promise<string[]> {
  const rows = await searchFleetLogs(sql, scope, { query: parseLogQuery(q), from: new Date(now - 3600_000), to: new Date(now + 60_000), limit: 100 });
  return rows.map((r) => `${r.hostname}|${r.message.slice(0, 12)}`);
}

test("words, phrases, AND, OR, NOT and parentheses", async () => {
  expect(await find("disk full")).toEqual(["db-1|disk full: c", "web-1|disk full on", "web-2|disk check r"]);
  expect(await find('"disk full"')).toEqual(["db-1|disk full: c", "web-1|disk full on"]);
  expect(await find("accepted OR crashed")).toEqual(["web-1|Accepted pub", "db-1|Accepted pas", "web-2|worker proce"]);
  expect(await find("disk -report")).toEqual(["db-1|disk full: c", "web-1|disk full on"]);
  expect(await find("disk NOT (report OR extend)")).toEqual(["web-1|disk full on"]);
  // words match the message, not the unit: unit: does that
  expect(await find("disk -unit:cron.service")).toEqual(["db-1|disk full: c", "web-1|disk full on"]);
  expect(await find("(accepted AND root) OR timed")).toEqual(["web-1|upstream tim", "db-1|Accepted pas"]);
  // LIKE's characters are literal: % and _ match themselves only
  expect(await find('"100% CPU_usage"')).toEqual(["web-2|worker proce"]);
  expect(await find("CPU_u")).toEqual(["web-2|worker proce"]);
  expect(await find('"100%CPU"')).toEqual([]);
});

test("fields: host (with * wildcard), unit, tag, and level:warning meaning warning or more severe", async () => {
  expect(await find("host:web-1 disk")).toEqual(["web-1|disk full on"]);
  expect(await find("host:web-* disk")).toEqual(["web-1|disk full on", "web-2|disk check r"]);
  expect(await find("unit:sshd.service")).toEqual(["web-1|Accepted pub", "db-1|Accepted pas"]);
  expect(await find("tag:env=prod accepted")).toEqual(["web-1|Accepted pub", "db-1|Accepted pas"]);
  expect(await find("level:err")).toEqual(["web-1|upstream tim", "db-1|disk full: c", "web-2|worker proce"]);
  expect(await find("level:warning")).toEqual(["web-1|upstream tim", "db-1|disk full: c", "web-1|disk full on", "web-2|worker proce"]);
  expect(await find("-level:notice")).toEqual(["web-1|Accepted pub", "db-1|Accepted pas", "web-2|disk check r"]);
});

test("scope: a caller scoped to group:web never sees db-1's lines, even when asking for host:db-1", async () => {
  expect(await find("disk full", WEB_ONLY)).toEqual(["web-1|disk full on", "web-2|disk check r"]);
  expect(await find("host:db-1", WEB_ONLY)).toEqual([]);
  expect(await find("host:db-1 OR accepted", WEB_ONLY)).toEqual(["web-1|Accepted pub"]);
  expect(await find("NOT host:web-1", WEB_ONLY)).toEqual(["web-2|disk check r", "web-2|worker proce"]);
  expect(await find("tag:env=prod", WEB_ONLY)).toEqual(["web-1|upstream tim", "web-1|Accepted pub", "web-1|disk full on"]);
  expect(await find("disk", HostScope.none())).toEqual([]);
});

test("keyset paging on (ts, id) walks every line once, also among lines with the same time", async () => {
  const h2 = await agent("page-host", ["group:page"]);
  const t = new Date(now - 100_000);
  // 25 lines sharing one timestamp, 10 more a second apart
  for (let i = 0; i < 25; i++) await sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${h2}, 2, ${t}, 6, 'app', ${`pagetest same ${i}`})`;
  for (let i = 0; i < 10; i++) await line(h2, 90 + i, 6, "app", `pagetest step ${i}`);
  // lines stored before migration 500 have no id: they page by time
  for (let i = 0; i < 3; i++) await sql`insert into logs (agent_id, batch_id, ts, severity, source, message, id) values (${h2}, 2, ${new Date(now - 200_000 - i * 1000)}, 6, 'app', ${`pagetest old ${i}`}, null)`;
  const query = parseLogQuery("pagetest");
  const seen: string[] = [];
  let before: ReturnType<typeof decodeCursor>;
  for (let pages = 0; pages < 20; pages++) {
    const rows = await searchFleetLogs(sql, ALL, { query, from: new Date(now - 3600_000), to: new Date(now), limit: 7, before });
    seen.push(...rows.map((r) => r.message));
    if (rows.length < 7) break;
    before = decodeCursor(encodeCursor(rows.at(-1)!));
    expect(before).toBeDefined();
  }
  expect(seen.length).toBe(38);
  expect(new Set(seen).size).toBe(38);
  expect(seen.slice(-3)).toEqual(["pagetest old 0", "pagetest old 1", "pagetest old 2"]);
  expect(seen.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `pagetest step ${i}`));
  expect(decodeCursor("nonsense")).toBeUndefined();
});

test("live tail: lines written after the last seen id, late ones (older times) included, in scope only", async () => {
  const start = await latestLogId(sql);
  await line(db1, 5, 3, "postgresql.service", "tailtest late db line");
  await line(web2, 3000, 3, "app", "tailtest late-arriving web line"); // an older time, written now
  await line(web1, 1, 3, "app", "tailtest fresh web line");
  const rows = await tailFleetLogs(sql, WEB_ONLY, { query: parseLogQuery("tailtest"), afterId: start, since: new Date(now - 3600_000), until: new Date(now + 60_000), limit: 50 });
  expect(rows.map((r) => r.message)).toEqual(["tailtest fresh web line", "tailtest late-arriving web line"]);
  const again = await tailFleetLogs(sql, WEB_ONLY, { query: parseLogQuery("tailtest"), afterId: rows[0]!.id!, since: new Date(now - 3600_000), until: new Date(now + 60_000), limit: 50 });
  expect(again).toEqual([]);
});

test("property: every query the parser accepts runs as SQL without an error", async () => {
  const pieces = ["a", "disk", '"disk full"', "OR", "AND", "NOT", "-", "(", ")", "host:web-*", "unit:ssh%", "tag:x", "level:err", "\\", "'", "%", "_", "$1", ";", "é"];
  let seed = 5;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  let ran = 0;
  const deadline = Date.now() + 8000;
  for (let i = 0; i < 400 && ran < 150 && (ran < 30 || Date.now() < deadline); i++) {
    const q = Array.from({ length: 1 + rand(6) }, () => pieces[rand(pieces.length)]).join(rand(3) ? " " : "");
    let query;
    try {
      query = parseLogQuery(q);
    } catch (e) {
      expect(e).toBeInstanceOf(LogQueryError);
      continue;
    }
    await searchFleetLogs(sql, WEB_ONLY, { query, from: new Date(now - 3600_000), to: new Date(now + 60_000), limit: 5 });
    ran++;
  }
  expect(ran).toBeGreaterThanOrEqual(30);
}, 60_000);

test("route: /logs renders highlighted, escaped results within the caller's scope", async () => {
  await line(web1, 8, 3, "app", "<script>alert(1)</script> DISK burst");
  const scoped = await h.userWith(["logs.view"], undefined, ["group:web"]);
  const res = await h.send(`/logs?${new URLSearchParams({ q: "disk", range: "1h" })}`, { session: scoped });
  expect(res.status).toBe(200);
  const page = await res.text();
  expect(page).toContain('<a href="/logs" class="active" aria-current="page">Logs</a>');
  expect(page).toContain("&lt;script&gt;alert(1)&lt;/script&gt; <mark>DISK</mark> burst");
  expect(page).not.toContain("<script>alert(1)");
  expect(page).toContain(`<a href="/hosts/${web1}">web-1</a>`);
  expect(page).not.toContain("db-1");
  const other = await (await h.send(`/logs?q=${encodeURIComponent("host:db-1")}`, { session: scoped, headers: { "hx-request": "true", "hx-target": "log-results" } })).text();
  expect(other).toContain("No log lines match");
  expect(other).not.toContain("db-1|");
  expect(other).not.toContain("postgresql.service");
});

test("route: a malformed query is a 400 with the parser's message in the form, never a 500", async () => {
  const viewer = await h.userWithRole("viewer");
  for (const [q, msg] of [['"open', "never closed"], ["(a", "never closed"], ["source:x", "Unknown field"], ["", "The query is empty"]] as const) {
    const res = await h.send(`/logs?q=${encodeURIComponent(q)}`, { session: viewer, headers: { "hx-request": "true", "hx-target": "log-results" } });
    expect(res.status).toBe(400);
    const body = await res.text();
    expect(body).toContain('id="log-query-error"');
    expect(body).toContain(msg.replace(/"/g, "&quot;"));
  }
  const bad = await h.send("/logs?q=a&range=custom&from=yesterday", { session: viewer });
  expect(bad.status).toBe(400);
  expect(await bad.text()).toContain("is not a date and time for From");
  // the first visit, before any search, is no error
  expect((await h.send("/logs", { session: viewer })).status).toBe(200);
});

test("route: without logs.view the page is refused, and the nav hides it", async () => {
  const noLogs = await h.userWith(["hosts.view"]);
  expect((await h.send("/logs?q=disk", { session: noLogs })).status).toBe(403);
  expect(await (await h.send("/hosts", { session: noLogs })).text()).not.toContain('href="/logs"');
});

test("route: paging links and the live tail poll through the route", async () => {
  const admin = await h.userWithRole("admin");
  const first = await (await h.send(`/logs?q=pagetest&range=1h&live=1`, { session: admin, headers: { "hx-request": "true", "hx-target": "log-results" } })).text();
  expect(first).toContain('id="log-tail"');
  expect(first).toContain("data-pause-hidden");
  const tailUrl = /id="log-tail"[^>]*hx-get="([^"]+)"/.exec(first)![1]!.replace(/&amp;/g, "&");
  expect((first.match(/class="log-line/g) ?? []).length).toBe(38);
  await line(web2, 0, 6, "app", "pagetest tail arrival");
  const tail = await (await h.send(tailUrl, { session: admin, headers: { "hx-request": "true", "hx-target": "log-tail", "x-console-poll": "1" } })).text();
  expect(tail).toContain("<mark>pagetest</mark> tail arrival");
  expect(tail).toContain('id="log-tail"');
  const next = /id="log-tail"[^>]*hx-get="([^"]+)"/.exec(tail)![1]!.replace(/&amp;/g, "&");
  expect(next).not.toBe(tailUrl);
  const none = await (await h.send(next, { session: admin, headers: { "hx-request": "true", "hx-target": "log-tail", "x-console-poll": "1" } })).text();
  expect(none).not.toContain("log-line");
});

test("API: GET /api/logs with a token scoped to group:web never returns another host's lines; pages by cursor; malformed input is a 400 with the problem", async () => {
  const { createApiToken } = await import("../../src/auth/api-tokens.ts");
  const owner = await h.userWith(["logs.view"]);
  const mk = async (scopeTags: string[], permissions = ["logs.view"]) =>
    (await createApiToken(sql, owner.userId, { name: `t${scopeTags.join()}${permissions.join()}`, permissions, scopeTags, expiresInDays: 1, aiClient: false, clientName: "" })).token;
  const web = await mk(["group:web"]);
  const all = await mk([]);
  const api = async (qs: Record<string, string>, token: string) => {
    const res = await h.send(`/api/logs?${new URLSearchParams(qs)}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() as any };
  };
  await line(web1, 5, 4, "kernel", "apiword disk on web-1");
  await line(web2, 6, 6, "cron.service", "apiword accepted on web-2");
  await line(db1, 7, 3, "postgresql.service", "apiword disk on db-1 (secret)");
  await line(db1, 8, 7, "postgresql.service", "apiword debug on db-1");
  const from = String(now - 3600_000);
  const everyone = await api({ q: "apiword", from }, all);
  expect(everyone.status).toBe(200);
  expect(everyone.body.lines.map((l: any) => l.host.hostname)).toEqual(["web-1", "web-2", "db-1", "db-1"]);
  expect(everyone.body.lines[0]).toMatchObject({ host: { id: web1, hostname: "web-1" }, level: "warning", severity: 4, source: "kernel", message: "apiword disk on web-1" });
  expect(everyone.body.next).toBeNull();

  // the scoped token: web hosts only, even when asking for db-1 by name or by its tag
  for (const q of ["apiword", "apiword host:db-1", "apiword level:debug", "apiword tag:env=prod", "secret"]) {
    const r = await api({ q, from }, web);
    expect(r.status).toBe(200);
    expect({ q, hosts: r.body.lines.map((l: any) => l.host.hostname).filter((n: string) => !n.startsWith("web-")) }).toEqual({ q, hosts: [] });
  }
  expect((await api({ q: "apiword host:db-1", from }, web)).body.lines).toEqual([]);
  expect((await api({ q: "apiword", from }, web)).body.lines.map((l: any) => l.message)).toEqual(["apiword disk on web-1", "apiword accepted on web-2"]);
  expect((await api({ q: "apiword", from, tag: "env=prod" }, web)).body.lines.map((l: any) => l.host.hostname)).toEqual(["web-1"]);

  // paging: limit 2, then the next cursor
  const p1 = await api({ q: "apiword", from, limit: "2" }, all);
  expect(p1.body.lines.length).toBe(2);
  const p2 = await api({ q: "apiword", from, limit: "2", before: p1.body.next }, all);
  expect([...p1.body.lines, ...p2.body.lines].map((l: any) => l.id)).toEqual(everyone.body.lines.map((l: any) => l.id));

  // malformed: 400 with a message saying what is wrong
  const cases: Array<[Record<string, string>, string]> = [
    [{}, "q: a log query is required"],
    [{ q: '"unclosed' }, "q: "],
    [{ q: "disk AND" }, "q: "],
    [{ q: "level:loud" }, "q: "],
    [{ q: "disk", from: "yesterday" }, "from and to are milliseconds"],
    [{ q: "disk", from: String(now), to: String(now - 1000) }, "from must be before to"],
    [{ q: "disk", from: "0", to: String(now) }, "from and to are at most 400 days apart"],
    [{ q: "disk", limit: "0" }, "limit is an integer 1-500"],
    [{ q: "disk", limit: "x" }, "limit is an integer 1-500"],
    [{ q: "disk", before: "garbage" }, "before: not a cursor"],
  ];
  for (const [qs, want] of cases) {
    const r = await api(qs, all);
    expect({ qs, status: r.status, code: r.body.error?.code, says: String(r.body.error?.message).startsWith(want) }).toEqual({ qs, status: 400, code: "bad_request", says: true });
  }
  // a parser message is passed on as it is
  expect((await api({ q: "level:loud" }, all)).body.error.message).toMatch(/^q: .*loud/);

  // a token without logs.view is refused
  const other = await h.userWith(["hosts.view", "logs.view"]);
  const hostsOnly = (await createApiToken(sql, other.userId, { name: "hosts-only", permissions: ["hosts.view"], scopeTags: [], expiresInDays: 1, aiClient: false, clientName: "" })).token;
  expect((await h.send("/api/logs?q=disk", { headers: { authorization: `Bearer ${hostsOnly}` } })).status).toBe(403);
});
