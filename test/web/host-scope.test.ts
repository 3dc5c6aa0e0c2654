/**
 * Host scope holds on every route (issue #12, finding 1): a user whose role is limited to tag
 * group:web gets, for an untagged host, exactly the answer a nonexistent host gets (404) on
 * every read and every action of the security API and pages, and no command is stored for it;
 * in-scope hosts still work. How roles combine (per permission, union of the roles granting
 * it) and the IP / user agent of the cis.* audit records (finding 6) are checked here too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { consoleHarness, TEST_PASSWORD, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { recordScan } from "../../src/security/posture.ts";
import { createRole, roleIdByName } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { createSession } from "../../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { HostScope } from "../../src/auth/host-scope.ts";

let h: ConsoleHarness;
let web: number;
let other: number;
let scoped: TestSession;
const UA = "scope-test/1";
const SECURITY = ["hosts.view", "compliance.view", "compliance.scan", "compliance.remediate", "compliance.exceptions.edit", "compliance.reports.export",
  "compliance.policies.view", "compliance.policies.edit", "fim.view", "security.events.view", "metrics.view", "logs.view", "inventory.view", "hosts.edit", "agents.revoke", "agents.enroll"];

async function agent(hostname: string, tags: string[], fill: number) {
  const [a] = await h.db.sql`insert into agents (hostname, public_key, tags, last_seen) values (${hostname}, ${Buffer.alloc(32, fill)}, ${tags}, now()) returning id`;
  const id = Number(a!.id);
  await recordScan(h.db.sql, id, new Date(Date.now() - 60_000), { results: [{ id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "yes" }] });
  await h.db.sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at, status, result, snapshot)
    values (${`cmd-${id}`}, ${id}, 'cis.remediate', ${h.db.sql.json({ controls: ["smx.ssh.root-login"], dryRun: false })}, 'user:0 root', now(), 'ok', '{"ok":true}', ${`snap-${id}`})`;
  return id;
}

/** A signed-in user holding these roles (each: permissions + scope tags). */
async function userWithRoles(name: string, roles: Array<{ permissions: string[]; tags: string[] } | string>): Promise<TestSession> {
  const ids: number[] = [];
  for (const [i, r] of roles.entries()) ids.push(typeof r === "string" ? (await roleIdByName(h.db.sql, r))! : await createRole(h.db.sql, `${name}-${i}`, "", r.permissions, r.tags));
  const userId = await createUser(h.db.sql, { username: name, password: TEST_PASSWORD, roleIds: ids }, DEFAULT_SETTINGS.password);
  const { token, session } = await createSession(h.db.sql, userId, "full", "192.0.2.10", "test", DEFAULT_SETTINGS.session);
  await h.db.sql`update console_sessions set reauth_at = now() where id = ${session.id}`;
  return { userId, username: name, token, csrf: session.csrf_token, sessionId: session.id };
}

/** The host's violation id (999999, which does not exist, for a host that does not exist). */
const violation = async (agentId: number) => Number((await h.db.sql`select id from cis_violations where agent_id = ${agentId}`)[0]?.id ?? 999_999);
const commands = async (agentId: number) => Number((await h.db.sql`select count(*)::int as n from security_commands where agent_id = ${agentId}`)[0]!.n);

/** Every read and action of finding 1, for one host. */
async function requests(host: number, hostname: string) {
  const v = await violation(host);
  return [
    ["GET", `/hosts/${host}`], ["GET", `/hosts/${host}/security`], ["GET", `/hosts/${host}/logs`], ["GET", `/hosts/${host}/charts`],
    ["GET", `/api/security/hosts/${host}/fim`], ["GET", `/api/security/hosts/${host}/cis`], ["GET", `/api/security/hosts/${host}/incidents`],
    ["GET", `/api/security/hosts/${host}/score`], ["GET", `/api/security/hosts/${host}/score/trend`],
    ["POST", `/api/security/hosts/${host}/scan`, {}],
    ["POST", `/api/security/hosts/${host}/remediate`, { controls: ["smx.ssh.root-login"], dryRun: false, confirm: `remediate ${hostname}` }],
    ["POST", `/api/security/hosts/${host}/remediate`, { controls: ["smx.ssh.root-login"] }],
    ["POST", `/api/security/hosts/${host}/rollback`, { snapshot: `snap-${host}`, confirm: `rollback ${hostname}` }],
    ["POST", `/api/security/posture/violations/${v}/ack`, { note: "n" }],
    ["POST", `/hosts/${host}/tags`, { tags: "group:web" }],
    ["POST", `/agents/${host}/revoke`, { confirm: hostname }],
  ] as Array<[string, string, Record<string, unknown>?]>;
}

