/**
 * Server-signed commands for the agent's Control process. Shared by both sides: the server signs
 * with its command key, Control verifies with the public half before doing anything.
 *
 * Canonical encoding (what the Ed25519 signature covers), byte for byte:
 *   "servermind-command-v1\n" + canonicalJson(command)
 * where canonicalJson writes objects with keys sorted by UTF-16 code unit, no whitespace, arrays
 * in order, strings as JSON.stringify writes them, and refuses non-finite numbers, undefined,
 * functions and anything that is not plain JSON. The signature itself is not part of the payload.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";

export const COMMAND_DOMAIN = "servermind-command-v1\n";
/** A command is refused this long after it was issued (and when issued this far in the future). */
export const COMMAND_MAX_AGE_MS = 5 * 60_000;

export interface Command {
  v: 1;
  /** Unique per command; Control refuses a nonce it has seen. */
  id: string;
  agentId: number;
  action: string;
  args: Record<string, unknown>;
  issuedMs: number;
  /** Who asked for it (user id / name), carried for the agent-side record. */
  requestedBy: string;
}

export interface SignedCommand extends Command {
  /** Ed25519 signature over COMMAND_DOMAIN + canonicalJson(command without sig), base64. */
  sig: string;
}

export function canonicalJson(v: unknown): string {
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new Error(`canonicalJson: non-finite number ${v}`);
      return JSON.stringify(v);
    case "string":
      return JSON.stringify(v);
    case "object": {
      if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new Error("canonicalJson: only plain objects are allowed");
      const keys = Object.keys(v as object).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
    }
    default:
      throw new Error(`canonicalJson: ${typeof v} is not JSON`);
  }
}

export function commandPayload(c: Command): Buffer {
  const { v, id, agentId, action, args, issuedMs, requestedBy } = c;
  return Buffer.from(COMMAND_DOMAIN + canonicalJson({ v, id, agentId, action, args, issuedMs, requestedBy }), "utf8");
}

export function signCommand(c: Command, privateKey: KeyObject): SignedCommand {
  const sig = sign(null, commandPayload(c), privateKey).toString("base64");
  return { ...c, sig };
}

/** Raw 32-byte Ed25519 public key (base64) -> KeyObject, the form Control keeps on disk. */
export function publicKeyFromBase64(b64: string): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(b64.trim(), "base64").toString("base64url") }, format: "jwk" });
}

export function privateKeyFromPem(pem: string): KeyObject {
  return createPrivateKey(pem);
}

export type VerifyResult = { ok: true; command: Command } | { ok: false; reason: string };

export interface VerifyOptions {
  publicKey: KeyObject;
  /** This agent's id; a command for another agent is refused. */
  agentId: number;
  /** Actions this process may execute. */
  allow: ReadonlySet<string>;
  now?: number;
  /** Nonces seen recently; checked and updated (bounded by the caller, see createNonceSet). */
  seen?: NonceSet;
}

export interface NonceSet {
  has(id: string): boolean;
  add(id: string, at: number): void;
}

/** Remembers nonces for twice the command lifetime, at most `max` of them. */
export function createNonceSet(max = 100_000): NonceSet {
  const m = new Map<string, number>();
  return {
    has: (id) => m.has(id),
    add(id, at) {
      for (const [k, t] of m) {
        if (at - t <= 2 * COMMAND_MAX_AGE_MS && m.size < max) break;
        m.delete(k);
      }
      m.set(id, at);
    },
  };
}

export function verifyCommand(input: unknown, o: VerifyOptions): VerifyResult {
  if (!input || typeof input !== "object") return { ok: false, reason: "command is not an object" };
  const c = input as Partial<SignedCommand>;
  if (c.v !== 1) return { ok: false, reason: `command version ${String(c.v)} is not 1` };
  if (typeof c.id !== "string" || c.id.length < 8 || c.id.length > 128) return { ok: false, reason: "command id must be a string of 8-128 characters" };
  if (typeof c.agentId !== "number" || typeof c.action !== "string" || typeof c.issuedMs !== "number" || typeof c.requestedBy !== "string") {
    return { ok: false, reason: "command needs agentId, action, issuedMs and requestedBy" };
  }
  if (!c.args || typeof c.args !== "object" || Array.isArray(c.args)) return { ok: false, reason: "command args must be an object" };
  if (typeof c.sig !== "string") return { ok: false, reason: "command carries no signature" };
  let good = false;
  try {
    good = verify(null, commandPayload(c as Command), o.publicKey, Buffer.from(c.sig, "base64"));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: "command signature does not verify with the server command key" };
  if (c.agentId !== o.agentId) return { ok: false, reason: `command is for agent ${c.agentId}, this is agent ${o.agentId}` };
  const now = o.now ?? Date.now();
  if (Math.abs(now - c.issuedMs) > COMMAND_MAX_AGE_MS) return { ok: false, reason: "command is older than five minutes or issued in the future" };
  if (!o.allow.has(c.action)) return { ok: false, reason: `action "${c.action}" is not on the allow-list` };
  if (o.seen) {
    if (o.seen.has(c.id)) return { ok: false, reason: "command id was already used" };
    o.seen.add(c.id, now);
  }
  const { sig: _sig, ...command } = c as SignedCommand;
  return { ok: true, command };
}
