/**
 * The license file (docs/licensing.md, "File format"): three lines of ASCII,
 *   servermind-license v1
 *   <base64url of the payload's UTF-8 JSON>
 *   <base64url of the 64-byte Ed25519 signature>
 * The signature covers the bytes of "servermind-license v1\n" followed by the second line as
 * written (its base64url text, not the decoded JSON), so nothing is re-serialised before checking.
 * Pure: no I/O, no clock (callers pass `now` where it matters).
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";

export const HEADER = "servermind-license v1";

export interface LicensePayload {
  v: 1;
  /** The vendor's id of this license (shown, audited). */
  id: string;
  licensee: string;
  /** Enrolled (not revoked) agents the license covers. */
  seats: number;
  issuedAt: string;
  expiresAt: string;
  features: string[];
}

export class LicenseError extends Error {
  constructor(readonly code: "malformed" | "bad_signature" | "bad_payload", message: string) {
    super(message);
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;

function signedBytes(payloadLine: string): Buffer {
  return Buffer.from(`${HEADER}\n${payloadLine}`, "ascii");
}

/** A raw 32-byte Ed25519 public key (base64url or standard base64) as a KeyObject. */
export function publicKeyFromRaw(b64: string): KeyObject {
  const raw = Buffer.from(b64.trim(), b64.includes("+") || b64.includes("/") ? "base64" : "base64url");
  if (raw.length !== 32) throw new Error(`an Ed25519 public key is 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
}

export function rawPublicKey(k: KeyObject): string {
  return k.export({ format: "jwk" }).x!;
}

export function checkPayload(p: unknown): LicensePayload {
  const bad = (m: string) => new LicenseError("bad_payload", `license payload: ${m}`);
  if (!p || typeof p !== "object" || Array.isArray(p)) throw bad("not a JSON object");
  const o = p as Record<string, unknown>;
  if (o.v !== 1) throw bad(`unsupported version ${JSON.stringify(o.v)} (this server reads v 1)`);
  for (const k of ["id", "licensee", "issuedAt", "expiresAt"]) {
    if (typeof o[k] !== "string" || (o[k] as string).length === 0 || (o[k] as string).length > 200) throw bad(`"${k}" must be a string of 1 to 200 characters`);
  }
  for (const k of ["issuedAt", "expiresAt"]) if (Number.isNaN(Date.parse(o[k] as string))) throw bad(`"${k}" is not an ISO 8601 date`);
  if (!Number.isInteger(o.seats) || (o.seats as number) < 1 || (o.seats as number) > 10_000_000) throw bad(`"seats" must be a whole number from 1 to 10000000`);
  if (!Array.isArray(o.features) || o.features.some((f) => typeof f !== "string" || f.length === 0 || f.length > 100)) throw bad(`"features" must be an array of strings`);
  return { v: 1, id: o.id as string, licensee: o.licensee as string, seats: o.seats as number, issuedAt: o.issuedAt as string, expiresAt: o.expiresAt as string, features: [...(o.features as string[])] };
}

/** Vendor side: the file's text for a payload, signed with the vendor's private key. */
export function signLicense(payload: LicensePayload, privateKey: KeyObject | string): string {
  const key = typeof privateKey === "string" ? createPrivateKey(privateKey) : privateKey;
  const line = Buffer.from(JSON.stringify(checkPayload(payload)), "utf8").toString("base64url");
  const sig = sign(null, signedBytes(line), key).toString("base64url");
  return `${HEADER}\n${line}\n${sig}\n`;
}

/** Parses and verifies a license file's text; throws LicenseError saying what is wrong. */
export function verifyLicense(text: string, publicKey: KeyObject): LicensePayload {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  while (lines.length && lines.at(-1) === "") lines.pop();
  if (lines[0] !== HEADER) throw new LicenseError("malformed", `not a ServerMind license: the first line must be "${HEADER}"`);
  if (lines.length !== 3) throw new LicenseError("malformed", `a license has 3 lines (header, payload, signature), this one has ${lines.length}`);
  const [, line, sigText] = lines as [string, string, string];
  if (!B64URL.test(line) || !B64URL.test(sigText)) throw new LicenseError("malformed", "payload and signature lines must be base64url (A-Z a-z 0-9 - _, no padding)");
  const sig = Buffer.from(sigText, "base64url");
  if (sig.length !== 64) throw new LicenseError("malformed", `the signature is 64 bytes, this one is ${sig.length}`);
  if (!verify(null, signedBytes(line), publicKey, sig)) {
    throw new LicenseError("bad_signature", "the license signature does not verify against the vendor key: the file was altered or was not issued for this product");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(line, "base64url").toString("utf8"));
  } catch {
    throw new LicenseError("bad_payload", "license payload is not JSON");
  }
  return checkPayload(parsed);
}
