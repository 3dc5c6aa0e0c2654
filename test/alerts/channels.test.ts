/**
 * The channels against real receivers: email over SMTP with STARTTLS to Debian's aiosmtpd
 * (self-signed certificate, require_starttls, AUTH), refused by a server without STARTTLS;
 * the webhook with its HMAC-SHA256 signature, Slack-compatible and PagerDuty Events v2 bodies
 * checked as exact JSON by Bun HTTP receivers on 127.0.0.1; retries with backoff, every
 * attempt recorded; secrets sealed at rest; and the whole path evaluator -> queue -> dispatch.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase, type TestDb } from "../support/db.ts";
import { stopChild } from "../support/process.ts";
import { requireComponent } from "../support/ci.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { freePort } from "../../src/store/postgres/embedded.ts";
import { createSecretBox } from "../../src/auth/secret-box.ts";
import { createChannel, sendThrough, getChannel, type Channel } from "../../src/alerts/channels.ts";
import { buildPayload, type NotificationPayload } from "../../src/alerts/payload.ts";
import { dispatchDue } from "../../src/alerts/dispatch.ts";
import { Evaluator } from "../../src/alerts/evaluator.ts";
import type { Rule } from "../../src/alerts/rules.ts";
import { addHost, addRule, disableStarterRules, rule } from "./support.ts";

const box = createSecretBox(randomBytes(32));
const T = Date.UTC(2026, 11, 5, 12, 0, 0);

/** A fixed notification: two hosts offline, one resolved. */
function samplePayload(status: "firing" | "resolved" = "firing"): NotificationPayload {
  const r: Rule = {
    id: 7, name: "Host offline", kind: "host_offline", enabled: true, severity: "critical", scopeTags: [], labels: { team: "ops" },
    params: { offline_seconds: 180 }, forSeconds: 0, channelIds: [], groupBy: [], groupWaitSeconds: 30, groupIntervalSeconds: 300,
    repeatIntervalSeconds: 14400, builtin: true,
  };
  const a = (host: string, st: "firing" | "resolved") => ({
    fingerprint: `7:${host}`, status: st, agentId: 1, subject: host, value: 240, summary: `${host} not seen for 240 s`,
    startedAt: T, firedAt: T, resolvedAt: st === "resolved" ? T + 60_000 : null, acknowledged: false,
    labels: { team: "ops", alertname: "Host offline", severity: "critical", host },
  });
  const alerts = status === "firing" ? [a("web-1", "firing"), a("web-2", "firing"), a("db-1", "resolved")] : [a("db-1", "resolved")];
  return buildPayload({ groupKey: "7", rule: r, labels: {}, status, alerts });
}

interface Received {
  path: string;
  headers: Headers;
  body: string;
}

