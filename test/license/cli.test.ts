/** `npm run license -- keygen | sign | show | install | status` as processes, against a real database. */
import { afterAll, beforeAll, setDefaultTimeout, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase, type TestDb } from "../support/db.ts";

setDefaultTimeout(120_000);

let db: TestDb;
let dir: string;
beforeAll(async () => {
  db = await testDatabase(2);
  dir = mkdtempSync(join(tmpdir(), "servermind-license-cli-"));
});
afterAll(async () => {
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn([process.execPath, "src/license/cli.ts", ...args], {
    env: { ...process.env, DATABASE_URL: db.url, SERVERMIND_DATA: join(dir, "data"), ...env }, stdout: "pipe", stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { out, err, code };
}

test("keygen, sign, show, install and status round trip; a tampered file is refused", async () => {
  const keyFile = join(dir, "vendor.key");
  const kg = await cli(["keygen", "--out", keyFile]);
  expect(kg.code).toBe(0);
  const pub = kg.out.trim();
  expect(pub).toMatch(/^[A-Za-z0-9_-]{43}$/);
  const env = { SERVERMIND_LICENSE_PUBLIC_KEY: pub };
  const file = join(dir, "acme.license");
  const signed = await cli(["sign", "--key", keyFile, "--licensee", "ACME Corp", "--seats", "40", "--expires", "2099-12-31", "--id", "lic-42", "--features", "sso,clickhouse", "--out", file]);
  expect(signed.code).toBe(0);
  const show = await cli(["show", file], env);
  expect(show.code).toBe(0);
  expect(show.out).toContain("licensee:   ACME Corp");
  expect(show.out).toContain("seats:      40 agents");
  expect(show.out).toContain("signature:  valid");
  expect(show.err).toContain("development key");
  // the compiled-in vendor key did not sign it
  const foreign = await cli(["show", file]);
  expect(foreign.code).toBe(1);
  expect(foreign.err).toContain("license refused: the license signature does not verify against the vendor key");
  // tampered: refused, and not installed
  const text = readFileSync(file, "utf8");
  const [h, line, sig] = text.trimEnd().split("\n") as [string, string, string];
  const p = JSON.parse(Buffer.from(line, "base64url").toString("utf8"));
  const tampered = join(dir, "tampered.license");
  await Bun.write(tampered, `${h}\n${Buffer.from(JSON.stringify({ ...p, seats: 4000 })).toString("base64url")}\n${sig}\n`);
  const bad = await cli(["install", tampered], env);
  expect(bad.code).toBe(1);
  expect(bad.err).toContain("license refused");
  const none = await cli(["status"], env);
  expect(none.code).toBe(0);
  expect(none.out).toContain("community mode");
  expect(none.out).toContain("agents:     0 of 25");
  // install, then status reads it back; the install is audited
  const inst = await cli(["install", file], env);
  expect(inst.code).toBe(0);
  expect(readFileSync(join(dir, "data", "license.txt"), "utf8")).toBe(text);
  const status = await cli(["status"], env);
  expect(status.out).toContain("licensee:   ACME Corp");
  expect(status.out).toContain("state:      valid");
  expect(status.out).toContain("agents:     0 of 40");
  const [rec] = await db.sql`select actor_type, category, target, success, details from audit_log where action = 'license.install'`;
  expect(rec).toMatchObject({ actor_type: "system", category: "config_change", target: "license lic-42", success: true, details: { licensee: "ACME Corp", seats: 40 } });
  expect((await cli(["frobnicate"])).code).toBe(2);
}, 90_000);
