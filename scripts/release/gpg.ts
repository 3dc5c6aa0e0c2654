/**
 * The release signing key, in a private GNUPGHOME of the build. SERVERMIND_SIGNING_KEY names an
 * armored secret key file (its signing subkey at least); without it a throwaway key is generated
 * (primary key for certification only, Ed25519 signing subkey, one day) and the build says so
 * loudly: such a release is for tests only.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./run.ts";

export interface Signer {
  home: string;
  /** The primary key's fingerprint. */
  fingerprint: string;
  throwaway: boolean;
  env: Record<string, string>;
  exportPublic(file: string): void;
  /** Armored detached signature `file.asc` (or `out`). */
  detach(file: string, out?: string): void;
  /** Binary detached signature (Release.gpg). */
  detachBinary(file: string, out: string): void;
  clearsign(file: string, out: string): void;
}

export function openSigner(log: (m: string) => void): Signer {
  const home = mkdtempSync(join(tmpdir(), "servermind-release-gpg-"));
  chmodSync(home, 0o700);
  const env = { ...process.env, GNUPGHOME: home } as Record<string, string>;
  const gpg = (args: string[], input?: string) => run(["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", process.env.SERVERMIND_SIGNING_PASSPHRASE ?? "", ...args], { env, input });
  const keyFile = process.env.SERVERMIND_SIGNING_KEY;
  let throwaway = false;
  if (keyFile) {
    gpg(["--import", keyFile]);
    log(`signing with the key from SERVERMIND_SIGNING_KEY (${keyFile})`);
  } else {
    throwaway = true;
    const banner = "*".repeat(78);
    log(`\n${banner}\n*** NO SIGNING KEY CONFIGURED (SERVERMIND_SIGNING_KEY): generating a THROWAWAY test key. ***\n*** This release is signed by a key nobody trusts: for tests only, never publish it.  ***\n${banner}\n`);
    writeFileSync(join(home, "gen"), "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: cert\nSubkey-Type: eddsa\nSubkey-Curve: ed25519\nSubkey-Usage: sign\nName-Real: ServerMind THROWAWAY test key\nName-Email: release-test@servermind.invalid\nExpire-Date: 1d\n%commit\n");
    gpg(["--gen-key", join(home, "gen")]);
  }
  const colons = gpg(["--with-colons", "--list-secret-keys"]).stdout;
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)?.[1];
  if (!fingerprint) throw new Error("no secret key in the release keyring");
  const u = ["--local-user", fingerprint];
  return {
    home, fingerprint, throwaway, env,
    exportPublic: (file) => writeFileSync(file, gpg(["--armor", "--export", fingerprint]).stdout),
    detach: (file, out = `${file}.asc`) => void gpg([...u, "--armor", "--detach-sign", "--output", out, file]),
    detachBinary: (file, out) => void gpg([...u, "--detach-sign", "--output", out, file]),
    clearsign: (file, out) => void gpg([...u, "--clearsign", "--output", out, file]),
  };
}

export function readKey(file: string): string {
  return readFileSync(file, "utf8");
}
