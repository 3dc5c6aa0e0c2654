import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createIdentityStore, type Identity } from "../../../agent/identity/store.ts";
import { createSecretFile, IdentityError } from "../../../agent/identity/secret.ts";
import { tempDirs } from "../../support/temp.ts";

const dirs = tempDirs("sm-identity-");
afterAll(() => dirs.removeAll());

function setup() {
  const dir = dirs.make();
  const secretPath = join(dir, "machine.secret");
  const machineIdPath = join(dir, "machine-id");
  writeFileSync(machineIdPath, "0123456789abcdef0123456789abcdef\n");
  createSecretFile(secretPath);
  return { dir, dbPath: join(dir, "identity.db"), secretPath, machineIdPath };
}

function sampleIdentity(): Identity {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    serverUrl: "https://ingest.example.test:8443",
    agentId: 4242,
    token: "smt_SECRETTOKENVALUE_1234567890",
    privateKey: privateKey.export({ type: "pkcs8", format: "der" }).toString("base64"),
    publicKey: Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url").toString("base64"),
    serverCertPem: "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
    fingerprint: "ab".repeat(32),
  };
}

describe("identity store", () => {
  test("round-trips the identity across reopen", () => {
    const p = setup();
    const id = sampleIdentity();
    const s = createIdentityStore(p);
    expect(s.load()).toBeUndefined();
    s.save(id);
    s.close();
    const again = createIdentityStore(p);
    expect(again.load()).toEqual(id);
    again.close();
  });

  test("the secret file is created once with mode 0400", () => {
    const p = setup();
    expect(statSync(p.secretPath).mode & 0o777).toBe(0o400);
    expect(createSecretFile(p.secretPath)).toBe(false);
    expect(readFileSync(p.secretPath).length).toBe(32);
  });

  test("no secret appears in plain text in the database file", () => {
    const p = setup();
    const id = sampleIdentity();
    const s = createIdentityStore(p);
    s.save(id);
    s.close();
    const bytes = readFileSync(p.dbPath);
    const raw = Buffer.from(id.privateKey, "base64");
    for (const needle of [id.token!, id.privateKey, id.serverUrl, "ingest.example", id.fingerprint, "BEGIN CERTIFICATE"]) {
      expect(bytes.includes(Buffer.from(needle))).toBe(false);
    }
    // the 32 seed bytes of the key (the tail of the PKCS#8 DER) are not in the file either
    expect(bytes.includes(raw.subarray(raw.length - 32))).toBe(false);
    expect(bytes.includes(Buffer.from(id.token!, "utf8").toString("base64"))).toBe(false);
  });

  test("a flipped ciphertext byte gives a clear IdentityError naming the entry", () => {
    const p = setup();
    const s = createIdentityStore(p);
    s.save(sampleIdentity());
    s.close();
    const db = new Database(p.dbPath);
    const row = db.query<{ ct: Uint8Array }, []>("select ct from identity where name = 'privateKey'").get()!;
    const ct = Buffer.from(row.ct);
    ct[5] = ct[5]! ^ 1;
    db.query("update identity set ct = ? where name = 'privateKey'").run(ct);
    db.close();
    const again = createIdentityStore(p);
    expect(() => again.load()).toThrow(IdentityError);
    expect(() => again.load()).toThrow(/"privateKey" failed authentication/);
    again.close();
  });

  test("swapping two entries' ciphertexts is detected (name is authenticated)", () => {
    const p = setup();
    const s = createIdentityStore(p);
    s.save(sampleIdentity());
    s.close();
    const db = new Database(p.dbPath);
    db.run("update identity set name = 'tmp' where name = 'serverUrl'");
    db.run("update identity set name = 'serverUrl' where name = 'fingerprint'");
    db.run("update identity set name = 'fingerprint' where name = 'tmp'");
    db.close();
    const again = createIdentityStore(p);
    expect(() => again.load()).toThrow(/failed authentication/);
    again.close();
  });

  test("a deleted entry is reported", () => {
    const p = setup();
    const s = createIdentityStore(p);
    s.save(sampleIdentity());
    s.close();
    const db = new Database(p.dbPath);
    db.run("delete from identity where name = 'agentId'");
    db.close();
    const again = createIdentityStore(p);
    expect(() => again.load()).toThrow(/lacks the entry "agentId"/);
    again.close();
  });

  test("another machine id (database copied elsewhere) cannot open it", () => {
    const p = setup();
    const s = createIdentityStore(p);
    s.save(sampleIdentity());
    s.close();
    writeFileSync(p.machineIdPath, "ffffffffffffffffffffffffffffffff\n");
    const other = createIdentityStore(p);
    expect(() => other.load()).toThrow(IdentityError);
    other.close();
  });

  test("a missing secret is a clear error", () => {
    const p = setup();
    expect(() => createIdentityStore({ ...p, secretPath: join(p.dir, "nope") })).toThrow(/cannot read the identity secret/);
  });
});
