/**
 * `npm run backup -- <command>`: backups of ServerMind itself (docs/operations.md, "Backing up
 * ServerMind and disaster recovery"). Destination: --dest DIR|FILE.json or
 * SERVERMIND_SELF_BACKUP_DEST; password: SERVERMIND_SELF_BACKUP_PASSWORD_FILE (or _PASSWORD);
 * the recovery key (SERVERMIND_SELF_BACKUP_RECOVERY_KEY_FILE or _RECOVERY_KEY) opens it instead.
 *   init                                  creates the repository; prints the recovery key once
 *   run                                   backs up the database (SERVERMIND_DATA's embedded one,
 *                                         or DATABASE_URL) and the data directory's keys and secrets
 *   list                                  the self-backup snapshots, one JSON line each
 *   verify                                reads back every chunk; exit 1 when anything is wrong
 *   restore SNAPSHOT|latest --data-dir NEWDIR   rebuilds an empty data directory (and, with
 *                                         DATABASE_URL, loads that empty database instead of a new embedded one)
 *   forget [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--prune]
 * `run` and `restore` are audited (action selfbackup.run / selfbackup.restore).
 */
import { cliAccount } from "../cli-account.ts";
import { BackupError } from "../../agent/backup/error.ts";
import { forget, prune } from "../../agent/backup/prune.ts";
import { Repository } from "../../agent/backup/repository.ts";
import { verify } from "../../agent/backup/verify.ts";
import { loadConfig } from "../config.ts";
import type { AuditEvent } from "../audit/audit.ts";
import { SelfBackupError } from "./error.ts";
import { describeDestination, destinationConfig, openDestination, openRepository, repositoryPassword } from "./repo.ts";
import { listSelfSnapshots, restoreSelfBackup } from "./selfbackup.ts";
import { backupNow } from "./run.ts";

const USAGE = "usage: backup [--dest DIR|FILE.json] init | run | list | verify | restore SNAPSHOT|latest --data-dir NEWDIR | forget [--keep-last N ...] [--prune]";

function parse(argv: string[]) {
  const pos: string[] = [];
  const opt = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--prune") opt.set("prune", "1");
    else if (a.startsWith("--")) opt.set(a.slice(2), argv[++i] ?? "");
    else pos.push(a);
  }
  return { pos, opt };
}

function cliActor(): AuditEvent["actor"] {
  return { type: "system", name: cliAccount() };
}

const out = (v: unknown) => console.log(JSON.stringify(v));

export async function runBackupCli(argv: string[]): Promise<number> {
  const { pos, opt } = parse(argv);
  const [cmd, ...args] = pos;
  if (!cmd) throw new SelfBackupError("usage", USAGE);
  const cfg = destinationConfig(opt.get("dest"));
  const dest = openDestination(cfg);
  try {
    if (cmd === "init") {
      const { repo, recoveryKey } = await Repository.init(dest, repositoryPassword());
      out({ id: repo.config.id, destination: JSON.parse(describeDestination(cfg)) });
      console.error("Recovery key (shown once, stored nowhere; keep it offline, apart from the password):");
      console.log(recoveryKey);
      return 0;
    }
    const repo = await openRepository(dest);
    switch (cmd) {
      case "run": {
        const config = loadConfig();
        const r = await backupNow(repo, config, { actor: cliActor(), userAgent: "servermind-cli" });
        out({ snapshot: r.snapshot.id, time: r.snapshot.time, tables: r.tables, rows: r.rows, files: r.files, ms: r.ms, stored: r.snapshot.stats });
        return 0;
      }
      case "list":
        for (const s of await listSelfSnapshots(repo)) out({ id: s.id, time: s.time, ...s.stats });
        return 0;
      case "verify": {
        const r = await verify(repo);
        for (const e of r.errors) console.error(e);
        out(r);
        return r.ok ? 0 : 1;
      }
      case "restore": {
        const dataDir = opt.get("data-dir");
        if (args.length !== 1 || !dataDir) throw new SelfBackupError("usage", "restore SNAPSHOT|latest --data-dir NEWDIR");
        const r = await restoreSelfBackup(repo, args[0]!, {
          dataDir, databaseUrl: process.env.DATABASE_URL || undefined, actor: cliActor(), log: (l) => console.error(l),
        });
        out({ snapshot: r.snapshot.id, time: r.snapshot.time, files: r.files, tables: r.tables, rows: r.rows, external: r.external, ms: r.ms });
        console.error(`restored into ${dataDir}; start the server with SERVERMIND_DATA=${dataDir}${process.env.DATABASE_URL ? " and the same DATABASE_URL" : ""}, then run npm run audit:verify`);
        return 0;
      }
      case "forget": {
        const num = (k: string) => (opt.has(k) ? Number(opt.get(k)) : undefined);
        const r = await forget(repo, { last: num("keep-last"), daily: num("keep-daily"), weekly: num("keep-weekly"), monthly: num("keep-monthly") });
        out(opt.has("prune") ? { ...r, ...(await prune(repo)) } : r);
        return 0;
      }
      default:
        throw new SelfBackupError("usage", USAGE);
    }
  } finally {
    await dest.close?.();
  }
}

if (import.meta.main) {
  runBackupCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      if (e instanceof SelfBackupError || e instanceof BackupError) console.error(`backup failed (${e.code}): ${e.message}`);
      else console.error(`backup failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(e instanceof SelfBackupError && e.code === "usage" ? 2 : 1);
    },
  );
}
