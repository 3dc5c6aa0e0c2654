/**
 * The interactive charts' data routes (src/web/chart/routes.ts) over a real PostgreSQL: columnar
 * JSON sized to the chart's width, the stored samples unchanged when buckets are finer than the
 * agent's interval, several hosts on one time axis, the caller's host scope, and clear 400s.
 */
import { afterAll, expect, test } from "bun:test";
import { consoleHarness } from "../../support/console-app.ts";
import { MAX_COMPARE_HOSTS } from "../../../src/web/chart/data.ts";

const h = await consoleHarness();
afterAll(() => h.close());
const { sql } = h.db;

const NAMES = ["cpu.usage_pct", "mem.used_pct", 'net.rx_bytes_per_s{iface="eth0"}', 'net.rx_bytes_per_s{iface="eth1"}', 'net.rx_bytes_per_s{iface="lo"}'];
const cpuAt = (f: number) => 20 + (f % 40) * 1.5;
const NOW = Date.now();
const START = NOW - 2 * 3_600_000;

/** A host reporting NAMES every 10 s for the last two hours (`offsetMs` later than the others), in frames of ten samples. */
async function seed(hostname: string, tags: string[], offsetMs: number): Promise<number> {
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values (${hostname}, ${Buffer.alloc(32, hostname.length + offsetMs)}, ${tags}, now()) returning id`;
  const id = Number(a!.id);
  const sids: number[] = [];
  for (const n of NAMES) sids.push(Number((await sql`insert into metric_series (agent_id, name) values (${id}, ${n}) returning id`)[0]!.id));
  for (let b = 0; b < 72; b++) {
    const t0 = START + offsetMs + b * 100_000;
    const off = Array.from({ length: 10 }, (_, i) => i * 10_000);
    const vals: number[] = [];
    for (let s = 0; s < NAMES.length; s++) {
      for (let i = 0; i < 10; i++) {
        const f = b * 10 + i;
        vals.push([cpuAt(f), 50 + (f % 9), 1000 * f, 500, 99_999][s]!);
      }
    }
    await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (${id}, ${b}, ${new Date(t0)}, ${new Date(t0 + 90_000)}, ${off}, ${sids}, ${vals})`;
  }
  return id;
}

const web = await seed("chart-web-1", ["group:web"], 0);
const db = await seed("chart-db-out-7", ["group:db"], 5_000);
const admin = await h.userWithRole("admin");

async function get(path: string, session = admin) {
  const res = await h.send(path, { session });
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.json().catch(() => null), csp: res.headers.get("content-security-policy") };
}

interface Chart { id: string; unit: string; t: number[]; series: Array<{ name: string; label: string; host: number; gapMs: number; values: Array<number | null> }> }

test("a host's charts: one time axis per chart, at most about `width` points, the stored samples unchanged in fine buckets", async () => {
  for (const [range, width] of [["1h", 100], ["1h", 300], ["1h", 800], ["15m", 800], ["24h", 800], ["90d", 800]] as const) {
    const r = await get(`/api/hosts/${web}/charts?range=${range}&width=${width}`);
    expect(r.status).toBe(200);
    expect(r.type).toContain("application/json");
    expect(r.body.range).toBe(range);
    const charts = r.body.charts as Chart[];
    expect(charts.map((c) => c.id)).toEqual(["cpu", "mem", "net-rx"]);
    for (const c of charts) {
      expect(c.t.length).toBeGreaterThan(0);
      expect(c.t.length).toBeLessThanOrEqual(width + 1);
      for (const s of c.series) expect(s.values.length).toBe(c.t.length);
      expect([...c.t].sort((a, b) => a - b)).toEqual(c.t);
    }
    const cpu = charts[0]!;
    expect(cpu.unit).toBe("pct");
    expect(cpu.series.map((s) => s.name)).toEqual(["cpu.usage_pct"]);
    expect(cpu.series[0]!.gapMs).toBeGreaterThanOrEqual(25_000); // 2.5 x the 10 s interval at least
    expect(charts[2]!.series.map((s) => s.label)).toEqual(["rx eth0", "rx eth1", "rx lo"]);
  }
  // 15 minutes at 1,000 px: 1 s buckets, each value is one stored sample
  const r = await get(`/api/hosts/${web}/charts?range=15m&width=1000`);
  const cpu = (r.body.charts as Chart[])[0]!;
  const present = cpu.t.map((t, i) => [t, cpu.series[0]!.values[i]] as const).filter(([, v]) => v !== null);
  expect(present.length).toBeGreaterThanOrEqual(85);
  for (const [t, v] of present) {
    const f = Math.ceil((t - START) / 10_000 - 1e-9); // the bucket [t, t + 1 s) holds the sample at or after t
    expect(v).toBe(cpuAt(f));
  }
  // a fixed window (a zoom): finer than the range it came from
  const wide = await get(`/api/hosts/${web}/charts?range=1h&width=400`);
  const zoom = await get(`/api/hosts/${web}/charts?from=${NOW - 1_800_000}&to=${NOW - 1_200_000}&width=400`);
  expect(zoom.status).toBe(200);
  expect(zoom.body.range).toBeNull();
  expect(zoom.body.bucketMs).toBeLessThan(wide.body.bucketMs);
  expect((zoom.body.charts as Chart[])[0]!.t.every((t) => t >= NOW - 1_800_000 && t < NOW - 1_200_000)).toBe(true);
});

