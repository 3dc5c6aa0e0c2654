/**
 * Admin commands against the configured database (embedded or DATABASE_URL):
 *   bun src/cli.ts token create [--label TEXT] [--ttl-hours N]
 *   bun src/cli.ts agent revoke ID
 * The embedded database must not be in use by a running server when the CLI starts it;
 * with a running server, point DATABASE_URL at the same PostgreSQL instead.
 * Every command is audited like its console counterpart, the actor being the operating-system
 * user who ran it (category config_change, user agent "servermind-cli").
 */
import { cliAccount } from "./cli-account.ts";
import { loadConfig } from "./config.ts";
import { openDatabase } from "./db.ts";
import { createActivationToken, revokeAgent } from "./ingest/agent/enroll.ts";
import { audit, type AuditEvent } from "./audit/audit.ts";
import { loadAuditKeys, useAuditKeys } from "./audit/keys.ts";

function cliActor(): AuditEvent["actor"] {
  return { type: "system", name: cliAccount() };
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const USAGE = "usage: servermind token create [--label TEXT] [--ttl-hours N] | agent revoke ID";

async function run(args: string[]): Promise<number> {
  const [noun, verb] = args;
  if (!(noun === "token" && verb === "create") && !(noun === "agent" && verb === "revoke")) {
    console.error(USAGE);
    return 2;
  }
  const config = loadConfig();
  useAuditKeys(loadAuditKeys(config.dataDir), config.dataDir);
  const db = await openDatabase(config, () => {}, { shareRunning: true });
  const record = (action: string, target: string, success: boolean, details: Record<string, unknown> = {}) =>
    audit(db.sql, { actor: cliActor(), ip: "local", userAgent: "servermind-cli", category: "config_change", action, target, success, details });
  try {
    if (noun === "token") {
      const ttl = Number(flag(args, "--ttl-hours") ?? 24);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 24 * 365) {
        console.error("--ttl-hours must be a whole number from 1 to 8760");
        return 2;
      }
      const t = await createActivationToken(db.sql, { label: flag(args, "--label"), createdBy: "cli", ttlHours: ttl });
      await record("agents.token.create", `token ${t.id}`, true, { label: flag(args, "--label") ?? "", expires: t.expiresAt.toISOString() });
      console.log(t.token);
      console.error(`activation token #${t.id}, single use, expires ${t.expiresAt.toISOString()}`);
      return 0;
    }
    const id = Number(args[2]);
    if (!Number.isInteger(id) || id < 1) {
      console.error("agent revoke needs a numeric agent id");
      return 2;
    }
    const ok = await revokeAgent(db.sql, id);
    await record("agents.revoke", `agent ${id}`, ok);
    console.log(ok ? `agent ${id} revoked` : `agent ${id} not found or already revoked`);
    return ok ? 0 : 1;
  } finally {
    await db.close();
  }
}

process.exit(await run(process.argv.slice(2)));