/** A local HTTP receiver: answers with the statuses given, in order (then 200). */
function receiver(statuses: number[] = []) {
  const got: Received[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      got.push({ path: new URL(req.url).pathname, headers: req.headers, body: await req.text() });
      const status = statuses.shift() ?? 200;
      return new Response(status === 200 ? "ok" : "try later", { status });
    },
  });
  return { got, url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

const channel = (kind: Channel["kind"], config: Channel["config"]): Channel => ({ id: 1, name: kind, kind, config, hasSecret: true, enabled: true });

test("webhook: the notification document as JSON, signed with HMAC-SHA256 over '<t>.<body>'", async () => {
  const r = receiver();
  try {
    const p = samplePayload();
    const now = T + 5000;
    const res = await sendThrough(channel("webhook", { url: `${r.url}/hook` }), "hook-key", p, now);
    expect(res).toEqual({ ok: true, status: 200 });
    expect(r.got.length).toBe(1);
    const { body, headers, path } = r.got[0]!;
    expect(path).toBe("/hook");
    expect(headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(body)).toEqual({
      version: 1, group_key: "7", status: "firing",
      rule: { id: 7, name: "Host offline", kind: "host_offline", severity: "critical" },
      group_labels: {}, title: "[FIRING:2] Host offline (1 resolved)", counts: { firing: 2, resolved: 1 },
      alerts: ["web-1", "web-2", "db-1"].map((h) => ({
        status: h === "db-1" ? "resolved" : "firing", fingerprint: `7:${h}`, subject: h, summary: `${h} not seen for 240 s`, value: 240,
        labels: { team: "ops", alertname: "Host offline", severity: "critical", host: h },
        started_at: "2026-12-05T12:00:00.000Z", fired_at: "2026-12-05T12:00:00.000Z",
        resolved_at: h === "db-1" ? "2026-12-05T12:01:00.000Z" : null, acknowledged: false,
      })),
    });
    const t = Math.floor(now / 1000);
    const expected = createHmac("sha256", "hook-key").update(`${t}.${body}`).digest("hex");
    expect(headers.get("x-servermind-signature")).toBe(`t=${t},v1=${expected}`);
  } finally {
    r.stop();
  }
});

test("Slack-compatible and PagerDuty Events v2 bodies, exact JSON", async () => {
  const r = receiver();
  try {
    await sendThrough(channel("slack", {}), `${r.url}/services/T000/B000/XXX`, samplePayload());
    await sendThrough(channel("pagerduty", { url: `${r.url}/v2/enqueue` }), "R0UTINGKEY", samplePayload());
    await sendThrough(channel("pagerduty", { url: `${r.url}/v2/enqueue` }), "R0UTINGKEY", samplePayload("resolved"));
    expect(r.got.map((g) => g.path)).toEqual(["/services/T000/B000/XXX", "/v2/enqueue", "/v2/enqueue"]);
    expect(JSON.parse(r.got[0]!.body)).toEqual({
      text: "[FIRING:2] Host offline (1 resolved)",
      attachments: [{
        color: "#d00000",
        title: "[FIRING:2] Host offline (1 resolved)",
        text: "FIRING: web-1 not seen for 240 s\nFIRING: web-2 not seen for 240 s\nRESOLVED: db-1 not seen for 240 s",
        footer: "ServerMind · critical",
      }],
    });
    expect(JSON.parse(r.got[1]!.body)).toEqual({
      routing_key: "R0UTINGKEY",
      event_action: "trigger",
      dedup_key: "7",
      payload: {
        summary: "[FIRING:2] Host offline (1 resolved)",
        source: "servermind",
        severity: "critical",
        timestamp: "2026-12-05T12:00:00.000Z",
        group: "Host offline",
        class: "host_offline",
        custom_details: { firing: 2, resolved: 1, alerts: ["FIRING: web-1 not seen for 240 s", "FIRING: web-2 not seen for 240 s", "RESOLVED: db-1 not seen for 240 s"] },
      },
    });
    expect(JSON.parse(r.got[2]!.body)).toEqual({ routing_key: "R0UTINGKEY", event_action: "resolve", dedup_key: "7" });
  } finally {
    r.stop();
  }
});

// ---- email: a real SMTP server ----

const PY = "/usr/bin/python3";
const hasAiosmtpd = existsSync(PY) && Bun.spawnSync([PY, "-c", "import aiosmtpd"]).exitCode === 0;
let dir: string;
let cert: ReturnType<typeof createSelfSigned>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "servermind-smtp-"));
  cert = createSelfSigned(["127.0.0.1", "localhost"], "smtp.test");
  writeFileSync(join(dir, "cert.pem"), cert.certPem);
  writeFileSync(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function smtpServer(plain = false): Promise<{ port: number; proc: ChildProcess; messages(): any[] }> {
  const port = await freePort();
  const proc = spawn(PY, [join(import.meta.dir, "fixtures/smtp_server.py"), String(port), join(dir, "cert.pem"), join(dir, "key.pem"), "alerts", "s3cret-pass", ...(plain ? ["plain"] : [])], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (err += d));
  const end = Date.now() + 10_000;
  while (!out.includes("ready") && Date.now() < end && proc.exitCode === null) await Bun.sleep(50);
  if (!out.includes("ready")) throw new Error(`aiosmtpd did not start: ${err}`);
  return { port, proc, messages: () => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)) };
}

