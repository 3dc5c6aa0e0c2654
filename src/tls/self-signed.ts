/**
 * Generates the self-signed certificate the server uses when none is configured:
 * ECDSA P-256, SHA-256, valid for ten years, with the given DNS names and IP addresses.
 */
import { generateKeyPairSync, sign, randomBytes, createHash } from "node:crypto";
import { isIP } from "node:net";
import { seq, set, oid, uint, utf8, time, bitString, octets, explicit, implicitPrim, bool, tlv } from "./der.ts";

export interface SelfSigned {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the DER certificate, lower-case hex, as agents pin it. */
  fingerprint: string;
}

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Uint8Array.from(ip.split(".").map(Number));
  // IPv6: expand "::" and write 8 groups of 16 bits
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g || "0", 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export function certFingerprint(certDerOrPem: Uint8Array | string): string {
  const der = typeof certDerOrPem === "string"
    ? Buffer.from(certDerOrPem.replace(/-----[^-]+-----|\s/g, ""), "base64")
    : certDerOrPem;
  return createHash("sha256").update(der).digest("hex");
}

export function createSelfSigned(names: string[], commonName = "ServerMind"): SelfSigned {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const name = seq(set(seq(oid("2.5.4.3"), utf8(commonName))));
  const now = Date.now();
  const altNames = names.map((n) => (isIP(n) ? implicitPrim(7, ipBytes(n)) : implicitPrim(2, Buffer.from(n, "ascii"))));
  const extensions = seq(
    seq(oid("2.5.29.19"), bool(true), octets(seq())), // basicConstraints: not a CA
    seq(oid("2.5.29.15"), bool(true), octets(tlv(0x03, Uint8Array.of(7, 0x80)))), // keyUsage: digitalSignature
    seq(oid("2.5.29.37"), octets(seq(oid("1.3.6.1.5.5.7.3.1")))), // extKeyUsage: serverAuth
    seq(oid("2.5.29.17"), octets(seq(...altNames))), // subjectAltName
  );
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const tbs = seq(
    explicit(0, uint(Uint8Array.of(2))), // v3
    uint(serial),
    ECDSA_SHA256,
    name,
    seq(time(new Date(now - 3600_000)), time(new Date(now + 10 * 365 * 86400_000))),
    name,
    spki,
    explicit(3, extensions),
  );
  const signature = sign("sha256", tbs, privateKey);
  const cert = seq(tbs, ECDSA_SHA256, bitString(signature));
  return {
    certPem: pem("CERTIFICATE", cert),
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    fingerprint: certFingerprint(cert),
  };
}
