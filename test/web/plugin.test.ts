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
});

test("holding just the permission is enough to pass the permission check (GET routes)", async () => {
  for (const r of routes) {
    if (r.method !== "GET" || !isPermission(r.access)) continue;
    const s = await h.userWith([r.access]);
    const res = await h.send(concrete(r.path), { session: s });
    expect({ route: r.path, refused: res.status === 403 }).toEqual({ route: r.path, refused: false });
  }
});

test("signed-out requests to every non-public route go to the login page", async () => {
  for (const r of routes) {
    if (r.access === "public") continue;
    const res = await h.send(concrete(r.path), { method: r.method, form: r.method === "POST" ? {} : undefined });
    expect({ route: r.path, status: res.status, location: res.headers.get("location")?.split("?")[0] })
      .toEqual({ route: r.path, status: 303, location: "/login" });
  }
});
