/**
 * One evaluator per cluster. Two server nodes (test/support/cluster.ts) each start the alerts
 * service: exactly one holds the advisory lock and evaluates; a clean stop hands over; a
 * terminated session is replaced without two leaders. And a node that dies: an alerts node
 * in a process of its own is the leader, is killed with SIGKILL, and a server node takes over
 * and goes on from the stored state.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { stopChild } from "../support/process.ts";
import { startAlerts, type AlertsService } from "../../src/alerts/service.ts";
import { EVALUATOR_LOCK } from "../../src/alerts/leader.ts";
import { createSecretBox } from "../../src/auth/secret-box.ts";
import { addHost, addRule, disableStarterRules, rule } from "./support.ts";

let cluster: TestCluster;
const services: AlertsService[] = [];
const box = createSecretBox(randomBytes(32));

beforeAll(async () => {
  cluster = await startTestCluster(2);
  await disableStarterRules(cluster.db.sql);
  await addRule(cluster.db.sql, rule({ name: "Offline", kind: "host_offline", params: { offline_seconds: 60 } }));
}, 60_000);

afterAll(async () => {
  for (const s of services) await s.stop();
  await cluster?.close();
}, 60_000);

async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v) return v;
    await Bun.sleep(50);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

const firing = async (agentId: number) => (await cluster.db.sql`select state from alert_instances where agent_id = ${agentId}`)[0]?.state === "firing";
const lockHolders = async () => cluster.db.sql`select pid from pg_locks where locktype = 'advisory' and granted and objid = ${EVALUATOR_LOCK}
  and database = (select oid from pg_database where datname = current_database())`;

function startOn(i: number, cycles: number[]): AlertsService {
  const node = cluster.nodes[i]!;
  return startAlerts({
    sql: node.sql, lockUrl: cluster.db.url, box, local: node.server.ingest.deps.state, intervalMs: 200, pollMs: 200, dispatchMs: 60_000,
    log: () => {}, onCycle: () => cycles[i]!++,
  });
}

test("two server nodes elect one evaluator; a terminated session never leaves two leaders; a clean stop hands over", async () => {
  const sql = cluster.db.sql;
  const h1 = await addHost(sql, "down-1", [], Date.now() - 600_000);
  const cycles = [0, 0];
  services.push(startOn(0, cycles), startOn(1, cycles));
  const first = (await until("a leader", () => services.findIndex((s) => s.leader) + 1)) - 1;
  const other = 1 - first;
  await Bun.sleep(600); // several polls: the other node stays a follower
  expect(services.map((s) => s.leader)).toEqual(first === 0 ? [true, false] : [false, true]);
  await until("a cycle on the leader", () => cycles[first]! > 0);
  expect(cycles[other]).toBe(0);
  expect(await services[other]!.cycleNow()).toBeUndefined(); // a follower does not evaluate
  await until("the alert fires", () => firing(h1));

  // the leader's session is terminated: it steps down; one of the two holds the lock again
  const holders = await lockHolders();
  expect(holders.length).toBe(1);
  await sql`select pg_terminate_backend(${holders[0]!.pid})`;
  await until("a leader again, on a new session", async () => {
    const h = await lockHolders();
    return h.length === 1 && h[0]!.pid !== holders[0]!.pid && services.some((s) => s.leader);
  });
  for (let i = 0; i < 10; i++) {
    expect(services.filter((s) => s.leader).length).toBeLessThanOrEqual(1);
    await Bun.sleep(50);
  }
  const h2 = await addHost(sql, "down-2", [], Date.now() - 600_000);
  await until("the next alert fires", () => firing(h2));
  expect((await sql`select count(*)::int as n from alert_instances where agent_id = ${h1}`)[0]!.n).toBe(1); // continued, not reopened

  // a clean stop releases the lock: the other node takes over at its next poll
  const leader = services.findIndex((s) => s.leader);
  await services[leader]!.stop();
  await until("handover after a clean stop", () => services[1 - leader]!.leader);
  services.splice(leader, 1);
}, 60_000);

test("a node that dies (SIGKILL) while leading: a server node takes over and continues from the stored alerts", async () => {
  const sql = cluster.db.sql;
  for (const s of services.splice(0)) await s.stop(); // the server nodes start as followers below
  const proc = spawn(process.execPath, [join(import.meta.dir, "fixtures/alerts-node.ts")], { env: { ...process.env, DATABASE_URL: cluster.db.url }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  try {
    await until("the process leads", () => out.includes("cycle"), 20_000);
    const cycles = [0, 0];
    services.push(startOn(0, cycles), startOn(1, cycles));
    const h3 = await addHost(sql, "down-3", [], Date.now() - 600_000);
    await until("the process's alert fires", () => firing(h3));
    await Bun.sleep(600);
    expect(services.map((s) => s.leader)).toEqual([false, false]);

    proc.kill("SIGKILL");
    const t = Date.now();
    const winner = (await until("a server node takes over", () => services.findIndex((s) => s.leader) + 1)) - 1;
    console.log(`takeover ${Date.now() - t} ms after SIGKILL (poll 200 ms)`);
    const h4 = await addHost(sql, "down-4", [], Date.now() - 600_000);
    await until("the new leader's alert fires", () => firing(h4));
    expect(cycles[winner]).toBeGreaterThan(0);
    expect((await sql`select count(*)::int as n from alert_instances where agent_id = ${h3}`)[0]!.n).toBe(1);
    expect(services.filter((s) => s.leader).length).toBe(1);
  } finally {
    await stopChild(proc);
  }
}, 60_000);
