/**
 * The license against the real server (TLS, PostgreSQL): an expired or over-seat license refuses
 * enrollments beyond its seats with license_seats_exhausted, and never an ingest frame; the
 * community limit applies without a license; state changes and refusals are audited.
 */
import { afterAll, beforeAll, setDefaultTimeout, describe, expect, test } from "bun:test";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { rawPublicKey, signLicense } from "../../src/license/format.ts";
import { createLicenseService, type LicenseService } from "../../src/license/service.ts";
import { COMMUNITY_SEATS } from "../../src/license/state.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { enroll, logsFrame, metricsFrame, newKeys, post } from "../support/sim-agent.ts";

setDefaultTimeout(120_000);

const vendor = generateKeyPairSync("ed25519");
const licenseEnv = { SERVERMIND_LICENSE_PUBLIC_KEY: rawPublicKey(vendor.publicKey) };
const cert = createSelfSigned(["127.0.0.1", "localhost"]);

interface Setup { db: TestDb; dir: string; server: RunningServer; license: LicenseService; logs: string[]; close(): Promise<void> }

async function setup(): Promise<Setup> {
  const db = await testDatabase(4);
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(db.sql, t);
  const dir = mkdtempSync(join(tmpdir(), "servermind-license-"));
  const logs: string[] = [];
  const license = createLicenseService({ sql: db.sql, dataDir: dir, env: licenseEnv, log: (l) => logs.push(l) });
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dir });
  const server = startServer({
    config, sql: db.sql, seats: license.seats,
    cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
  });
  return { db, dir, server, license, logs, async close() { await server.stop(); await db.drop(); rmSync(dir, { recursive: true, force: true }); } };
}

async function tryEnroll(url: string, db: TestDb, hostname: string, token?: string) {
  token ??= (await createActivationToken(db.sql, { createdBy: "test" })).token;
  const r = await fetch(`${url}/api/v1/enroll`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, publicKey: newKeys().publicKeyB64, hostname }), tls: { rejectUnauthorized: false },
  } as RequestInit);
  return { status: r.status, body: (await r.json()) as { agentId?: number; error?: { code: string; message: string } } };
}

const blocks = async (db: TestDb, agentId: number) => (await db.sql`select count(*)::int as n from metric_blocks where agent_id = ${agentId}`)[0]!.n as number;

describe("an expired license with 2 seats", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup();
    writeFileSync(join(s.dir, "license.txt"), signLicense({
      v: 1, id: "lic-expired", licensee: "Test Ltd", seats: 2, issuedAt: "2025-01-01T00:00:00Z", expiresAt: new Date(Date.now() - 86_400_000).toISOString(), features: [],
    }, vendor.privateKey));
  });
  afterAll(() => s.close());

  test("warns, refuses the third enrollment, and keeps taking every frame of the enrolled agents", async () => {
    const st = await s.license.refresh();
    expect(st.state).toBe("expired");
    expect(st.warnings.join(" ")).toContain("expired on");
    expect(s.logs.join("\n")).toContain("LICENSE: The license lic-expired for Test Ltd expired");
    // enrollments up to the seats still work: nothing stops when a license expires
    const a = await enroll(s.server.url, (await createActivationToken(s.db.sql, { createdBy: "t" })).token, "web-1");
    const b = await enroll(s.server.url, (await createActivationToken(s.db.sql, { createdBy: "t" })).token, "web-2");
    const third = await tryEnroll(s.server.url, s.db, "web-3");
    expect(third.status).toBe(403);
    expect(third.body.error!.code).toBe("license_seats_exhausted");
    expect(third.body.error!.message).toContain("2 agents are enrolled and the license lic-expired covers 2 agents");
    expect((await s.db.sql`select count(*)::int as n from agents`)[0]!.n).toBe(2);
    // ingest of the enrolled agents continues: every frame acknowledged ok and stored
    const frames = 5;
    for (let i = 0; i < frames; i++) {
      for (const agent of [a, b]) {
        const r = await post(s.server.url, [metricsFrame(agent, 10, 3, Date.now()), logsFrame(agent, 5, Date.now())]);
        expect(r.status).toBe(200);
        expect(r.body.acks!.map((x) => x.status)).toEqual(["ok", "ok"]);
      }
    }
    expect(await blocks(s.db, a.id)).toBeGreaterThanOrEqual(frames);
    expect(await blocks(s.db, b.id)).toBeGreaterThanOrEqual(frames);
    const logRows = (await s.db.sql`select count(*)::int as n from logs where agent_id in ${s.db.sql([a.id, b.id])}`)[0]!.n;
    expect(logRows).toBe(2 * frames * 5);
    // audited: the state (once), and the refusal
    const recs = await s.db.sql`select action, category, success, details from audit_log where action like 'license.%' order by id`;
    expect(recs.filter((r) => r.action === "license.state").map((r) => r.details.state)).toEqual(["expired"]);
    const refusal = recs.find((r) => r.action === "license.enrollment_refused")!;
    expect(refusal).toMatchObject({ category: "security_event", success: false, details: { agents: 2, seats: 2, state: "expired" } });
    const enrollRec = await s.db.sql`select success, details from audit_log where action = 'agents.enroll' order by id`;
    expect(enrollRec.map((r) => r.details.error ?? "ok")).toEqual(["ok", "ok", "license_seats_exhausted"]);
  }, 60_000);
});

