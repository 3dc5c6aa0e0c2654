/**
 * Small command line for the backup engine (used by the bench and the kill -9 test):
 *   bun agent/backup/cli.ts --repo DIR <command> [args]
 *   bun agent/backup/cli.ts --dest-config FILE.json <command> [args]   (any destination: destinations.ts)
 * The password comes from SERVERMIND_BACKUP_PASSWORD (or SERVERMIND_BACKUP_RECOVERY_KEY to
 * open with the recovery key). Each command prints one JSON line on stdout.
 *   init [--chunk-min B --chunk-avg B --chunk-max B] [--pack-size B]   prints the recovery key once
 *   backup PATH... [--exclude GLOB]... [--host NAME]
 *   snapshots
 *   restore SNAPSHOT|latest TARGET [--include PATH]...
 *   verify                                exit 1 if anything is wrong
 *   forget [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--prune]
 *   prune
 */
import { backup } from "./backup.ts";
import type { Destination } from "./destination.ts";
import { BackupError } from "./error.ts";
import type { DestinationConfig } from "./destinations.ts";
import { LocalDestination } from "./local.ts";
import { forget, prune } from "./prune.ts";
import { Repository } from "./repository.ts";
import { restore } from "./restore.ts";
import { listSnapshots } from "./snapshots.ts";
import { verify } from "./verify.ts";

function parse(argv: string[]) {
  const pos: string[] = [];
  const opt = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--prune" || a === "--no-fsync") opt.set(a.slice(2), ["1"]);
    else if (a.startsWith("--")) opt.set(a.slice(2), [...(opt.get(a.slice(2)) ?? []), argv[++i] ?? ""]);
    else pos.push(a);
  }
  return { pos, opt };
}

const out = (v: unknown) => console.log(JSON.stringify(v));

async function main(argv: string[]): Promise<number> {
  const { pos, opt } = parse(argv);
  const dir = opt.get("repo")?.[0];
  const destConfig = opt.get("dest-config")?.[0];
  const [cmd, ...args] = pos;
  if ((!dir && !destConfig) || !cmd) throw new BackupError("usage", "usage: cli.ts --repo DIR|--dest-config FILE init|backup|snapshots|restore|verify|forget|prune ...");
  // destinations.ts (and the SDKs of S3, Azure, SFTP, …) is loaded only when asked for: loading it
  // costs about 0.2 s, a tenth of a local restore of the bench tree.
  const dest = destConfig
    ? (await import("./destinations.ts")).openDestination((await Bun.file(destConfig).json()) as DestinationConfig)
    : new LocalDestination(dir!, !opt.has("no-fsync"));
  try {
    return await command(dest, cmd, args, opt);
  } finally {
    await (dest as { close?(): Promise<void> }).close?.();
  }
}

async function command(dest: Destination, cmd: string, args: string[], opt: Map<string, string[]>): Promise<number> {
  const password = process.env.SERVERMIND_BACKUP_PASSWORD ?? "";
  const recoveryKey = process.env.SERVERMIND_BACKUP_RECOVERY_KEY;
  if (cmd === "init") {
    const sizes = ["min", "avg", "max"].map((k) => Number(opt.get(`chunk-${k}`)?.[0] ?? 0));
    const chunker = sizes.every((n) => n > 0) ? { min: sizes[0]!, avg: sizes[1]!, max: sizes[2]! } : undefined;
    const packSize = Number(opt.get("pack-size")?.[0] ?? 0) || undefined;
    const { repo, recoveryKey: rk } = await Repository.init(dest, password, { chunker, packSize });
    out({ id: repo.config.id, recovery_key: rk });
    return 0;
  }
  const repo = await Repository.open(dest, recoveryKey ? { recoveryKey } : password);
  const num = (k: string) => (opt.has(k) ? Number(opt.get(k)![0]) : undefined);
  switch (cmd) {
    case "backup": {
      const snap = await backup(repo, args, { excludes: opt.get("exclude"), host: opt.get("host")?.[0] });
      out({ id: snap.id, ...snap.stats });
      return 0;
    }
    case "snapshots":
      for (const s of await listSnapshots(repo)) out({ id: s.id, time: s.time, host: s.host, paths: s.paths, ...s.stats });
      return 0;
    case "restore": {
      if (args.length !== 2) throw new BackupError("usage", "restore SNAPSHOT TARGET");
      out(await restore(repo, args[0]!, args[1]!, { include: opt.get("include") }));
      return 0;
    }
    case "verify": {
      const r = await verify(repo);
      for (const e of r.errors) console.error(e);
      out(r);
      return r.ok ? 0 : 1;
    }
    case "forget": {
      const r = await forget(repo, { last: num("keep-last"), daily: num("keep-daily"), weekly: num("keep-weekly"), monthly: num("keep-monthly") });
      out(opt.has("prune") ? { ...r, ...(await prune(repo)) } : r);
      return 0;
    }
    case "prune":
      out(await prune(repo));
      return 0;
    default:
      throw new BackupError("usage", `unknown command ${cmd}`);
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e instanceof BackupError ? `error (${e.code}): ${e.message}` : e);
      process.exit(e instanceof BackupError && e.code === "usage" ? 2 : 1);
    },
  );
}