test("email: SMTP with STARTTLS (TLS really negotiated, certificate verified against the configured CA), AUTH, the message delivered", async () => {
  if (!requireComponent(hasAiosmtpd, "python3-aiosmtpd (/usr/bin/python3 -m aiosmtpd)")) return;
  const s = await smtpServer();
  try {
    const ch = channel("email", { host: "127.0.0.1", port: s.port, from: "alerts@servermind.test", to: ["ops@example.test", "oncall@example.test"], username: "alerts", tls_ca: cert.certPem });
    const res = await sendThrough(ch, "s3cret-pass", samplePayload());
    expect(res).toEqual({ ok: true, status: 250 });
    // the server printed the message before its 250; the pipe may deliver it a moment later
    for (let i = 0; i < 100 && s.messages().length === 0; i++) await Bun.sleep(20);
    const [m] = s.messages();
    expect(m.from).toBe("alerts@servermind.test");
    expect(m.to).toEqual(["ops@example.test", "oncall@example.test"]);
    expect(m.tls).toBe(true);
    expect(m.tls_version).toMatch(/^TLSv1\.[23]$/);
    expect(m.user).toBe("alerts");
    expect(m.data).toContain("Subject: [FIRING:2] Host offline (1 resolved) [critical]");
    expect(m.data).toContain("FIRING: web-1 not seen for 240 s");
    expect(m.data).toContain("RESOLVED: db-1 not seen for 240 s");

    // a certificate the configured CA did not sign is refused: nothing is sent
    const other = createSelfSigned(["127.0.0.1"], "someone-else");
    const bad = await sendThrough({ ...ch, config: { ...ch.config, tls_ca: other.certPem } }, "s3cret-pass", samplePayload());
    expect(bad.ok).toBe(false);
    await Bun.sleep(200);
    expect(s.messages().length).toBe(1);
  } finally {
    await stopChild(s.proc);
  }
}, 30_000);

test("email: a server that offers no STARTTLS gets nothing (the password is never sent in the clear)", async () => {
  if (!requireComponent(hasAiosmtpd, "python3-aiosmtpd (/usr/bin/python3 -m aiosmtpd)")) return;
  const s = await smtpServer(true);
  try {
    const res = await sendThrough(channel("email", { host: "127.0.0.1", port: s.port, from: "a@b.test", to: ["c@d.test"], username: "alerts" }), "s3cret-pass", samplePayload());
    expect(res.ok).toBe(false);
    expect(res.error).toMatch(/STARTTLS/i);
    expect(s.messages()).toEqual([]);
  } finally {
    await stopChild(s.proc);
  }
}, 30_000);

// ---- dispatch: queue, retries, records ----

let db: TestDb;
beforeEach(async () => {
  db = await testDatabase(4);
  await disableStarterRules(db.sql);
});
afterEach(async () => {
  await db?.drop();
});

test("channel secrets are sealed at rest and open only with the key", async () => {
  const id = await createChannel(db.sql, box, { name: "pd", kind: "pagerduty", config: {}, secret: "R0UTINGKEY-plain", enabled: true }, "test");
  const [row] = await db.sql`select secret, config::text as config from notification_channels where id = ${id}`;
  expect(row!.secret.startsWith("v1.")).toBe(true);
  expect(row!.secret).not.toContain("R0UTINGKEY");
  expect(box.open(row!.secret)).toBe("R0UTINGKEY-plain");
  expect(() => createSecretBox(randomBytes(32)).open(row!.secret)).toThrow();
  expect((await getChannel(db.sql, id))!.hasSecret).toBe(true);
});