describe("no license: community mode", () => {
  let s: Setup;
  beforeAll(async () => (s = await setup()));
  afterAll(() => s.close());

  test(`${COMMUNITY_SEATS} agents enroll, the next is refused; a tampered license changes nothing`, async () => {
    // 24 agents as the database holds them, the 25th through the real enrollment
    for (let i = 0; i < COMMUNITY_SEATS - 1; i++) {
      await s.db.sql`insert into agents (hostname, public_key) values (${`h-${i}`}, ${randomBytes(32)})`;
    }
    const last = await tryEnroll(s.server.url, s.db, "h-last");
    expect(last.status).toBe(200);
    const over = await tryEnroll(s.server.url, s.db, "h-over");
    expect(over.status).toBe(403);
    expect(over.body.error).toMatchObject({ code: "license_seats_exhausted" });
    expect(over.body.error!.message).toContain(`community mode allows ${COMMUNITY_SEATS} agents`);
    // a license whose seats were edited after signing is not honoured
    const text = signLicense({ v: 1, id: "lic-t", licensee: "T", seats: 30, issuedAt: "2026-01-01T00:00:00Z", expiresAt: "2099-01-01T00:00:00Z", features: [] }, vendor.privateKey);
    const [h, , sig] = text.trimEnd().split("\n");
    const forged = Buffer.from(JSON.stringify({ v: 1, id: "lic-t", licensee: "T", seats: 3000, issuedAt: "2026-01-01T00:00:00Z", expiresAt: "2099-01-01T00:00:00Z", features: [] })).toString("base64url");
    writeFileSync(join(s.dir, "license.txt"), `${h}\n${forged}\n${sig}\n`);
    const st = await s.license.refresh();
    expect(st.mode).toBe("community");
    expect(st.fileProblem).toContain("does not verify against the vendor key");
    expect((await tryEnroll(s.server.url, s.db, "h-forged")).status).toBe(403);
    // the genuine one (30 seats) lets enrollment go on
    writeFileSync(join(s.dir, "license.txt"), text);
    expect((await tryEnroll(s.server.url, s.db, "h-licensed")).status).toBe(200);
    // each change of state audited once: community, the unusable file, the valid license
    const states = (await s.db.sql`select details from audit_log where action = 'license.state' order by id`).map((r) => [r.details.state, r.details.problem ? "problem" : ""]);
    expect(states).toEqual([["community", ""], ["community", "problem"], ["valid", ""]]);
  }, 60_000);
});

describe("the seat check at the boundary", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup();
    writeFileSync(join(s.dir, "license.txt"), signLicense({ v: 1, id: "lic-3", licensee: "B", seats: 3, issuedAt: "2026-01-01T00:00:00Z", expiresAt: "2099-01-01T00:00:00Z", features: [] }, vendor.privateKey));
  });
  afterAll(() => s.close());

  test("concurrent enrollments take exactly the free seats; a refused token stays usable; a bad token learns nothing of seats", async () => {
    await tryEnroll(s.server.url, s.db, "first");
    const tokens = await Promise.all(Array.from({ length: 6 }, async () => (await createActivationToken(s.db.sql, { createdBy: "t" })).token));
    const results = await Promise.all(tokens.map((t, i) => tryEnroll(s.server.url, s.db, `race-${i}`, t)));
    expect(results.map((r) => r.status).sort(), JSON.stringify(results)).toEqual([200, 200, 403, 403, 403, 403]);
    expect(results.filter((r) => r.status === 403 && r.body.error!.code === "license_seats_exhausted")).toHaveLength(4);
    expect((await s.db.sql`select count(*)::int as n from agents where revoked_at is null`)[0]!.n).toBe(3);
    // without a valid token the answer is about the token, whatever the seats
    const bad = await tryEnroll(s.server.url, s.db, "nobody", "smt_" + "x".repeat(43));
    expect([bad.status, bad.body.error!.code]).toEqual([401, "bad_token"]);
    // a refusal does not use up the token: after a seat is freed, the same token enrolls
    const refusedToken = tokens[results.findIndex((r) => r.status === 403)]!;
    await s.db.sql`update agents set revoked_at = now() where hostname = 'first'`;
    expect((await tryEnroll(s.server.url, s.db, "again", refusedToken)).status).toBe(200);
  }, 60_000);
});

test("the composition root (src/main.ts) wires the license: its start line, and the seat limit at enrollment", async () => {
  const { startServerProcess } = await import("../support/server-process.ts");
  const dir = mkdtempSync(join(tmpdir(), "servermind-license-main-"));
  const file = join(dir, "one-seat.license");
  writeFileSync(file, signLicense({ v: 1, id: "lic-main", licensee: "Main Ltd", seats: 1, issuedAt: "2026-01-01T00:00:00Z", expiresAt: "2099-01-01T00:00:00Z", features: [] }, vendor.privateKey));
  const srv = await startServerProcess({ ...licenseEnv, SERVERMIND_LICENSE_FILE: file });
  try {
    expect(srv.output()).toContain("LICENSE: SERVERMIND_LICENSE_PUBLIC_KEY is set");
    expect(srv.output()).toContain("license: Main Ltd (lic-main), 1 seats, expires 2099-01-01");
    expect((await tryEnroll(srv.url, srv.db, "only")).status).toBe(200);
    const second = await tryEnroll(srv.url, srv.db, "second");
    expect([second.status, second.body.error?.code]).toEqual([403, "license_seats_exhausted"]);
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
