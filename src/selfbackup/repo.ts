/**
 * Where self-backups go and how the repository is unlocked, from the operator's settings:
 *   destination  --dest, or SERVERMIND_SELF_BACKUP_DEST: a directory (local or mounted), or a
 *                JSON file (mode 0600) with any destination's configuration (docs/backup-format.md#destinations)
 *   password     SERVERMIND_SELF_BACKUP_PASSWORD_FILE (a file, first line), or SERVERMIND_SELF_BACKUP_PASSWORD
 *   recovery key SERVERMIND_SELF_BACKUP_RECOVERY_KEY_FILE / _RECOVERY_KEY, instead of the password
 * The password never goes to the destination (only keys wrapped under it do) and is never printed.
 */
import { readFileSync, statSync } from "node:fs";
import { openDestination, redact, type ClosableDestination, type DestinationConfig } from "../../agent/backup/destinations.ts";
import { Repository } from "../../agent/backup/repository.ts";
import { SelfBackupError } from "./error.ts";

type Env = Record<string, string | undefined>;

export function destinationConfig(dest: string | undefined, env: Env = process.env): DestinationConfig {
  const d = dest || env.SERVERMIND_SELF_BACKUP_DEST;
  if (!d) throw new SelfBackupError("usage", "no destination: give --dest DIR|FILE.json or set SERVERMIND_SELF_BACKUP_DEST");
  if (d.endsWith(".json") && statSync(d, { throwIfNoEntry: false })?.isFile()) return JSON.parse(readFileSync(d, "utf8")) as DestinationConfig;
  return { type: "local", path: d };
}

/** The destination's description with its secrets masked, for output and logs. */
export const describeDestination = (cfg: DestinationConfig) => JSON.stringify(redact(cfg));

function secret(env: Env, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) return readFileSync(file, "utf8").split("\n")[0]!.trim();
  return env[name] || undefined;
}

export function repositoryPassword(env: Env = process.env): string {
  const p = secret(env, "SERVERMIND_SELF_BACKUP_PASSWORD");
  if (!p) throw new SelfBackupError("usage", "no repository password: set SERVERMIND_SELF_BACKUP_PASSWORD_FILE (or SERVERMIND_SELF_BACKUP_PASSWORD)");
  return p;
}

/** Opens the repository with the password, or the recovery key when one is given. */
export async function openRepository(dest: ClosableDestination, env: Env = process.env): Promise<Repository> {
  const recoveryKey = secret(env, "SERVERMIND_SELF_BACKUP_RECOVERY_KEY");
  return await Repository.open(dest, recoveryKey ? { recoveryKey } : repositoryPassword(env));
}

export { openDestination };