const send = (s: TestSession, [method, path, json]: [string, string, Record<string, unknown>?]) =>
  h.send(path, { method, session: s, json: method === "POST" ? json : undefined, headers: { "user-agent": UA } });

beforeAll(async () => {
  h = await consoleHarness();
  web = await agent("web-1", ["group:web"], 1);
  other = await agent("untagged-2", [], 2);
  scoped = await userWithRoles("scoped-op", [{ permissions: SECURITY, tags: ["group:web"] }]);
}, 30_000);
afterAll(() => h.close());

describe("finding 1: a group:web-scoped user and an untagged host", () => {
  test("every read and action on the untagged host answers like a nonexistent host (404) and stores no command", async () => {
    const before = await commands(other);
    const missing = await requests(999_999, "ghost");
    for (const [i, r] of (await requests(other, "untagged-2")).entries()) {
      const res = await send(scoped, r);
      const gone = await send(scoped, missing[i]!);
      const body = await res.text();
      expect({ req: `${r[0]} ${r[1]}`, status: res.status }).toEqual({ req: `${r[0]} ${r[1]}`, status: 404 });
      expect(gone.status).toBe(404);
      // the same answer as for a host that does not exist (only the id in the message differs)
      const id = (t: string, ids: number[]) => ids.reduce((x, n) => x.replace(new RegExp(`\\b${n}\\b`, "g"), "ID"), t);
      expect(id(body, [other, await violation(other)])).toBe(id(await gone.text(), [999_999]));
      expect(body).not.toContain("untagged-2");
    }
    expect(await commands(other)).toBe(before);
    const [a] = await h.db.sql`select revoked_at, tags from agents where id = ${other}`;
    expect(a).toEqual({ revoked_at: null, tags: [] });
    expect((await h.db.sql`select acknowledged_at from cis_violations where agent_id = ${other}`)[0]!.acknowledged_at).toBeNull();
  });

  test("the same reads and actions on the in-scope host work (none is 403 or 404) and its commands are stored", async () => {
    const before = await commands(web);
    for (const r of await requests(web, "web-1")) {
      if (r[1].includes("/revoke")) continue; // keep the host for the checks below
      const res = await send(scoped, r);
      // (commands answer 502 here: no agent is behind the command channel, but they were issued)
      expect({ req: `${r[0]} ${r[1]}`, ok: res.status !== 403 && res.status !== 404 && (res.status < 500 || res.status === 502) }).toEqual({ req: `${r[0]} ${r[1]}`, ok: true });
    }
    expect(await commands(web)).toBe(before + 4); // scan, remediate, dry run, rollback
  });

  test("fleet-wide reads and the export leave the untagged host out", async () => {
    for (const path of ["/hosts", "/security?state=all", "/enrollment", "/api/security/scores", "/api/security/posture/violations", "/api/security/posture/controls",
      "/api/security/posture/export?format=csv", "/api/security/posture/export?format=json"]) {
      const res = await send(scoped, ["GET", path]);
      const body = await res.text();
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect({ path, leaks: body.includes("untagged-2") }).toEqual({ path, leaks: false });
    }
    const json = (await (await send(scoped, ["GET", "/api/security/posture/controls"])).json()) as any;
    expect(json.controls.find((c: any) => c.control_id === "smx.ssh.root-login")).toMatchObject({ hosts: 1 });
  });

  test("auto-remediation: only for the scope's own groups; '*' and other groups answer 404", async () => {
    for (const hostGroup of ["*", "group:db"]) {
      const res = await send(scoped, ["POST", "/api/security/auto-remediation", { control: "smx.files.passwd", hostGroup, enabled: true, confirm: "auto-remediate smx.files.passwd" }]);
      expect({ hostGroup, status: res.status }).toEqual({ hostGroup, status: 404 });
      expect((await h.send(`/security/auto-remediation/confirm?control=smx.files.passwd&hostGroup=${encodeURIComponent(hostGroup)}&enabled=true`, { session: scoped })).status).toBe(404);
    }
    expect(await h.db.sql`select 1 from cis_auto_remediation`).toHaveLength(0);
    const ok = await send(scoped, ["POST", "/api/security/auto-remediation", { control: "smx.files.passwd", hostGroup: "group:web", enabled: true, confirm: "auto-remediate smx.files.passwd" }]);
    expect(ok.status).toBe(200);
    expect((await h.db.sql`select host_group from cis_auto_remediation`).map((r) => r.host_group)).toEqual(["group:web"]);
  });
});

