/** Loads the configured certificate or creates (once) and reuses a self-signed one under dataDir/tls. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostname } from "node:os";
import { certFingerprint, createSelfSigned } from "./self-signed.ts";

export interface ServerCert {
  cert: string;
  key: string;
  fingerprint: string;
  generated: boolean;
  path: string;
}

export function loadOrCreateCert(opts: { certFile: string; keyFile: string; dataDir: string; names: string[] }): ServerCert {
  if (opts.certFile) {
    const cert = readFileSync(opts.certFile, "utf8");
    return { cert, key: readFileSync(opts.keyFile, "utf8"), fingerprint: certFingerprint(cert), generated: false, path: opts.certFile };
  }
  const dir = join(opts.dataDir, "tls");
  const certPath = join(dir, "server.crt");
  const keyPath = join(dir, "server.key");
  if (existsSync(certPath) && existsSync(keyPath)) {
    const cert = readFileSync(certPath, "utf8");
    return { cert, key: readFileSync(keyPath, "utf8"), fingerprint: certFingerprint(cert), generated: false, path: certPath };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const names = [...new Set(["localhost", "127.0.0.1", "::1", hostname(), ...opts.names])];
  const c = createSelfSigned(names);
  writeFileSync(keyPath, c.keyPem, { mode: 0o600 });
  writeFileSync(certPath, c.certPem, { mode: 0o644 });
  return { cert: c.certPem, key: c.keyPem, fingerprint: c.fingerprint, generated: true, path: certPath };
}
