/**
 * Enrollment: an admin creates a one-time activation token; an agent presents it with its
 * Ed25519 public key and gets its agent id. Only the SHA-256 of a token is stored.
 */
import type { Sql } from "postgres";
import { createHash, randomBytes } from "node:crypto";
import { ed25519KeyProblem, KEY_BASE64 } from "./ed25519-key.ts";

export class EnrollError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

export async function createActivationToken(
  sql: Sql,
  o: { label?: string; createdBy: string; ttlHours?: number },
): Promise<{ id: number; token: string; expiresAt: Date }> {
  const token = "smt_" + randomBytes(32).toString("base64url");
  const ttl = o.ttlHours ?? 24;
  const [row] = await sql<{ id: string; expires_at: Date }[]>`
    insert into activation_tokens (token_hash, label, created_by, expires_at)
    values (${hashToken(token)}, ${o.label ?? ""}, ${o.createdBy}, now() + make_interval(hours => ${ttl}))
    returning id, expires_at`;
  return { id: Number(row!.id), token, expiresAt: row!.expires_at };
}

export interface EnrollRequest {
  token: string;
  publicKey: string;
  hostname: string;
  os?: string;
  arch?: string;
  version?: string;
}

/** Validates an enrollment body from the network; throws EnrollError with a specific message. */
export function parseEnrollRequest(body: unknown): EnrollRequest {
  if (!body || typeof body !== "object" || Array.isArray(body)) throw new EnrollError(400, "bad_request", "enrollment body must be a JSON object");
  const b = body as Record<string, unknown>;
  const str = (k: string, max: number, required: boolean): string | undefined => {
    const v = b[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== "string" || v.length === 0 || v.length > max) throw new EnrollError(400, "bad_request", `"${k}" must be a string of 1 to ${max} characters`);
    return v;
  };
  const req: EnrollRequest = {
    token: str("token", 200, true)!,
    publicKey: str("publicKey", 100, true)!,
    hostname: str("hostname", 255, true)!,
    os: str("os", 200, false),
    arch: str("arch", 50, false),
    version: str("version", 50, false),
  };
  checkPublicKey(req.publicKey);
  return req;
}

/** The key must be standard base64 (not base64url) of 32 bytes naming a usable Ed25519 point. */
function checkPublicKey(b64: string): void {
  if (!KEY_BASE64.test(b64)) {
    throw new EnrollError(400, "bad_request", `"publicKey" must be the standard base64 (A-Z a-z 0-9 + /, with "=" padding: 44 characters) of a 32-byte Ed25519 key, got ${Buffer.from(b64, "base64").length} bytes in ${b64.length} characters`);
  }
  const problem = ed25519KeyProblem(Buffer.from(b64, "base64"));
  if (problem) throw new EnrollError(400, "bad_request", `"publicKey" is not a valid Ed25519 public key: ${problem}`);
}

/** Serializes the seat check and insert of enrollments that have an `admit` check. */
const ENROLL_LOCK_ID = 0x5345_4154; // "SEAT"

/**
 * `admit`: asked after the token and key are accepted, inside the transaction (it must use `tx`,
 * not another connection), with other admitted enrollments held back until this one commits
 * (the license's seat limit); it throws EnrollError to refuse, and nothing is used up.
 */
export async function enrollAgent(sql: Sql, req: EnrollRequest, admit?: (tx: Sql) => Promise<void>): Promise<{ agentId: number; tokenId: number }> {
  const key = Buffer.from(req.publicKey, "base64");
  return await sql.begin(async (tx) => {
    const [t] = await tx<{ id: string }[]>`
      select id from activation_tokens
      where token_hash = ${hashToken(req.token)} and used_at is null and revoked_at is null and expires_at > now()
      for update`;
    if (!t) throw new EnrollError(401, "bad_token", "activation token is unknown, already used, revoked or expired");
    const existing = await tx`select 1 from agents where public_key = ${key}`;
    if (existing.length) throw new EnrollError(409, "key_in_use", "this public key is already enrolled; generate a new key pair");
    if (admit) {
      await tx`select pg_advisory_xact_lock(${ENROLL_LOCK_ID})`;
      await admit(tx as unknown as Sql);
    }
    const [a] = await tx<{ id: string }[]>`
      insert into agents (hostname, public_key, os, arch, agent_version)
      values (${req.hostname}, ${key}, ${req.os ?? ""}, ${req.arch ?? ""}, ${req.version ?? ""})
      returning id`;
    await tx`update activation_tokens set used_at = now(), used_by_agent = ${a!.id} where id = ${t.id}`;
    return { agentId: Number(a!.id), tokenId: Number(t.id) };
  });
}

export async function revokeAgent(sql: Sql, agentId: number): Promise<boolean> {
  const r = await sql`update agents set revoked_at = now() where id = ${agentId} and revoked_at is null returning 1`;
  return r.length > 0;
}
