/**
 * The license command (`npm run license -- ...`):
 *   show FILE            verify a license file against the vendor key and print it (no database)
 *   install FILE         verify it and put it where the server reads it (<data dir>/license.txt or
 *                        SERVERMIND_LICENSE_FILE); the running server picks it up within a minute
 *   status               the installed license (or community mode), agents enrolled, warnings
 * Vendor side, for development and tests (the real vendor key never leaves the vendor):
 *   keygen --out FILE    a new Ed25519 private key (PKCS#8 PEM, mode 0600); prints the public key
 *   sign --key FILE --licensee NAME --seats N --expires DATE [--id ID] [--issued DATE]
 *        [--features a,b] [--out FILE]
 * install and status open the configured database (as src/cli.ts does) to count agents and audit.
 */
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { cliAccount } from "../cli-account.ts";
import { loadConfig } from "../config.ts";
import { LicenseError, rawPublicKey, signLicense, verifyLicense, type LicensePayload } from "./format.ts";
import { vendorKey } from "./key.ts";
import { installLicenseFile, licensePath, readInstalled } from "./service.ts";
import { evaluate } from "./state.ts";

const USAGE = "usage: license show FILE | install FILE | status | keygen --out FILE | sign --key FILE --licensee NAME --seats N --expires DATE [--id ID] [--issued DATE] [--features a,b] [--out FILE]";

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function describe(l: LicensePayload): string {
  return [
    `licensee:   ${l.licensee}`,
    `id:         ${l.id}`,
    `seats:      ${l.seats} agents`,
    `issued:     ${l.issuedAt}`,
    `expires:    ${l.expiresAt}${Date.parse(l.expiresAt) <= Date.now() ? " (EXPIRED)" : ""}`,
    `features:   ${l.features.join(", ") || "(none listed)"}`,
  ].join("\n");
}

async function withDatabase<T>(fn: (sql: import("postgres").Sql) => Promise<T>): Promise<T> {
  const { openDatabase } = await import("../db.ts");
  const { loadAuditKeys, useAuditKeys } = await import("../audit/keys.ts");
  const config = loadConfig();
  useAuditKeys(loadAuditKeys(config.dataDir), config.dataDir);
  const db = await openDatabase(config, () => {}, { shareRunning: true });
  try {
    return await fn(db.sql);
  } finally {
    await db.close();
  }
}

function cliActor(): string {
  return cliAccount();
}

async function run(args: string[]): Promise<number> {
  const [verb, file] = args;
  const key = vendorKey();
  if (key.overridden) console.error("NOTE: SERVERMIND_LICENSE_PUBLIC_KEY is set: verifying against that development key, not the vendor key");
  try {
    switch (verb) {
      case "show": {
        if (!file) break;
        console.log(describe(verifyLicense(readFileSync(file, "utf8"), key.key)));
        console.log("signature:  valid");
        return 0;
      }
      case "install": {
        if (!file) break;
        const config = loadConfig();
        const path = licensePath(config.dataDir);
        const l = installLicenseFile(path, readFileSync(file, "utf8"), key);
        console.log(describe(l));
        console.log(`installed:  ${path} (the server reads it within a minute)`);
        await withDatabase(async (sql) => {
          const { audit } = await import("../audit/audit.ts");
          await audit(sql, {
            actor: { type: "system", name: cliActor() }, ip: "local", userAgent: "servermind-cli", category: "config_change",
            action: "license.install", target: `license ${l.id}`, success: true,
            details: { licensee: l.licensee, seats: l.seats, expiresAt: l.expiresAt, features: l.features },
          });
        });
        return 0;
      }
      case "status": {
        const config = loadConfig();
        const path = licensePath(config.dataDir);
        const inst = readInstalled(path, key);
        const agents = await withDatabase(async (sql) => Number((await sql`select count(*)::int as n from agents where revoked_at is null`)[0]!.n));
        const s = evaluate({ license: inst.license, agents, now: new Date(), fileProblem: inst.problem, keyOverridden: key.overridden });
        console.log(s.license ? describe(s.license) : "no license installed: community mode");
        console.log(`state:      ${s.state}\nagents:     ${s.agents} of ${s.seats}\nfile:       ${path}`);
        for (const w of s.warnings) console.log(`warning:    ${w}`);
        return 0;
      }
      case "keygen": {
        const out = flag(args, "--out");
        if (!out) break;
        const { publicKey, privateKey } = generateKeyPairSync("ed25519");
        writeFileSync(out, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600, flag: "wx" });
        console.log(rawPublicKey(publicKey));
        return 0;
      }
      case "sign": {
        const keyFile = flag(args, "--key"), licensee = flag(args, "--licensee"), seats = Number(flag(args, "--seats")), expires = flag(args, "--expires");
        if (!keyFile || !licensee || !expires) break;
        const text = signLicense({
          v: 1, id: flag(args, "--id") ?? randomUUID(), licensee, seats,
          issuedAt: new Date(flag(args, "--issued") ?? Date.now()).toISOString(), expiresAt: new Date(expires).toISOString(),
          features: (flag(args, "--features") ?? "").split(",").map((f) => f.trim()).filter(Boolean),
        }, readFileSync(keyFile, "utf8"));
        const out = flag(args, "--out");
        if (out) writeFileSync(out, text);
        else process.stdout.write(text);
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof LicenseError) {
      console.error(`license refused: ${e.message}`);
      return 1;
    }
    console.error(`license: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  console.error(USAGE);
  return 2;
}

process.exit(await run(process.argv.slice(2)));
