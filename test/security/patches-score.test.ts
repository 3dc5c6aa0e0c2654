/**
 * The score's patches category from the pending updates the agent reports in its inventory
 * (issue #17 item 8), on a real PostgreSQL: 0 / some / many security updates, a host whose agent
 * said it cannot tell (no package manager), a host that never reported, and the breakdown the
 * host page shows.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../support/db.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { findHost, type ScopedHost } from "../../src/store/postgres/queries-console.ts";
import { loadScoreInputs, scoreHost, currentScore } from "../../src/security/score.ts";
import { consoleHarness } from "../support/console-app.ts";

let db: TestDb;
let n = 0;

async function hostWith(updates: unknown): Promise<ScopedHost> {
  const { sql } = db;
  n++;
  const [a] = await sql`insert into agents (hostname, public_key, last_seen) values (${`h-${n}`}, ${Buffer.alloc(32, n)}, now()) returning id`;
  const id = Number(a!.id);
  const data: Record<string, unknown> = { os: { id: "debian" }, ports: [] };
  if (updates !== undefined) data.updates = updates;
  await sql`insert into inventory_current (agent_id, collected_at, hash, data) values (${id}, now(), ${Buffer.alloc(32, n)}, ${sql.json(data as never)})`;
  return (await findHost(sql, HostScope.system("test"), id))!;
}

const ok = (security: number, other: number, names: string[] = []) =>
  ({ status: "ok", source: "apt", security, other, total: security + other, securityPackages: names });

beforeAll(async () => {
  db = await testDatabase();
}, 60_000);
afterAll(async () => {
  await db?.drop();
});

test("no pending security updates: 100, other updates shown but not scored", async () => {
  const s = await scoreHost(db.sql, await hostWith(ok(0, 12)));
  expect(s.categories.patches).toEqual({ score: 100, weight: 15, detail: "0 security and 12 other updates pending (apt)" });
  expect(s.unknown).not.toContain("patches");
});

test("some security updates: 10 points each, the first names listed", async () => {
  const names = ["bind-libs", "curl", "kernel", "libssl3", "openssl", "openssh-server", "sudo"];
  const s = await scoreHost(db.sql, await hostWith(ok(7, 3, names)));
  expect(s.categories.patches.score).toBe(30);
  expect(s.categories.patches.detail).toBe("7 security and 3 other updates pending (apt): bind-libs, curl, kernel, libssl3, openssl, and 2 more");
  const few = await scoreHost(db.sql, await hostWith(ok(2, 0, ["curl", "openssl"])));
  expect(few.categories.patches).toMatchObject({ score: 80, detail: "2 security and 0 other updates pending (apt): curl, openssl" });
});

test("many security updates: 0, never negative", async () => {
  const s = await scoreHost(db.sql, await hostWith(ok(90, 39)));
  expect(s.categories.patches.score).toBe(0);
  expect(s.unknown).not.toContain("patches");
});

test("never reported: unknown (counted as 50); said unknown: unknown with the agent's reason", async () => {
  const never = await scoreHost(db.sql, await hostWith(undefined));
  expect(never.categories.patches).toEqual({ score: null, weight: 15, detail: "the agent has not reported pending updates yet" });
  expect(never.unknown).toContain("patches");
  const cannot = await scoreHost(db.sql, await hostWith({ status: "unknown", reason: "no supported package manager (apt-get, dnf, yum)" }));
  expect(cannot.categories.patches).toEqual({ score: null, weight: 15, detail: "pending updates unknown: no supported package manager (apt-get, dnf, yum)" });
  expect(cannot.unknown).toContain("patches");
});

test("malformed counts from an agent are not reported counts", async () => {
  for (const bad of [{ status: "ok", security: -1, other: 0 }, { status: "ok", security: "3", other: 0 }, { security: 1.5, other: 0 }, "5", [1, 2]]) {
    expect((await loadScoreInputs(db.sql, await hostWith(bad))).updates).toBeNull();
  }
  // the stored breakdown (what the host page renders) is the one just computed
  const h = await hostWith(ok(1, 0, ["sudo"]));
  await scoreHost(db.sql, h);
  expect((await currentScore(db.sql, h)).categories.patches.detail).toBe("1 security and 0 other updates pending (apt): sudo");
});

test("the host page's score breakdown shows the counts", async () => {
  const h = await consoleHarness(db);
  try {
    const host = await hostWith(ok(3, 5, ["curl", "openssl", "sudo"]));
    await scoreHost(db.sql, host);
    const s = await h.userWith(["compliance.view"]);
    const res = await h.send(`/hosts/${host.id}/security`, { session: s, headers: { "hx-request": "true" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<tr data-category="patches"><th>patches</th><td><span class="badge warn">70</span></td><td>15</td><td>3 security and 5 other updates pending (apt): curl, openssl, sudo</td></tr>');
  } finally {
    await h.close();
  }
}, 30_000);
