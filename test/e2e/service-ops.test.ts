/**
 * Service operations end to end: the console's routes (through the one guard) on the real
 * server, signed commands down the compiled agent's own connection to its Control process,
 * Control driving a real systemd (a `systemd --user` instance, test/support/systemd-user.ts),
 * results back in the console, rows in service_operations and `service_operation` audit
 * records. Also: an out-of-scope host answers 404 and sends nothing, an op needs its own
 * permission, stopping "sshd" needs the typed confirmation, and a group run returns one result
 * per host (a second agent, last seen ten minutes ago, fails at once as offline, and nothing is sent to it).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { consoleHarness, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { until, type E2eServer } from "../support/agent-harness.ts";
import { serviceFleetAvailable, startServiceFleet, type ServiceFleet } from "../support/service-fleet.ts";
import type { SystemdUser } from "../support/systemd-user.ts";

setDefaultTimeout(180_000);

const run = serviceFleetAvailable();

let fleet: ServiceFleet;
let server: E2eServer;
let sd: SystemdUser;
let agentId: number;
let idleId: number;
let hostname: string;
let h: ConsoleHarness;
const users: Record<string, TestSession> = {};
const APP = "sm-e2e-app.service";

beforeAll(async () => {
  if (!run) return;
  const unit = (d: string) => `[Unit]\nDescription=${d}\n[Service]\nExecStart=/bin/sleep 600\nExecReload=/bin/true\n[Install]\nWantedBy=default.target\n`;
  // a second host in the same group is enrolled but offline (the fleet's idle agent)
  fleet = await startServiceFleet({ units: { [APP]: unit("ServerMind e2e app"), "sshd.service": unit("stand-in for the SSH daemon") }, started: ["sshd.service"], tag: "group:web" });
  ({ server, sd, agentId, idleId, hostname } = fleet);
  h = await consoleHarness(server.db, { security: { commandKey: server.commandKey, dispatch: server.dispatch } });
  users.op = await h.userWith(["services.view", "services.start", "services.stop", "services.restart", "services.enable"], "svc-op");
  users.viewer = await h.userWith(["services.view"], "svc-viewer");
  users.other = await h.userWith(["services.view", "services.start", "services.stop"], "svc-db-only", ["group:db"]);
});

afterAll(async () => {
  await h?.close();
  await fleet?.stop();
});

const call = (method: "GET" | "POST", path: string, user: string, body?: Record<string, unknown>, o: { htmx?: boolean } = {}) => h.call(method, path, users[user]!, body, o);

const active = async (unit: string) => (await sd.ctl("show", "--property=ActiveState", "--", unit)).out.trim();

describe.if(run)("service operations through the console, the agent and a real systemd", () => {
  test("start from the console: the unit runs, the list and status show it, the page renders it, it is recorded and audited", async () => {
    const started = await until("the agent starts the unit", async () => {
      const r = await call("POST", `/api/hosts/${agentId}/services/start`, "op", { unit: APP });
      return r.json?.ok ? r : null;
    }, 60_000, 1000);
    expect(started.status).toBe(200);
    expect(started.json).toMatchObject({ ok: true, op: "start", unit: APP, host: { id: agentId, hostname }, after: { active: "active", sub: "running" } });
    expect(await active(APP)).toBe("ActiveState=active");

    const list = await call("GET", `/api/hosts/${agentId}/services`, "op");
    expect(list.status).toBe(200);
    expect(list.json.manager).toBe("systemd (user instance)");
    expect(list.json.units.find((u: any) => u.unit === APP)).toMatchObject({ active: "active", sub: "running", description: "ServerMind e2e app" });

    const st = await call("GET", `/api/hosts/${agentId}/services/status?unit=sm-e2e-app`, "op");
    expect(st.json).toMatchObject({ ok: true, status: { unit: APP, active: "active", enabled: "disabled" } });

    const page = await call("GET", `/hosts/${agentId}/services?type=service&q=sm-e2e`, "op");
    expect(page.status).toBe(200);
    expect(page.text).toContain(`data-unit="${APP}"`);
    expect(page.text).toContain("ServerMind e2e app");
    const fragment = await call("GET", `/api/hosts/${agentId}/services/status?unit=${APP}`, "op", undefined, { htmx: true });
    expect(fragment.text).toContain("ServerMind e2e app");

    const ops = await server.db.sql`select op, unit, status, command_id from service_operations where agent_id = ${agentId} and status = 'ok' order by id`;
    expect(ops.map((o) => `${o.op} ${o.unit}`)).toEqual(expect.arrayContaining([`start ${APP}`, "list *", `status ${APP}`]));
    const cmd = await server.db.sql`select action, status from security_commands where id = ${ops.find((o) => o.op === "start")!.command_id}`;
    expect(cmd[0]).toMatchObject({ action: "service.action", status: "ok" });
    const audit = await server.db.sql`select action, success, actor_name, details from audit_log where category = 'service_operation' and action = 'service.start' and success`;
    expect(audit.length).toBeGreaterThan(0);
    expect(audit.at(-1)).toMatchObject({ actor_name: "svc-op", details: { host: hostname, unit: APP, op: "start", result: "ok" } });
  });

  test("enable, restart and stop round trip; a failed op comes back as a failure", async () => {
    const en = await call("POST", `/api/hosts/${agentId}/services/enable`, "op", { unit: APP });
    expect(en.json).toMatchObject({ ok: true, after: { enabled: "enabled" } });
    expect((await sd.ctl("is-enabled", "--", APP)).out.trim()).toBe("enabled");
    expect((await call("POST", `/api/hosts/${agentId}/services/restart`, "op", { unit: APP })).json.ok).toBe(true);
    const stop = await call("POST", `/api/hosts/${agentId}/services/stop`, "op", { unit: APP });
    expect(stop.json).toMatchObject({ ok: true, after: { active: "inactive" } });
    expect(await active(APP)).toBe("ActiveState=inactive");
    const missing = await call("POST", `/api/hosts/${agentId}/services/start`, "op", { unit: "sm-e2e-nothing.service" });
    expect(missing.status).toBe(200);
    expect(missing.json.ok).toBe(false);
    expect(missing.json.output).toMatch(/not found/i);
    const bad = await call("POST", `/api/hosts/${agentId}/services/start`, "op", { unit: "--root=/" });
    expect(bad.status).toBe(400);
  });

  test("an out-of-scope host is 404 and nothing is sent; an op needs its own permission", async () => {
    const before = (await server.db.sql`select count(*)::int as n from security_commands`)[0]!.n;
    expect((await call("GET", `/api/hosts/${agentId}/services`, "other")).status).toBe(404);
    expect((await call("POST", `/api/hosts/${agentId}/services/start`, "other", { unit: APP })).status).toBe(404);
    expect((await call("GET", `/hosts/${agentId}/services`, "other")).status).toBe(404);
    const viewer = await call("POST", `/api/hosts/${agentId}/services/start`, "viewer", { unit: APP });
    expect(viewer.status).toBe(403);
    expect(viewer.json.error.code).toBe("forbidden");
    expect((await server.db.sql`select count(*)::int as n from security_commands`)[0]!.n).toBe(before);
    expect(await active(APP)).toBe("ActiveState=inactive");
  });

  test("stopping sshd needs the typed phrase and re-authentication; then it runs and is audited as confirmed", async () => {
    await server.db.sql`update console_sessions set reauth_at = null where id = ${users.op!.sessionId}`;
    const refused = await call("POST", `/api/hosts/${agentId}/services/stop`, "op", { unit: "sshd" });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe("confirmation_required");
    expect(refused.json.error.message).toContain(`stop sshd.service on ${hostname}`);
    expect(await active("sshd.service")).toBe("ActiveState=active");
    const noReauth = await call("POST", `/api/hosts/${agentId}/services/stop`, "op", { unit: "sshd", confirm: `stop sshd.service on ${hostname}` });
    expect(noReauth.status).toBe(403);
    expect(noReauth.json.error.message).toMatch(/confirm your identity/);
    expect(await active("sshd.service")).toBe("ActiveState=active");
    const done = await call("POST", `/api/hosts/${agentId}/services/stop`, "op", { unit: "sshd", confirm: `stop sshd.service on ${hostname}`, reauth: "Correct-Horse-9-Battery" });
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ ok: true, unit: "sshd.service", after: { active: "inactive" } });
    expect(await active("sshd.service")).toBe("ActiveState=inactive");
    const [a] = await server.db.sql`select details from audit_log where category = 'service_operation' and action = 'service.stop' and details->>'unit' = 'sshd.service' order by id desc limit 1`;
    expect(a!.details).toMatchObject({ host: hostname, unit: "sshd.service", op: "stop", result: "ok", dangerous: true, confirmed: true, reauth: "password" });
    // restarting it is not dangerous
    expect((await call("POST", `/api/hosts/${agentId}/services/restart`, "op", { unit: "sshd" })).json.ok).toBe(true);
  });

  test("a group run needs confirmation and answers one row per host: the running agent done, the offline one failed without a command", async () => {
    const body = { group: "group:web", unit: APP };
    const refused = await call("POST", "/api/services/run/start", "op", body);
    expect(refused.status).toBe(403);
    expect(refused.json.error.message).toContain(`start ${APP} on group:web`);
    await h.reauth(users.op!);
    const t0 = performance.now();
    const r = await call("POST", "/api/services/run/start", "op", { ...body, confirm: `start ${APP} on group:web` });
    const ms = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ group: "group:web", unit: APP, op: "start", hosts: 2, ok: 1, failed: 1 });
    const byHost = Object.fromEntries(r.json.results.map((x: any) => [x.host.id, x]));
    expect(byHost[agentId]).toMatchObject({ ok: true, after: { active: "active" } });
    expect(byHost[idleId]).toMatchObject({ ok: false, error: expect.stringMatching(/offline.*nothing was sent/) });
    expect(ms).toBeLessThan(20_000);
    expect(await active(APP)).toBe("ActiveState=active");
    console.log(`group run over 2 hosts (one offline): ${ms.toFixed(0)} ms`);
    const rows = await server.db.sql`select agent_id, status, command_id from service_operations where run_id = ${r.json.run} order by agent_id`;
    expect(rows.map((x) => [Number(x.agent_id), x.status, x.command_id !== null])).toEqual([[agentId, "ok", true], [idleId, "failed", false]].sort((a, b) => (a[0] as number) - (b[0] as number)));
    // the group page offers the tag; an htmx run answers the per-host table fragment
    const page = await call("GET", "/services", "op");
    expect(page.text).toContain('<option value="group:web">group:web (2)</option>');
    // htmx: the per-host table comes at once and polls /api/services/runs/:run until every host is done
    const fragment = await call("POST", "/api/services/run/restart", "op", { ...body, confirm: `restart ${APP} on group:web` }, { htmx: true });
    expect(fragment.status).toBe(200);
    expect(fragment.text).toContain(`data-host="${agentId}"`);
    const runId = /data-run="([0-9a-f-]+)"/.exec(fragment.text)![1]!;
    const filled = await until("the group table filled in", async () => {
      const f = await call("GET", `/api/services/runs/${runId}?group=group:web`, "op", undefined, { htmx: true });
      return f.text.includes('data-finished="true"') ? f : null;
    }, 30_000, 200);
    expect(filled.text).toContain("1 of 2 hosts done, 1 failed");
    // the out-of-scope principal's group is empty: nothing to run
    const none = await call("POST", "/api/services/run/start", "other", { group: "group:web", unit: APP });
    expect(none.status).toBe(400);
  });
});