test("evaluator -> queue -> dispatch: one signed webhook for an outage of 20 hosts; failures retried with backoff, every attempt recorded", async () => {
  const r = receiver([500, 503]);
  try {
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) await addHost(db.sql, `h${String(i).padStart(2, "0")}`, [], t0 - 600_000);
    const hook = await createChannel(db.sql, box, { name: "hook", kind: "webhook", config: { url: `${r.url}/in` }, secret: "k", enabled: true }, "test");
    await createChannel(db.sql, box, { name: "off", kind: "webhook", config: { url: `${r.url}/off` }, secret: "k", enabled: false }, "test");
    await addRule(db.sql, rule({ name: "Offline", kind: "host_offline", params: { offline_seconds: 60 } }));
    const ev = new Evaluator(db.sql);
    await ev.load();
    await ev.cycle(t0);
    const policy = { baseMs: 200, maxMs: 1000, maxAttempts: 5 };
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      await dispatchDue(db.sql, box, policy);
      const [n] = await db.sql`select status from alert_notifications`;
      if (n!.status !== "pending") break;
      await Bun.sleep(50);
    }
    const [n] = await db.sql`select id, status, attempts, channel_id, last_error, sent_at is not null as sent from alert_notifications`;
    expect(n).toMatchObject({ status: "sent", attempts: 3, last_error: null, sent: true });
    expect(Number(n!.channel_id)).toBe(hook);
    const attempts = await db.sql`select attempt, ok, status_code, error, at from alert_delivery_attempts where notification_id = ${n!.id} order by attempt`;
    expect(attempts.map((a) => [a.attempt, a.ok, a.status_code])).toEqual([[1, false, 500], [2, false, 503], [3, true, 200]]);
    expect(attempts[0]!.error).toContain("HTTP 500");
    // backoff: the second retry waited about twice the first
    const gap1 = attempts[1]!.at.getTime() - attempts[0]!.at.getTime();
    const gap2 = attempts[2]!.at.getTime() - attempts[1]!.at.getTime();
    expect(gap1).toBeGreaterThanOrEqual(190);
    expect(gap2).toBeGreaterThanOrEqual(390);
    expect(r.got.length).toBe(3);
    expect(r.got.every((g) => g.path === "/in")).toBe(true);
    const body = JSON.parse(r.got[2]!.body);
    expect(body.counts).toEqual({ firing: 20, resolved: 0 });
    const sig = r.got[2]!.headers.get("x-servermind-signature")!;
    const t = sig.match(/^t=(\d+),/)![1];
    expect(sig).toBe(`t=${t},v1=${createHmac("sha256", "k").update(`${t}.${r.got[2]!.body}`).digest("hex")}`);
  } finally {
    r.stop();
  }
});

test("a channel that keeps failing: the notification is marked failed after the last attempt, with its error", async () => {
  const port = await freePort(); // nothing listens there
  const ch = await createChannel(db.sql, box, { name: "dead", kind: "webhook", config: { url: `http://127.0.0.1:${port}/x` }, secret: "k", enabled: true }, "test");
  await db.sql`insert into alert_notifications (group_key, channel_id, payload) values ('g', ${ch}, ${db.sql.json(samplePayload() as any)})`;
  const policy = { baseMs: 50, maxMs: 100, maxAttempts: 3 };
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    await dispatchDue(db.sql, box, policy);
    if ((await db.sql`select status from alert_notifications`)[0]!.status !== "pending") break;
    await Bun.sleep(30);
  }
  const [n] = await db.sql`select status, attempts, last_error from alert_notifications`;
  expect(n!.status).toBe("failed");
  expect(n!.attempts).toBe(3);
  expect(n!.last_error.length).toBeGreaterThan(3);
  expect((await db.sql`select count(*)::int as c from alert_delivery_attempts where not ok`)[0]!.c).toBe(3);
});

test("two dispatchers at once (an old and a new leader) send a due notification once", async () => {
  let hits = 0;
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, async fetch() {
    hits++;
    await Bun.sleep(300);
    return new Response("ok");
  } });
  try {
    const ch = await createChannel(db.sql, box, { name: "slow", kind: "webhook", config: { url: `http://127.0.0.1:${server.port}/` }, secret: "k", enabled: true }, "test");
    await db.sql`insert into alert_notifications (group_key, channel_id, payload) values ('g', ${ch}, ${db.sql.json(samplePayload() as any)})`;
    const [a, b] = await Promise.all([dispatchDue(db.sql, box), dispatchDue(db.sql, box)]);
    expect(a + b).toBe(1);
    expect(hits).toBe(1);
    expect((await db.sql`select status, attempts from alert_notifications`)[0]).toEqual({ status: "sent", attempts: 1 });
  } finally {
    server.stop(true);
  }
});
