/**
 * Fleet inventory search and the host page's package list over a real PostgreSQL: the rows
 * migration 505's trigger keeps beside each inventory document, the version constraints as each
 * host's package manager orders them, the caller's host scope in every query (a scoped user never
 * learns that an out-of-scope host has a package), and bad input answered with a specific 400.
 */
import { afterAll, expect, test } from "bun:test";
import { HostScope } from "../../src/auth/host-scope.ts";
import { searchInventory } from "../../src/inventory/queries.ts";
import { parseInventoryQuery, type InventoryQuery } from "../../src/inventory/query-parse.ts";
import { escapeHtml } from "../../src/web/render.ts";
import { consoleHarness } from "../support/console-app.ts";

const h = await consoleHarness();
afterAll(() => h.close());
const { sql } = h.db;
const ALL = HostScope.system("test");
const WEB = HostScope.forPermission([{ permissions: ["inventory.view"], tags: ["group:web"] }], "inventory.view");

let fill = 1;
async function host(hostname: string, tags: string[], inv: Record<string, unknown> | null, revoked = false): Promise<number> {
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen, revoked_at) values (${hostname}, ${Buffer.alloc(32, fill++)}, ${tags}, now(), ${revoked ? new Date() : null}) returning id`;
  const id = Number(a!.id);
  if (inv) await sql`insert into inventory_current (agent_id, collected_at, hash, data) values (${id}, now(), ${Buffer.from(hostname)}, ${sql.json(inv as never)})`;
  return id;
}

const pkgs = (...list: Array<[string, string]>) => list.map(([name, version]) => ({ name, version, arch: "amd64" }));
const debian = { id: "debian", name: "Debian GNU/Linux", version: "12", prettyName: "Debian GNU/Linux 12 (bookworm)" };
const rocky = { id: "rocky", name: "Rocky Linux", version: "9.3", prettyName: "Rocky Linux 9.3 (Blue Onyx)" };

const web1 = await host("web-1", ["group:web"], {
  os: debian,
  packages: [...pkgs(["nginx", "1.22.1-9"], ["openssl", "3.0.11-1~deb12u2"], ["libssl3", "3.0.11-1~deb12u2"]), ...Array.from({ length: 600 }, (_, i) => ({ name: `lib-filler-${String(i).padStart(3, "0")}`, version: "1.0", arch: "all" }))],
  ports: [{ proto: "tcp", address: "0.0.0.0", port: 443, uid: 0 }, { proto: "udp", address: "0.0.0.0", port: 53, uid: 0 }, { proto: "tcp6", address: "::", port: 22, uid: 0 }],
  users: [{ name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash" }, { name: "postgres", uid: 105, gid: 111, home: "/var/lib/postgresql", shell: "/bin/bash" }],
  updates: { status: "ok", source: "apt", security: 2, other: 4, total: 6, securityPackages: ["openssl", "libssl3"] },
});
const web2 = await host("web-2", ["group:web"], {
  os: rocky,
  packages: pkgs(["nginx", "1.20.1-14.el9"], ["openssl", "3.0.7-27.el9"]),
  ports: [{ proto: "tcp", address: "0.0.0.0", port: 80, uid: 0 }],
  users: [{ name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash" }],
  updates: { status: "ok", source: "dnf", security: 0, other: 1, total: 1, securityPackages: [] },
});
const db1 = await host("db-secret-1", ["group:db"], {
  os: debian,
  packages: pkgs(["nginx", "1.24.0-1"], ["openssl", "3.0.9-1"], ["postgresql-16", "16.4-1"]),
  ports: [{ proto: "tcp", address: "127.0.0.1", port: 5432, uid: 105 }, { proto: "tcp", address: "0.0.0.0", port: 443, uid: 0 }],
  users: [{ name: "postgres", uid: 105, gid: 111, home: "/var/lib/postgresql", shell: "/bin/bash" }],
  updates: { status: "ok", source: "apt", security: 5, other: 0, total: 5, securityPackages: ["openssl", "postgresql-16", "curl", "libcurl4", "tzdata"] },
});
await host("old-revoked", ["group:web"], { os: debian, packages: pkgs(["nginx", "1.99-1"]), updates: { status: "ok", source: "apt", security: 9, other: 0, total: 9, securityPackages: [] } }, true);
await host("never-reported", ["group:web"], null);

function q(kind: string, text: string): InventoryQuery {
  const p = parseInventoryQuery(kind, text);
  if (!p.ok) throw new Error(p.problem);
  return p.query;
}
const names = async (scope: HostScope, kind: string, text: string) => (await searchInventory(sql, scope, q(kind, text))).hosts.map((x) => x.hostname);

test("packages with version constraints, each host compared as its package manager orders versions", async () => {
  expect(await names(ALL, "package", "nginx")).toEqual(["db-secret-1", "web-1", "web-2"]);
  expect(await names(ALL, "package", "nginx >= 1.22")).toEqual(["db-secret-1", "web-1"]);
  expect(await names(ALL, "package", "nginx < 1.22")).toEqual(["web-2"]);
  // dpkg: 3.0.11-1~deb12u2 is newer than 3.0.11; rpm: 3.0.7-27.el9 is older (the release is not compared)
  expect(await names(ALL, "package", "openssl < 3.0.11")).toEqual(["db-secret-1", "web-2"]);
  expect(await names(ALL, "package", "openssl = 3.0.7")).toEqual(["web-2"]);
  expect(await names(ALL, "package", "openssl != 3.0.9-1")).toEqual(["web-1", "web-2"]);
  expect(await names(ALL, "package", "openssl == 3.0.11-1~deb12u2")).toEqual(["web-1"]);
  expect(await names(ALL, "package", "postgresql-*")).toEqual(["db-secret-1"]);
  expect(await names(ALL, "package", "lib_filler-001")).toEqual([]); // _ is literal, not LIKE's any-character
  const r = await searchInventory(sql, ALL, q("package", "nginx >= 1.22"));
  expect(r.hosts.find((x) => x.hostname === "web-1")).toMatchObject({ id: web1, os: "Debian GNU/Linux 12 (bookworm)", items: ["nginx 1.22.1-9 (amd64)"], format: "dpkg" });
  expect(r.hostsWithInventory).toBe(3); // revoked and never-reported hosts are not counted
  expect((await searchInventory(sql, ALL, q("package", "openssl"))).hosts.find((x) => x.id === web2)!.format).toBe("rpm");
}, 30_000);

test("ports, users and pending security updates", async () => {
  expect(await names(ALL, "port", "443")).toEqual(["db-secret-1", "web-1"]);
  expect(await names(ALL, "port", "443/udp")).toEqual([]);
  expect(await names(ALL, "port", "53/udp")).toEqual(["web-1"]);
  expect(await names(ALL, "port", "22/tcp")).toEqual(["web-1"]); // tcp6 counts as tcp
  expect(await names(ALL, "port", "127.0.0.1:5432")).toEqual(["db-secret-1"]);
  expect(await names(ALL, "port", "0.0.0.0:5432")).toEqual([]);
  expect((await searchInventory(sql, ALL, q("port", "[::]:22"))).hosts[0]!.items).toEqual(["tcp6 [::]:22"]);
  expect(await names(ALL, "user", "postgres")).toEqual(["db-secret-1", "web-1"]);
  expect(await names(ALL, "user", "nobody")).toEqual([]);
  const up = await searchInventory(sql, ALL, q("updates", ""));
  expect(up.hosts.map((x) => x.hostname)).toEqual(["db-secret-1", "web-1"]); // most first; web-2 has none
  expect(up.items).toBe(7);
  expect(up.hosts[1]!.items).toEqual(["2 security + 4 other: openssl, libssl3"]);
  expect(await names(ALL, "updates", "curl")).toEqual(["db-secret-1"]);
}, 30_000);

test("the scope is part of every query: a scoped user sees only its hosts, and counts only them", async () => {
  expect(await names(WEB, "package", "nginx")).toEqual(["web-1", "web-2"]);
  expect(await names(WEB, "package", "postgresql-16")).toEqual([]);
  expect(await names(WEB, "port", "127.0.0.1:5432")).toEqual([]);
  expect(await names(WEB, "user", "postgres")).toEqual(["web-1"]);
  const up = await searchInventory(sql, WEB, q("updates", ""));
  expect(up.hosts.map((x) => x.hostname)).toEqual(["web-1"]);
  expect(up.items).toBe(2);
  expect(up.hostsWithInventory).toBe(2);
  expect(await names(HostScope.none(), "package", "nginx")).toEqual([]);
}, 30_000);

test("the index follows the document: a changed inventory replaces the rows, a malformed one is stored without breaking ingest", async () => {
  const id = await host("churn-1", ["lab"], { os: debian, packages: pkgs(["redis", "7.0.15-1"]) });
  expect(await names(ALL, "package", "redis")).toEqual(["churn-1"]);
  await sql`update inventory_current set data = ${sql.json({ os: debian, packages: pkgs(["valkey", "8.0.1-1"]) } as never)}, hash = ${Buffer.from("v2")} where agent_id = ${id}`;
  expect(await names(ALL, "package", "redis")).toEqual([]);
  expect(await names(ALL, "package", "valkey")).toEqual(["churn-1"]);
  // an upgrade of one package (and a duplicate entry): the index says exactly what the document says
  await sql`update inventory_current set data = ${sql.json({ os: debian, packages: pkgs(["valkey", "8.0.2-1"], ["valkey", "8.0.2-1"], ["jq", "1.6-2"]) } as never)}, hash = ${Buffer.from("v3")} where agent_id = ${id}`;
  expect(await names(ALL, "package", "valkey = 8.0.2-1")).toEqual(["churn-1"]);
  expect(await names(ALL, "package", "valkey = 8.0.1-1")).toEqual([]);
  expect((await sql`select name, version from inventory_packages where agent_id = ${id} order by name`).map((r) => `${r.name} ${r.version}`)).toEqual(["jq 1.6-2", "valkey 8.0.2-1"]);
  // garbage from an agent: wrong types everywhere; the insert succeeds and the good rows are kept
  const bad = await host("garbage-1", ["lab"], {
    os: "not an object", packages: [1, "x", null, { name: 7 }, { name: "ok-pkg", version: 3 }], ports: [{ port: "80" }, { port: 70000 }, { proto: "tcp", port: 8080 }], users: { name: "x" },
    updates: { security: "many", securityPackages: "nope" },
  });
  expect(await names(ALL, "package", "ok-pkg")).toEqual(["garbage-1"]);
  expect(await names(ALL, "port", "8080")).toEqual(["garbage-1"]);
  const [row] = await sql`select package_count, security_updates from inventory_hosts where agent_id = ${bad}`;
  expect(row).toEqual({ package_count: 5, security_updates: null });
}, 30_000);

test("the page: results with links to host pages and CSV; a scoped user never sees an out-of-scope host", async () => {
  const admin = await h.userWithRole("viewer");
  const page = await (await h.send(`/inventory?kind=package&q=${encodeURIComponent("nginx >= 1.22")}`, { session: admin })).text();
  expect(page).toContain(`<a href="/hosts/${web1}">web-1</a>`);
  expect(page).toContain(`<a href="/hosts/${db1}">db-secret-1</a>`);
  expect(page).not.toContain("web-2");
  expect(page).toContain("nginx 1.24.0-1 (amd64)");
  // of the unrevoked hosts with an inventory (3, or 5 after the test above added two)
  const [{ n }] = await sql`select count(*)::int as n from inventory_hosts h join agents a on a.id = h.agent_id where a.revoked_at is null`;
  expect(page).toContain(`<span class="n" id="inventory-count">2</span> of ${n} hosts`);
  expect(page).toContain('href="/inventory"'); // the nav item

  // a broad glob: 20 matches listed per host, the rest counted, all of them in the CSV
  const glob = await (await h.send("/inventory?kind=package&q=lib-filler-*", { session: admin })).text();
  expect(glob).toContain("<div>lib-filler-019 1.0 (all)</div><div class=\"muted\">and 580 more (in the CSV)</div>");
  expect(glob).not.toContain("lib-filler-020");
  expect(glob).toContain('<span class="n">600</span> matching packages');
  expect((await (await h.send("/inventory?kind=package&q=lib-filler-*&format=csv", { session: admin })).text()).split("\r\n").length).toBe(602);

  const partial = await (await h.send("/inventory?kind=user&q=postgres", { session: admin, headers: { "hx-request": "true", "hx-target": "inventory-results" } })).text();
  expect(partial.startsWith('<div id="inventory-results">')).toBe(true);

  const csv = await h.send(`/inventory?kind=package&q=${encodeURIComponent("openssl < 3.0.11")}&format=csv`, { session: admin });
  expect(csv.headers.get("content-type")).toStartWith("text/csv");
  expect(await csv.text()).toBe(`host_id,hostname,os,match\r\n${db1},db-secret-1,Debian GNU/Linux 12 (bookworm),openssl 3.0.9-1 (amd64)\r\n${web2},web-2,Rocky Linux 9.3 (Blue Onyx),openssl 3.0.7-27.el9 (amd64)\r\n`);

  const scoped = await h.userWith(["hosts.view", "inventory.view"], undefined, ["group:web"]);
  for (const [kind, text] of [["package", "nginx"], ["package", "postgresql-16"], ["port", "5432"], ["user", "postgres"], ["updates", ""], ["updates", "curl"]]) {
    for (const fmt of ["", "&format=csv"]) {
      const res = await h.send(`/inventory?kind=${kind}&q=${encodeURIComponent(text!)}${fmt}`, { session: scoped });
      const body = await res.text();
      expect({ kind, text, fmt, status: res.status }).toEqual({ kind, text, fmt, status: 200 });
      expect({ kind, text, leak: body.includes("db-secret-1") || body.includes("1.24.0-1") || body.includes(`/hosts/${db1}`) }).toEqual({ kind, text, leak: false });
    }
  }
  const mine = await (await h.send("/inventory?kind=package&q=postgresql-16", { session: scoped })).text();
  expect(mine).toMatch(/<span class="n" id="inventory-count">0<\/span> of 2 hosts/);
  expect(mine).toContain("No host matches.");

  // without inventory.view: refused, whatever else the role holds
  const noInv = await h.userWith(["hosts.view"]);
  expect((await h.send("/inventory?kind=package&q=nginx", { session: noInv })).status).toBe(403);
  expect((await h.send(`/hosts/${web1}/packages?q=ssl`, { session: noInv })).status).toBe(403);
}, 30_000);

test("bad input answers 400 with what is wrong, never 500", async () => {
  const s = await h.userWithRole("viewer");
  const cases: Array<[string, string]> = [
    ["kind=package&q=" + encodeURIComponent("nginx => 1.22"), 'Unknown operator "=>"'],
    ["kind=package&q=" + encodeURIComponent("nginx ~= 1.22"), 'Unknown operator "~="'],
    ["kind=package&q=" + encodeURIComponent("nginx >="), "needs a version"],
    ["kind=package&q=" + encodeURIComponent("nginx >= 1 .22"), "is not a version"],
    ["kind=package&q=" + "a".repeat(250), "at most 200"],
    ["kind=package&q=" + "a".repeat(150), "at most 128"],
    ["kind=package&q=ngi%00nx", "NUL character"],
    ["kind=package&q=" + encodeURIComponent("ng'inx"), "is not a package name"],
    ["kind=package&q=", "Enter a package name"],
    ["kind=port&q=99999", "out of range"],
    ["kind=port&q=443/sctp", 'Unknown protocol "sctp"'],
    ["kind=port&q=https", "is not a port query"],
    ["kind=user&q=" + encodeURIComponent("a b"), "is not a user name"],
    ["kind=bogus&q=x", 'Unknown search kind "bogus"'],
  ];
  for (const [qs, want] of cases) {
    for (const htmx of [false, true]) {
      const res = await h.send(`/inventory?${qs}`, { session: s, headers: htmx ? { "hx-request": "true", "hx-target": "inventory-results" } : {} });
      const body = await res.text();
      expect({ qs, htmx, status: res.status, says: body.includes(escapeHtml(want)) }).toEqual({ qs, htmx, status: 400, says: true });
    }
  }
  const csv = await h.send(`/inventory?kind=package&q=${encodeURIComponent("nginx => 1")}&format=csv`, { session: s });
  expect(csv.status).toBe(400);
  expect(await csv.text()).toContain('Unknown operator "=>"');
  expect((await h.send(`/hosts/${web1}/packages?q=${"a".repeat(200)}`, { session: s })).status).toBe(400);
  expect(await (await h.send(`/hosts/${web1}/packages?q=ss%00l`, { session: s })).text()).toContain("NUL character");
}, 30_000);

test("the host page's package list: searched on the server, with a showing-N-of-M line and no silent cut", async () => {
  const s = await h.userWithRole("viewer");
  const page = await (await h.send(`/hosts/${web1}`, { session: s })).text();
  expect(page).toContain('id="host-packages-search"');
  expect(page).toContain("Showing 500 of 603 installed packages. Search by name to see the others.");
  expect(page).not.toContain("Filter these 603 rows"); // not the generic table filtered in the browser
  expect(page).toContain("Ports (3)"); // the rest of the inventory as before

  const part = await (await h.send(`/hosts/${web1}/packages?q=SSL`, { session: s })).text();
  expect(part.startsWith('<div id="host-packages-table">')).toBe(true);
  expect(part).toContain("Showing 2 of 2 packages matching “SSL” (603 installed).");
  expect(part).toContain("<td>libssl3</td><td>3.0.11-1~deb12u2</td>");
  expect(part).toContain("<td>openssl</td>");
  expect(part).not.toContain("nginx");
  const pct = await (await h.send(`/hosts/${web1}/packages?q=${encodeURIComponent("%")}`, { session: s })).text();
  expect(pct).toContain("Showing 0 of 0"); // % is literal

  const scoped = await h.userWith(["hosts.view", "inventory.view"], undefined, ["group:web"]);
  expect((await h.send(`/hosts/${db1}/packages?q=post`, { session: scoped })).status).toBe(404);
  expect((await h.send(`/hosts/${web2}/packages`, { session: scoped })).status).toBe(200);
}, 30_000);

test("API: GET /api/inventory with a token scoped to group:web never names another host; malformed queries are a 400 with the problem", async () => {
  const { createApiToken } = await import("../../src/auth/api-tokens.ts");
  const owner = await h.userWith(["inventory.view"]);
  const mk = async (scopeTags: string[], permissions = ["inventory.view"]) =>
    (await createApiToken(sql, owner.userId, { name: `t${scopeTags.join()}${permissions.join()}`, permissions, scopeTags, expiresInDays: 1, aiClient: false, clientName: "" })).token;
  const all = await mk([]);
  const web = await mk(["group:web"]);
  const api = async (qs: Record<string, string>, token: string) => {
    const res = await h.send(`/api/inventory?${new URLSearchParams(qs)}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, type: res.headers.get("content-type"), body: (await res.json()) as any };
  };
  const r = await api({ kind: "package", q: "nginx >= 1.22" }, all);
  expect(r.status).toBe(200);
  expect(r.type).toStartWith("application/json");
  expect(r.body.hosts).toEqual([
    { id: db1, hostname: "db-secret-1", os: "Debian GNU/Linux 12 (bookworm)", package_format: "dpkg", matches: ["nginx 1.24.0-1 (amd64)"] },
    { id: web1, hostname: "web-1", os: "Debian GNU/Linux 12 (bookworm)", package_format: "dpkg", matches: ["nginx 1.22.1-9 (amd64)"] },
  ]);
  expect(r.body).toMatchObject({ kind: "package", query: { kind: "package", name: "nginx", glob: false, op: ">=", version: "1.22" }, items: 2, truncated: false });
  expect((await api({ q: "nginx" }, all)).body.hosts.map((x: any) => x.hostname)).toEqual(["db-secret-1", "web-1", "web-2"]); // kind defaults to package
  expect((await api({ kind: "port", q: "443" }, all)).body.hosts.map((x: any) => x.hostname)).toEqual(["db-secret-1", "web-1"]);

  // the scoped token: web hosts only, whatever the question; counts are of its hosts only
  for (const [kind, q] of [["package", "nginx"], ["package", "postgresql-*"], ["port", "5432"], ["port", "443"], ["user", "postgres"], ["updates", ""], ["updates", "curl"]] as const) {
    const s = await api({ kind, q }, web);
    expect({ kind, q, status: s.status }).toEqual({ kind, q, status: 200 });
    const text = JSON.stringify(s.body);
    expect({ kind, q, leak: text.includes("db-secret-1") || text.includes("1.24.0-1") || s.body.hosts.some((x: any) => x.id === db1) }).toEqual({ kind, q, leak: false });
  }
  const up = await api({ kind: "updates" }, web);
  expect(up.body.hosts.map((x: any) => x.hostname)).toEqual(["web-1"]);
  expect(up.body.items).toBe(2);
  expect((await api({ kind: "package", q: "nginx" }, web)).body.hosts.map((x: any) => x.hostname)).toEqual(["web-1", "web-2"]);

  // malformed: 400, JSON, the parser's sentence
  const cases: Array<[Record<string, string>, string]> = [
    [{ kind: "package", q: "nginx => 1.22" }, 'Unknown operator "=>"'],
    [{ kind: "package", q: "nginx >=" }, "needs a version"],
    [{ kind: "package", q: "" }, "Enter a package name"],
    [{ kind: "package", q: "a".repeat(250) }, "at most 200"],
    [{ kind: "port", q: "99999" }, "out of range"],
    [{ kind: "port", q: "https" }, "is not a port query"],
    [{ kind: "user", q: "a b" }, "is not a user name"],
    [{ kind: "bogus", q: "x" }, 'Unknown search kind "bogus"'],
  ];
  for (const [qs, want] of cases) {
    const b = await api(qs, all);
    expect({ qs, status: b.status, code: b.body.error?.code, says: String(b.body.error?.message).includes(want) }).toEqual({ qs, status: 400, code: "bad_request", says: true });
  }
  const nul = await h.send("/api/inventory?kind=package&q=ngi%00nx", { headers: { authorization: `Bearer ${all}` } });
  expect(nul.status).toBe(400);
  expect(((await nul.json()) as any).error.message).toContain("NUL character");

  // a token without inventory.view: refused
  const other = await h.userWith(["hosts.view", "inventory.view"]);
  const hostsOnly = (await createApiToken(sql, other.userId, { name: "hosts-only", permissions: ["hosts.view"], scopeTags: [], expiresInDays: 1, aiClient: false, clientName: "" })).token;
  expect((await h.send("/api/inventory?q=nginx", { headers: { authorization: `Bearer ${hostsOnly}` } })).status).toBe(403);
}, 30_000);

test("a broad glob for the page: the first matches of each host with their count, the same totals as the full answer", async () => {
  const full = await searchInventory(sql, ALL, q("package", "lib-filler-*"));
  const page = await searchInventory(sql, ALL, q("package", "lib-filler-*"), { itemsPerHost: 20 });
  expect(full.hosts.map((x) => [x.hostname, x.items.length, x.count])).toEqual([["web-1", 600, 600]]);
  expect(page.hosts.map((x) => [x.hostname, x.items.length, x.count])).toEqual([["web-1", 20, 600]]);
  expect(page.hosts[0]!.items).toEqual(full.hosts[0]!.items.slice(0, 20));
  expect(page.items).toBe(600);
  expect(full.items).toBe(600);
  // with a version constraint every match is compared in the server: counts still agree
  const constrained = await searchInventory(sql, ALL, q("package", "lib-filler-* >= 1.0"), { itemsPerHost: 20 });
  expect(constrained.hosts[0]!.count).toBe(600);
}, 30_000);
