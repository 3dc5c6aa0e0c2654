/**
 * Server certificate pinning.
 *
 * At enrollment the agent reads the server's certificate over a raw TLS connection and compares
 * its SHA-256 (hex of the DER, as the server prints it) with the fingerprint the admin gave;
 * without one it trusts on first use and prints the fingerprint for the admin to check.
 * Afterwards every connection (fetch over h1/h2/h3, WebSocket) trusts only the pinned certificate
 * as CA and additionally checks the peer's fingerprint in checkServerIdentity, so a certificate
 * from any other source, even one a public CA signed, is refused.
 */
import { createHash, X509Certificate } from "node:crypto";
import { connect, type PeerCertificate } from "node:tls";

export class PinError extends Error {}

export function normalizeFingerprint(fp: string): string {
  return fp.replace(/^sha256[:=]/i, "").replace(/[:\s]/g, "").toLowerCase();
}

export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}

export function pemFingerprint(pem: string): string {
  return createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");
}

/** Reads the leaf certificate a TLS server presents, without trusting it. */
export function fetchPeerCertificate(serverUrl: string, timeoutMs = 10_000): Promise<{ pem: string; fingerprint: string }> {
  const u = new URL(serverUrl);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = Number(u.port || 443);
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port, servername: /^[\d.:]+$/.test(host) ? undefined : host, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new PinError(`no TLS handshake with ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once("secureConnect", () => {
      clearTimeout(timer);
      const cert = sock.getPeerCertificate(false) as PeerCertificate;
      sock.end();
      if (!cert?.raw?.length) return reject(new PinError(`${host}:${port} presented no certificate`));
      resolve({ pem: derToPem(cert.raw), fingerprint: createHash("sha256").update(cert.raw).digest("hex") });
    });
    sock.once("error", (e) => {
      clearTimeout(timer);
      reject(new PinError(`TLS connection to ${host}:${port} failed: ${e.message}`));
    });
  });
}

/** The fingerprint of a certificate object as fetch/WebSocket/tls hand it to checkServerIdentity. */
function peerFingerprint(cert: Partial<PeerCertificate> | undefined): string | undefined {
  if (!cert) return undefined;
  if (cert.raw?.length) return createHash("sha256").update(cert.raw).digest("hex");
  if (cert.fingerprint256) return normalizeFingerprint(cert.fingerprint256);
  return undefined;
}

export interface PinnedTls {
  ca: string;
  rejectUnauthorized: true;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
}

/** TLS options that accept only the pinned certificate. */
export function pinnedTls(pem: string, fingerprint: string): PinnedTls {
  const want = normalizeFingerprint(fingerprint);
  return {
    ca: pem,
    rejectUnauthorized: true,
    checkServerIdentity(_host, cert) {
      const got = peerFingerprint(cert);
      if (got !== want) return new PinError(`server certificate ${got ?? "(unknown)"} does not match the pinned fingerprint ${want}`);
      return undefined;
    },
  };
}
