/**
 * Every console route declares its access; this walks all of them and proves that a user
 * holding every permission except the route's own is refused, and that signed-out requests
 * to non-public routes are sent to the login page.
 */
import { test, expect, afterAll } from "bun:test";
import { consoleHarness } from "../support/console-app.ts";
import { consoleRoutes } from "../../src/web/plugin.ts";
import { PERMISSIONS, isPermission } from "../../src/auth/permissions.ts";
import { consolePlugin } from "../../src/web/plugin.ts";

const h = await consoleHarness();
afterAll(() => h.close());
const routes = consoleRoutes(h.services);

function concrete(path: string): string {
  return path.replace(/:[a-z]+/g, "1");
}

test("every route declares public, signed-in or a catalog permission, and the plugin mounts exactly the table", () => {
  for (const r of routes) expect(r.access === "public" || r.access === "signed-in" || isPermission(r.access)).toBe(true);
  const mounted = consolePlugin({ ...h.services }, h.services).routes.map((r) => `${r.method} ${r.path}`).sort();
  const declared = [...routes.map((r) => `${r.method} ${r.path}`), "GET /assets/:file"].sort();
  expect(mounted).toEqual(declared);
  expect(routes.filter((r) => isPermission(r.access)).length).toBeGreaterThanOrEqual(25);
});

test("a user lacking the route's permission is refused on every permission route", async () => {
  // one agent and one custom role so :id routes resolve to something real
  await h.db.sql`insert into agents (hostname, public_key) values ('h1', ${Buffer.alloc(32, 1)})`;
  const checked: string[] = [];
  for (const r of routes) {
    if (r.access === "public" || r.access === "signed-in") continue;
    const others = PERMISSIONS.map((p) => p.id).filter((p) => p !== r.access);
    const s = await h.userWith(others);
    const res = await h.send(concrete(r.path), { method: r.method, session: s, form: r.method === "POST" ? { confirm: "x" } : undefined });
    const body = await res.text();
    expect({ route: `${r.method} ${r.path}`, status: res.status }).toEqual({ route: `${r.method} ${r.path}`, status: 403 });
    expect(body).toContain(r.access);
    checked.push(`${r.method} ${r.path}`);
  }
  // the refusals are audited as security events
  const [{ n }] = await h.db.sql`select count(*)::int as n from audit_log where action = 'access.denied' and not success`;
  expect(n).toBe(checked.length);
}, 90_000); // a user and a request per route: about 3 s on an idle machine, 15 s under load, and it grows with the route table

test("holding just the permission is enough to pass the permission check (GET routes)", async () => {
  for (const r of routes) {
    if (r.method !== "GET" || !isPermission(r.access)) continue;
    const s = await h.userWith([r.access]);
    const res = await h.send(concrete(r.path), { session: s });
    expect({ route: r.path, refused: res.status === 403 }).toEqual({ route: r.path, refused: false });
  }
}, 30_000); // a user and a request per GET route

test("signed-out requests to every non-public route go to the login page", async () => {
  for (const r of routes) {
    if (r.access === "public") continue;
    const res = await h.send(concrete(r.path), { method: r.method, form: r.method === "POST" ? {} : undefined });
    expect({ route: r.path, status: res.status, location: res.headers.get("location")?.split("?")[0] })
      .toEqual({ route: r.path, status: 303, location: "/login" });
  }
});

test("startConsole forwards audit records to the configured syslog receiver", async () => {
  const { createSocket } = await import("node:dgram");
  const { startConsole } = await import("../../src/web/plugin.ts");
  const { audit } = await import("../../src/audit/audit.ts");
  const sock = createSocket("udp4");
  await new Promise<void>((ok) => sock.bind(0, "127.0.0.1", ok));
  await h.services.settings.set("audit", { retentionDays: 365, syslogHost: "127.0.0.1", syslogPort: sock.address().port });
  const started = await startConsole({ ...h.services }, () => {});
  const got = new Promise<string>((ok) => sock.on("message", (m) => { if (m.toString().includes("syslog.probe")) ok(m.toString()); }));
  await audit(h.db.sql, { actor: { type: "ai", name: "assistant", onBehalfOf: "alice" }, category: "ai_operation", action: "syslog.probe", success: true });
  const msg = await got;
  started.stop();
  sock.close();
  expect(msg).toContain('action="syslog.probe"');
  expect(msg).toContain('actor="assistant"');
  await h.services.settings.set("audit", { retentionDays: 365, syslogHost: "", syslogPort: 514 });
});

test("no route answers 500 to garbage ids, query strings or form values (as an admin)", async () => {
  const admin = await h.userWithRole("admin");
  await h.db.sql`update console_sessions set reauth_at = now() where id = ${admin.sessionId}`;
  const garbageIds = ["abc", "-1", "0", "1e400", "99999999999999999999", "%00", "1.5", "'%20or%201=1--"];
  const garbageForm = {
    username: "\u0000<x>", password: "x".repeat(300), password2: "y", code: "'; drop table x;--", label: "l".repeat(500), hours: "1e9",
    name: "<svg/onload=1>", permissions: ["hosts.view", "bogus"], scope_tags: "!!! ???", roles: ["abc", "-1"], confirm: "nope",
    min_length: "-5", mfa_enforce: "sometimes", retention_days: "NaN", syslog_host: "a b", syslog_port: "70000", current: "", q: "%",
  };
  for (const r of routes) {
    if (r.path === "/logout") continue; // would end the admin's session for the rest of the loop
    for (const id of garbageIds) {
      const path = r.path.replace(/:[a-z]+/g, id) + "?q=%25&sort=;drop&dir=sideways&range=999y&severity=9&before=x&from=never&status=maybe";
      const res = await h.send(path, { method: r.method, session: admin, form: r.method === "POST" ? garbageForm : undefined });
      expect({ route: `${r.method} ${path}`, status: res.status < 500 }).toEqual({ route: `${r.method} ${path}`, status: true });
    }
  }
}, 30_000); // 8 garbage ids per route: about 6 s here, and it grows with the route table

test("the audit page shows who acted for whom (an AI assistant acting for a user)", async () => {
  const { audit } = await import("../../src/audit/audit.ts");
  await audit(h.db.sql, { actor: { type: "ai", name: "assistant", onBehalfOf: "alice" }, category: "ai_operation", action: "ai.restart_service", target: "nginx on web-1", success: true });
  const admin = await h.userWithRole("admin");
  const page = await (await h.send("/audit?user=alice", { session: admin })).text();
  expect(page).toMatch(/assistant <span class="muted">for alice<\/span> <span class="badge">ai<\/span>/);
  expect(page).toContain("ai.restart_service");
});
