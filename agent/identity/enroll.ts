/**
 * Enrollment: pin the server certificate, make an Ed25519 key pair, present the activation token
 * with the public key, and return the identity to store. The token is sent only over the pinned
 * connection and is not returned once it has been used.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { arch, hostname, platform, release } from "node:os";
import { fetchPeerCertificate, normalizeFingerprint, pinnedTls, PinError } from "../ship/pin.ts";
import type { Identity } from "./store.ts";

export interface EnrollOptions {
  serverUrl: string;
  token: string;
  /** Expected SHA-256 of the server certificate; without it the first certificate seen is trusted. */
  fingerprint?: string;
  version: string;
  timeoutMs?: number;
}

export class EnrollError extends Error {}

export async function enroll(o: EnrollOptions): Promise<{ identity: Identity; trustedOnFirstUse: boolean }> {
  const u = new URL(o.serverUrl);
  if (u.protocol !== "https:") throw new EnrollError(`--server must be an https:// URL, got ${u.protocol}`);
  const base = `${u.protocol}//${u.host}`;
  const peer = await fetchPeerCertificate(base, o.timeoutMs ?? 10_000);
  if (o.fingerprint && normalizeFingerprint(o.fingerprint) !== peer.fingerprint) {
    throw new PinError(`the server presented certificate ${peer.fingerprint}, not the expected ${normalizeFingerprint(o.fingerprint)}: refusing to send the token`);
  }
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const rawPublic = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url").toString("base64");
  let r: Response;
  try {
    r = await fetch(`${base}/api/v1/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: o.token, publicKey: rawPublic, hostname: hostname(), os: `${platform()} ${release()}`, arch: arch(), version: o.version }),
      tls: pinnedTls(peer.pem, peer.fingerprint),
      protocol: "http1.1",
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
    } as RequestInit);
  } catch (e) {
    throw new EnrollError(`enrollment request to ${base} failed: ${e instanceof Error ? e.message : e}`);
  }
  let body: any;
  try {
    body = await r.json();
  } catch {
    throw new EnrollError(`enrollment answer from ${base} (HTTP ${r.status}) is not JSON`);
  }
  if (!r.ok) throw new EnrollError(`enrollment refused (HTTP ${r.status}): ${body?.error?.code ?? "error"}: ${body?.error?.message ?? ""}`);
  if (!Number.isSafeInteger(body?.agentId) || body.agentId < 1) throw new EnrollError(`enrollment answer lacks a numeric agentId`);
  return {
    identity: {
      serverUrl: base,
      agentId: body.agentId,
      privateKey: privateKey.export({ type: "pkcs8", format: "der" }).toString("base64"),
      publicKey: rawPublic,
      serverCertPem: peer.pem,
      fingerprint: peer.fingerprint,
    },
    trustedOnFirstUse: !o.fingerprint,
  };
}

export function privateKeyOf(identity: Identity): KeyObject {
  return createPrivateKey({ key: Buffer.from(identity.privateKey, "base64"), format: "der", type: "pkcs8" });
}
