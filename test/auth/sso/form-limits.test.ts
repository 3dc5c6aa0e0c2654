/**
 * The unauthenticated SSO forms (/auth/saml/acs, /auth/ldap/login) have size limits of their
 * own, checked before the body is read: the server's body limit (16 MiB by default) is far more
 * than a SAML response (a few hundred kB) or a directory sign-in (a few kB). Over the real TLS
 * server with the SSO plugin mounted as src/main.ts does: a declared length over the limit is
 * answered 413 without waiting for the body, a chunked body is read no further than the limit,
 * and forms within the limits still reach the sign-in flows.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import tls from "node:tls";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../../src/config.ts";
import { startServer, type RunningServer } from "../../../src/server.ts";
import { createSelfSigned } from "../../../src/tls/self-signed.ts";
import { consolePlugin, createServices, startConsole } from "../../../src/web/plugin.ts";
import { createSso, LDAP_FORM_MAX_BYTES, SAML_FORM_MAX_BYTES, type SsoPlugin } from "../../../src/auth/sso/routes.ts";
import { consoleSsoDeps } from "../../../src/web/sso/wiring.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";
import { commandsWithoutAgents } from "../../support/security-views.ts";
import { slowPost } from "../../support/raw-clients.ts";

let db: TestDb;
let server: RunningServer;
let sso: SsoPlugin;
let stopConsole: () => void;
let dataDir: string;

beforeAll(async () => {
  db = await testDatabase(4);
  dataDir = mkdtempSync(join(tmpdir(), "servermind-sso-limits-"));
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir });
  const deps = { sql: db.sql, config, dataDir, serverFingerprint: cert.fingerprint, security: commandsWithoutAgents() };
  stopConsole = (await startConsole(deps, () => {})).stop;
  const services = createServices(deps);
  sso = createSso(consoleSsoDeps(services, { publicUrl: "https://127.0.0.1" }));
  server = startServer({
    config, sql: db.sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
    plugins: [consolePlugin(deps, services), sso.plugin],
  });
}, 60_000);

afterAll(async () => {
  stopConsole?.();
  await sso?.close();
  await server?.stop();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

const FORM = "application/x-www-form-urlencoded";

function post(path: string, body: string) {
  return fetch(`${server.url}${path}`, { method: "POST", body, redirect: "manual", headers: { "content-type": FORM }, tls: { rejectUnauthorized: false } } as RequestInit);
}

/** A chunked POST (no Content-Length) of `total` bytes of form, written as fast as the server takes them; the status it got. */
function chunkedPost(path: string, prefix: string, total: number): Promise<number> {
  return new Promise((resolve) => {
    let out = "";
    const s = tls.connect({ host: "127.0.0.1", port: server.port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] } as tls.ConnectionOptions, () => {
      s.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${FORM}\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = (b: string) => `${Buffer.byteLength(b).toString(16)}\r\n${b}\r\n`;
      s.write(chunk(prefix));
      let sent = prefix.length;
      const more = () => {
        while (sent < total && !s.destroyed) {
          sent += 16 * 1024;
          if (!s.write(chunk("A".repeat(16 * 1024)))) return void s.once("drain", more);
        }
        if (!s.destroyed) s.write("0\r\n\r\n");
      };
      more();
    });
    const limit = setTimeout(() => s.destroy(), 20_000);
    s.on("data", (d) => {
      out += d;
      if (/^HTTP\/1\.1 \d{3}/.test(out)) s.destroy();
    });
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(limit);
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0));
    });
  });
}

const signInFailures = async () => Number((await db.sql`select count(*)::int as n from audit_log where action = 'sso.login'`)[0]!.n);

for (const [path, max, field] of [["/auth/saml/acs", SAML_FORM_MAX_BYTES, "SAMLResponse="], ["/auth/ldap/login", LDAP_FORM_MAX_BYTES, "provider=dir&username=alice&password="]] as const) {
  test(`${path}: a body declared over ${max} bytes is refused with 413 before it is read`, async () => {
    const before = await signInFailures();
    // declares 6 MB (within the server's 16 MiB) and trickles it: nothing may wait for the rest
    const slow = slowPost({ port: server.port, path, contentType: FORM, contentLength: 6_000_000, firstBytes: Buffer.from(field), everyMs: 200, maxMs: 8000 });
    const r = await slow.done;
    expect({ status: r.status, gaveUp: r.gaveUp }).toEqual({ status: 413, gaveUp: false });
    expect(r.closedMs).toBeLessThan(4000);
    // sent whole: 413 with the limit named, and no sign-in attempt made of it
    const whole = await post(path, field + "A".repeat(3_000_000));
    expect(whole.status).toBe(413);
    expect(await whole.text()).toBe(`The form sent to ${path} is larger than ${max} bytes, the limit for this sign-in form; it was not read.`);
    expect(await signInFailures()).toBe(before);
  }, 20_000);

  test(`${path}: a chunked body is read no further than ${max} bytes (413)`, async () => {
    expect(await chunkedPost(path, field, 4_000_000)).toBe(413);
  }, 25_000);

  test(`${path}: a form within the limit still reaches the sign-in flow`, async () => {
    const before = await signInFailures();
    const r = await post(path, field + "A".repeat(max - field.length - 64));
    expect(r.status).toBe(303);
    expect(r.headers.get("location")).toStartWith("/login?sso_error=");
    expect(await signInFailures()).toBe(before + 1);
  });
}
