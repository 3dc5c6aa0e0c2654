/**
 * `bun src/audit/cli.ts verify`: re-computes the audit hash chain and exits 0 when intact,
 * 1 when a record was changed, removed or reordered. Uses DATABASE_URL, or the embedded
 * PostgreSQL under SERVERMIND_DATA (stop the server first: the embedded data dir is locked).
 */
import { loadConfig } from "../config.ts";
import { createPgClient } from "../store/postgres/client.ts";
import { startEmbeddedPg } from "../store/postgres/embedded.ts";
import { join } from "node:path";
import { verifyAuditChain } from "./audit.ts";

export async function runAuditCli(argv: string[]): Promise<number> {
  const [cmd] = argv;
  if (cmd !== "verify") {
    console.error("usage: bun src/audit/cli.ts verify");
    return 2;
  }
  const config = loadConfig();
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPg({ dataDir: join(config.dataDir, "pg") });
  const sql = createPgClient(config.databaseUrl || embedded!.url, 2);
  try {
    const r = await verifyAuditChain(sql);
    if (r.ok) {
      console.log(`audit chain intact: ${r.checked} records (ids ${r.firstId ?? "-"}..${r.lastId ?? "-"})`);
      return 0;
    }
    console.error(`audit chain BROKEN at record ${r.brokenAt!.id}: ${r.brokenAt!.reason} (${r.checked} records verified before it)`);
    return 1;
  } finally {
    await sql.end({ timeout: 5 });
    await embedded?.stop();
  }
}

if (import.meta.main) {
  process.exit(await runAuditCli(process.argv.slice(2)));
}