describe("how roles combine: per permission, the union of the roles that grant it", () => {
  test("an unscoped role that does not grant a permission does not widen another role's scope for it", async () => {
    const s = await userWithRoles("helpdesk-op", [{ permissions: SECURITY, tags: ["group:web"] }, { permissions: ["users.view", "users.edit", "users.unlock"], tags: [] }]);
    expect((await h.send(`/hosts/${other}`, { session: s })).status).toBe(404);
    expect((await h.send(`/api/security/hosts/${other}/fim`, { session: s })).status).toBe(404);
    expect((await h.send(`/hosts/${web}`, { session: s })).status).toBe(200);
  });

  test("an unscoped viewer role plus a scoped operator role: reads everywhere, actions only in the operator's scope", async () => {
    const s = await userWithRoles("viewer-op", ["viewer", { permissions: ["compliance.scan", "compliance.remediate"], tags: ["group:web"] }]);
    expect((await h.send(`/hosts/${other}/security`, { session: s })).status).toBe(200);
    const before = await commands(other);
    expect((await h.send(`/api/security/hosts/${other}/scan`, { session: s, json: {} })).status).toBe(404);
    expect(await commands(other)).toBe(before);
    expect((await h.send(`/api/security/hosts/${web}/scan`, { session: s, json: {} })).status).toBe(200);
    // the host page offers the scan only where it would be allowed
    expect(await (await h.send(`/hosts/${other}/security`, { session: s })).text()).not.toContain("Scan now");
    expect(await (await h.send(`/hosts/${web}/security`, { session: s })).text()).toContain("Scan now");
  });

  test("HostScope.forPermission: union of the granting roles; any unscoped granting role means every host", () => {
    const roles = [{ permissions: ["a"], tags: ["t1"] }, { permissions: ["a", "b"], tags: ["t2"] }, { permissions: ["c"], tags: [] }];
    expect(HostScope.forPermission(roles, "a").tags).toEqual(["t1", "t2"]);
    expect(HostScope.forPermission(roles, "b").tags).toEqual(["t2"]);
    expect(HostScope.forPermission(roles, "c").allHosts).toBe(true);
    expect(HostScope.forPermission(roles, "d").tags).toEqual([]); // no role grants it: no host
    expect(HostScope.forPermission(roles, "a").covers(["t2", "x"])).toBe(true);
    expect(HostScope.forPermission(roles, "b").covers(["t1"])).toBe(false);
    expect(HostScope.forPermission(roles, "b").coversGroup("*")).toBe(false);
    expect(HostScope.forPermission(roles, "c").coversGroup("*")).toBe(true);
  });
});

test("finding 6: cis.* audit records carry the client's IP and user agent", async () => {
  const rows = await h.db.sql`select action, ip, user_agent from audit_log where action like 'cis.%' and actor_name = 'scoped-op' order by id`;
  const actions = new Set(rows.map((r) => r.action));
  for (const a of ["cis.scan", "cis.remediate", "cis.remediate.dry-run", "cis.rollback", "cis.violation.acknowledge", "cis.export", "cis.auto-remediation.set"]) expect(actions).toContain(a);
  for (const r of rows) expect({ action: r.action, ip: r.ip, ua: r.user_agent }).toEqual({ action: r.action, ip: "192.0.2.10", ua: UA });
});
