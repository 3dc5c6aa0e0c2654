/**
 * The agent's identity in an encrypted SQLite database.
 *
 * Each value is encrypted on its own with AES-256-GCM (random 96-bit IV) and authenticated
 * together with its name as additional data, so a value cannot be altered, swapped for another
 * row's value or moved to another name without the open failing with an IdentityError.
 * Nothing is stored in plain text: not the token, the private key, the server URL or the pin.
 */
import { Database } from "bun:sqlite";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { deriveIdentityKey, IdentityError, readMachineId } from "./secret.ts";

export interface Identity {
  serverUrl: string;
  agentId: number;
  /** The activation token, kept only until enrollment succeeds. */
  token?: string;
  /** Ed25519 private key, PKCS#8 DER, base64. */
  privateKey: string;
  /** Raw 32-byte Ed25519 public key, base64 (what the server stores). */
  publicKey: string;
  /** The pinned server certificate (PEM) and its SHA-256 fingerprint (hex of the DER). */
  serverCertPem: string;
  fingerprint: string;
}

const FIELDS = ["serverUrl", "agentId", "token", "privateKey", "publicKey", "serverCertPem", "fingerprint"] as const;
const REQUIRED = ["serverUrl", "agentId", "privateKey", "publicKey", "serverCertPem", "fingerprint"] as const;

export interface IdentityStoreOptions {
  dbPath: string;
  secretPath: string;
  /** Defaults to /etc/machine-id. */
  machineIdPath?: string;
}

export interface IdentityStore {
  /** The stored identity, or undefined before enrollment. Throws IdentityError on tampering. */
  load(): Identity | undefined;
  save(identity: Identity): void;
  close(): void;
}

function seal(key: Buffer, name: string, value: string) {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(Buffer.from(name, "utf8"));
  const ct = Buffer.concat([c.update(value, "utf8"), c.final()]);
  return { iv, ct, tag: c.getAuthTag() };
}

function open(key: Buffer, name: string, iv: Uint8Array, ct: Uint8Array, tag: Uint8Array, path: string): string {
  try {
    if (iv.length !== 12 || tag.length !== 16) throw new Error("bad lengths");
    const d = createDecipheriv("aes-256-gcm", key, iv);
    d.setAAD(Buffer.from(name, "utf8"));
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ct), d.final()]).toString("utf8");
  } catch {
    throw new IdentityError(
      `identity database ${path}: entry "${name}" failed authentication. The file was modified, or it was copied from ` +
        `another machine, or machine.secret / /etc/machine-id changed. Re-enroll the agent with a new token.`,
    );
  }
}

export function createIdentityStore(opts: IdentityStoreOptions): IdentityStore {
  const key = deriveIdentityKey(opts.secretPath, readMachineId(opts.machineIdPath));
  let db: Database;
  try {
    db = new Database(opts.dbPath, { create: true, strict: true });
    db.run("pragma journal_mode = delete");
    db.run("pragma secure_delete = on");
    db.run("create table if not exists identity (name text primary key, iv blob not null, ct blob not null, tag blob not null) strict");
  } catch (e) {
    throw new IdentityError(`identity database ${opts.dbPath} cannot be opened: ${e instanceof Error ? e.message : e}`);
  }
  return {
    load() {
      const rows = db.query<{ name: string; iv: Uint8Array; ct: Uint8Array; tag: Uint8Array }, []>("select name, iv, ct, tag from identity").all();
      if (rows.length === 0) return undefined;
      const values: Record<string, string> = {};
      for (const r of rows) {
        if (!(FIELDS as readonly string[]).includes(r.name)) throw new IdentityError(`identity database ${opts.dbPath} holds an unknown entry "${r.name}": it was modified`);
        values[r.name] = open(key, r.name, r.iv, r.ct, r.tag, opts.dbPath);
      }
      for (const f of REQUIRED) if (values[f] === undefined) throw new IdentityError(`identity database ${opts.dbPath} lacks the entry "${f}": it was modified or enrollment did not finish`);
      const agentId = Number(values.agentId);
      if (!Number.isSafeInteger(agentId) || agentId < 0) throw new IdentityError(`identity database ${opts.dbPath}: agentId is not a number`);
      return {
        serverUrl: values.serverUrl!,
        agentId,
        token: values.token,
        privateKey: values.privateKey!,
        publicKey: values.publicKey!,
        serverCertPem: values.serverCertPem!,
        fingerprint: values.fingerprint!,
      };
    },
    save(identity) {
      const put = db.prepare("insert or replace into identity (name, iv, ct, tag) values (?, ?, ?, ?)");
      db.transaction(() => {
        db.run("delete from identity");
        for (const f of FIELDS) {
          const v = identity[f];
          if (v === undefined) continue;
          const s = seal(key, f, String(v));
          put.run(f, s.iv, s.ct, s.tag);
        }
      })();
    },
    close() {
      db.close();
      key.fill(0);
    },
  };
}
