/**
 * `npm run audit:verify`: verifies the live audit chain (keyed hashes with the HMAC key, signed
 * checkpoints with the public key) and exits 0 when intact, 1 when tampering is detected.
 * Uses DATABASE_URL, or the embedded PostgreSQL under SERVERMIND_DATA.
 *
 * `npm run audit:verify -- --export FILE --public-key FILE [--hmac-key FILE]`: offline, no
 * database: verifies a chain export against the checkpoint public key (and the HMAC key, if
 * given). `bun src/audit/cli.ts export --out FILE` writes such an export.
 */
import { loadConfig } from "../config.ts";
import { createPgClient } from "../store/postgres/client.ts";
import { startEmbeddedPg } from "../store/postgres/embedded.ts";
import { createWriteStream, readFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { verifyAuditChain, type ChainReport } from "./verify.ts";
import { exportChain, verifyChainExport } from "./chain-export.ts";
import { loadAuditKeys, useAuditKeys } from "./keys.ts";

const USAGE = "usage: bun src/audit/cli.ts verify [--export FILE --public-key FILE [--hmac-key FILE]] | export --out FILE";

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function report(r: ChainReport): number {
  const pins = `${r.checkpoints} signed checkpoints verified, ${r.unpinned} newest records not yet under a checkpoint`;
  if (r.ok) {
    console.log(`audit chain intact: ${r.checked} records (ids ${r.firstId ?? "-"}..${r.lastId ?? "-"}); ${pins}${r.keyed ? "" : "; keyed hashes not recomputed (no HMAC key)"}`);
    return 0;
  }
  console.error(`audit chain TAMPERED at record ${r.brokenAt!.id}: ${r.brokenAt!.reason} (${r.checked} records verified before it)`);
  return 1;
}

async function withDatabase<T>(fn: (sql: ReturnType<typeof createPgClient>) => Promise<T>): Promise<T> {
  const config = loadConfig();
  useAuditKeys(loadAuditKeys(config.dataDir), config.dataDir);
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPg({ dataDir: join(config.dataDir, "pg") });
  const sql = createPgClient(config.databaseUrl || embedded!.url, 2);
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
    await embedded?.stop();
  }
}

export async function runAuditCli(argv: string[]): Promise<number> {
  const [cmd] = argv;
  if (cmd === "verify" && flag(argv, "--export")) {
    const pub = flag(argv, "--public-key");
    if (!pub) {
      console.error("verify --export needs --public-key FILE (the audit-checkpoint.pub of the server)");
      return 2;
    }
    const hmacFile = flag(argv, "--hmac-key");
    const hmac = hmacFile ? Buffer.from(readFileSync(hmacFile, "utf8").trim(), "base64") : undefined;
    return report(await verifyChainExport(flag(argv, "--export")!, readFileSync(pub, "utf8"), hmac));
  }
  if (cmd === "verify") return withDatabase(async (sql) => report(await verifyAuditChain(sql)));
  if (cmd === "export" && flag(argv, "--out")) {
    const out = flag(argv, "--out")!;
    return withDatabase(async (sql) => {
      await exportChain(sql).pipeTo(Writable.toWeb(createWriteStream(out, { mode: 0o600 })));
      console.log(`audit chain exported to ${out}`);
      return 0;
    });
  }
  console.error(USAGE);
  return 2;
}

if (import.meta.main) {
  process.exit(await runAuditCli(process.argv.slice(2)));
}
