import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import { requireComponent } from "../../../support/ci.ts";
import { BASE, slapdAvailable, startSlapd, USERS, type TestSlapd } from "../../../support/slapd.ts";
import { LdapDirectory } from "../../../../src/auth/sso/ldap/directory.ts";
import type { LdapSettings } from "../../../../src/auth/sso/ldap/settings.ts";
import { escapeFilterValue } from "../../../../src/auth/sso/ldap/filter.ts";

const available = requireComponent(slapdAvailable(), "OpenLDAP slapd (apt: slapd ldap-utils)");
let slapd: TestSlapd;
let base: LdapSettings;
const dirs: LdapDirectory[] = [];
function directory(over: Partial<LdapSettings> = {}, pool = {}) {
  const d = new LdapDirectory("corp-ldap", { ...base, ...over }, pool);
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  if (!available) return;
  slapd = await startSlapd();
  base = {
    url: slapd.ldapsUrl, caPem: slapd.caPem, bindDn: slapd.serviceDn, bindPassword: slapd.servicePassword,
    userBase: `ou=people,${BASE}`, userFilter: "(&(objectClass=inetOrgPerson)(uid={username}))",
    groupBase: `ou=groups,${BASE}`, groupFilter: "(objectClass=groupOfNames)", nested: "recursive",
  };
}, 20_000);
afterAll(async () => {
  for (const d of dirs) await d.close();
  await slapd?.stop();
}, 30_000);

describe.skipIf(!available)("LDAP against OpenLDAP", () => {
  test("LDAPS: bind, search, nested groups resolved transitively", async () => {
    const ident = await directory().authenticate("alice", USERS.alice);
    expect(ident).toMatchObject({ provider: "corp-ldap", subject: `uid=alice,ou=people,${BASE}`, username: "alice", email: "alice@example.test", displayName: "Alice Admin" });
    expect(ident.groups.sort()).toEqual(["everyone", "ops", "platform"]);
  });

  test("StartTLS on the plain port works; plain LDAP without it is refused by configuration", async () => {
    const ident = await directory({ url: slapd.ldapUrl, startTls: true }).authenticate("bob", USERS.bob);
    expect(ident.groups.sort()).toEqual(["dba", "everyone"]);
    await expect(directory({ url: slapd.ldapUrl }).authenticate("bob", USERS.bob)).rejects.toThrow(/needs ldaps/);
  });

  test("a certificate the client does not trust is refused", async () => {
    await expect(directory({ caPem: undefined }).authenticate("bob", USERS.bob)).rejects.toMatchObject({ reason: "ldap_unreachable", details: { error: expect.stringMatching(/certificate/i) } });
  });

  test("direct membership only, and group cycles terminate", async () => {
    expect((await directory({ nested: "none" }).authenticate("alice", USERS.alice)).groups).toEqual(["ops"]);
    expect((await directory().authenticate("carol", USERS.carol)).groups.sort()).toEqual(["loop-a", "loop-b"]);
  });

  test("wrong password, empty password, unknown user and filter injection are refused", async () => {
    const d = directory();
    await expect(d.authenticate("alice", "wrong")).rejects.toMatchObject({ reason: "bad_credentials" });
    await expect(d.authenticate("alice", "")).rejects.toMatchObject({ reason: "bad_credentials" });
    await expect(d.authenticate("nobody", "x")).rejects.toMatchObject({ reason: "bad_credentials" });
    await expect(d.authenticate("*", USERS.alice)).rejects.toMatchObject({ reason: "bad_credentials" });
    await expect(d.authenticate("alice)(uid=*", USERS.alice)).rejects.toMatchObject({ reason: "bad_credentials" });
    expect(escapeFilterValue("a*(b)\\c")).toBe("a\\2a\\28b\\29\\5cc");
  });

  test("a wrong service account password is reported as such", async () => {
    await expect(directory({ bindPassword: "nope" }).authenticate("alice", USERS.alice)).rejects.toMatchObject({ reason: "ldap_service_bind" });
  });

  test("the pool bounds connections and reuses them", async () => {
    const d = directory({}, { size: 2, acquireTimeoutMs: 5000 });
    let maxBusy = 0;
    const watch = setInterval(() => (maxBusy = Math.max(maxBusy, d.pool.stats.busy)), 1);
    const results = await Promise.all(Array.from({ length: 8 }, () => d.authenticate("bob", USERS.bob)));
    clearInterval(watch);
    expect(results.every((r) => r.username === "bob")).toBe(true);
    expect(maxBusy).toBeLessThanOrEqual(2);
    expect(d.pool.stats).toEqual({ idle: 2, busy: 0, waiting: 0 });
  });

  test("a membership removed in the directory is gone at the next sign-in", async () => {
    const d = directory();
    expect((await d.authenticate("bob", USERS.bob)).groups).toContain("dba");
    slapd.modify(`dn: cn=dba,ou=groups,${BASE}\nchangetype: modify\nreplace: member\nmember: cn=reader,${BASE}\n`);
    expect((await d.authenticate("bob", USERS.bob)).groups).toEqual([]);
  });

  test("a server that accepts TCP but never answers times out", async () => {
    const sockets = new Set<import("node:net").Socket>();
    const silent: Server = createServer((sock) => sockets.add(sock));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    const t0 = Date.now();
    await expect(directory({ url: `ldaps://127.0.0.1:${port}`, timeoutMs: 500, connectTimeoutMs: 500 }).authenticate("alice", "x")).rejects.toMatchObject({ reason: expect.stringMatching(/^ldap_(timeout|unreachable)$/) });
    expect(Date.now() - t0).toBeLessThan(4000);
    for (const sock of sockets) sock.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });
});