test("several hosts on one chart: one series per host on a shared axis, interfaces summed without lo", async () => {
  const r = await get(`/api/charts?host=${web}&host=${db}&range=1h&width=600`);
  expect(r.status).toBe(200);
  expect(r.body.hosts.map((x: { hostname: string; state: string }) => [x.hostname, x.state])).toEqual([["chart-web-1", "online"], ["chart-db-out-7", "online"]]);
  const charts = r.body.charts as Chart[];
  expect(charts.map((c) => c.id)).toEqual(["cpu", "mem", "net-rx"]);
  for (const c of charts) {
    expect(c.series.map((s) => [s.label, s.host])).toEqual([["chart-web-1", web], ["chart-db-out-7", db]]);
    expect(c.t.length).toBeLessThanOrEqual(601);
    // the two hosts sample 5 s apart: each series has holes where the other has points, but no gap longer than its gapMs inside
    for (const s of c.series) {
      const at = s.values.map((v, i) => (v === null ? -1 : c.t[i]!)).filter((t) => t >= 0);
      for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeLessThanOrEqual(s.gapMs);
    }
  }
  const net = charts[2]!;
  const i = net.series[0]!.values.findIndex((v) => v !== null);
  const f = Math.ceil((net.t[i]! - START) / 10_000 - 1e-9); // 6 s buckets: the one sample at or after the bucket's start
  expect(net.series[0]!.values[i]).toBe(1000 * f + 500); // eth0 + eth1, not lo
  expect((await get(`/api/charts?hosts=${web},${db}&range=15m`)).body.charts[0].series.length).toBe(2);
});

test("the caller's scope: a host outside it is 404, as one that does not exist; no metrics.view is 403", async () => {
  const scoped = await h.userWith(["hosts.view", "metrics.view"], "chart-scoped", ["group:web"]);
  expect((await get(`/api/hosts/${web}/charts?range=1h`, scoped)).status).toBe(200);
  const out = await get(`/api/hosts/${db}/charts?range=1h`, scoped);
  const missing = await get(`/api/hosts/999999/charts?range=1h`, scoped);
  expect([out.status, missing.status]).toEqual([404, 404]);
  expect(out.body.error.code).toBe(missing.body.error.code);
  const mixed = await get(`/api/charts?host=${web}&host=${db}&range=1h`, scoped);
  expect(mixed.status).toBe(404);
  expect(mixed.body.error.message).toBe(`no such host: ${db}`);
  expect(JSON.stringify(mixed.body)).not.toContain("chart-db-out-7");
  const alone = await get(`/api/charts?host=${web}&range=1h`, scoped);
  expect(alone.status).toBe(200);
  expect(alone.body.charts[0].series.map((s: { host: number }) => s.host)).toEqual([web]);
  // the compare page lists only the hosts in scope, and refuses the one outside it
  const page = await (await h.send(`/charts`, { session: scoped })).text();
  expect(page).toContain("chart-web-1");
  expect(page).not.toContain("chart-db-out-7");
  const refused = await h.send(`/charts?host=${web}&host=${db}`, { session: scoped });
  expect(refused.status).toBe(400);
  const text = await refused.text();
  expect(text).toContain(`No such host: ${db}.`);
  expect(text).not.toContain("chart-db-out-7");
  expect(text).not.toContain('data-src="/api/charts');
  const ok = await (await h.send(`/charts?host=${web}&range=6h`, { session: scoped })).text();
  expect(ok).toContain(`data-src="/api/charts?host=${web}"`);
  expect(ok).toContain('data-range="6h"');
  const noMetrics = await h.userWith(["hosts.view"], "chart-nometrics");
  expect((await get(`/api/hosts/${web}/charts?range=1h`, noMetrics)).status).toBe(403);
  expect((await get(`/api/charts?host=${web}`, noMetrics)).status).toBe(403);
});

test("bad parameters are refused with a 400 that says what is wrong", async () => {
  const cases: Array<[string, RegExp]> = [
    ["range=1h&width=99", /width must be .* from 100 to 4000/],
    ["range=1h&width=4001", /width must be/],
    ["range=1h&width=8e2", /width must be/],
    ["range=2h", /range must be one of 15m, 1h, 6h, 24h, 7d, 30d, 90d/],
    [`from=${NOW - 60_000}`, /from and to must both be/],
    [`from=${NOW}&to=${NOW - 60_000}`, /at least 10 s before to/],
    [`from=${NOW - 5000}&to=${NOW}`, /at least 10 s before to/],
    [`from=${NOW - 100 * 86_400_000}&to=${NOW}`, /at most 92 days apart/],
    [`from=${NOW - 60_000}&to=${NOW}&range=1h`, /either range or from and to/],
    [`from=yesterday&to=${NOW}`, /milliseconds since the epoch/],
  ];
  for (const [q, want] of cases) {
    const r = await get(`/api/hosts/${web}/charts?${q}`);
    expect({ q, status: r.status }).toEqual({ q, status: 400 });
    expect(r.body.error.code).toBe("bad_request");
    expect(r.body.error.message).toMatch(want);
  }
  const many = Array.from({ length: MAX_COMPARE_HOSTS + 1 }, (_, i) => `host=${i + 1}`).join("&");
  for (const [q, want] of [["range=1h", /at least one host/], [many, /at most 12 hosts on one chart; 13/], ["host=abc", /host ids/], ["host=0", /host ids/], [`host=${web}&width=5`, /width must be/]] as const) {
    const r = await get(`/api/charts?${q}`);
    expect({ q, status: r.status }).toEqual({ q, status: 400 });
    expect(r.body.error.message).toMatch(want);
  }
});
