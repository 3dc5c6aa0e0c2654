/**
 * A throwaway PostgreSQL cluster from the Debian packages (/usr/lib/postgresql/<major>/bin), of
 * the same major version as the `pg_dump` on PATH, for tests of database dumps (the embedded
 * server is another major version, which pg_dump refuses). Runs as user postgres when we are
 * root; trust authentication on 127.0.0.1 only; stopped by the test that started it.
 */
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/store/postgres/embedded.ts";

export interface PgCluster {
  port: number;
  /** runs psql as postgres against `db` */
  psql(db: string, sql: string): Promise<string>;
  stop(): Promise<void>;
}

/** The bin directory of the server matching `pg_dump --version`, or null when there is none. */
export function pgBinDir(): string | null {
  const v = Bun.spawnSync(["pg_dump", "--version"], { stdout: "pipe", stderr: "pipe" });
  const major = v.exitCode === 0 ? /(\d+)\.\d+/.exec(v.stdout.toString())?.[1] : undefined;
  if (!major) return null;
  const dir = `/usr/lib/postgresql/${major}/bin`;
  return existsSync(join(dir, "postgres")) && existsSync(join(dir, "initdb")) ? dir : null;
}

export async function startPgCluster(bin: string): Promise<PgCluster> {
  const root = userInfo().uid === 0;
  const base = mkdtempSync(join(tmpdir(), "sm-pgcluster-"));
  const data = join(base, "data");
  const ids = root ? { uid: Number(Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString().trim()), gid: Number(Bun.spawnSync(["id", "-g", "postgres"]).stdout.toString().trim()) } : null;
  if (ids) chownSync(base, ids.uid, ids.gid);
  const as = (argv: string[]) => (root ? ["runuser", "-u", "postgres", "--", ...argv] : argv);
  const init = Bun.spawnSync(as([join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]), { stdout: "pipe", stderr: "pipe" });
  if (init.exitCode !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort(); // not a random one, which another test's connection may hold
  const proc = Bun.spawn(as([join(bin, "postgres"), "-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${base}`, "-c", "fsync=off"]), { stdout: "ignore", stderr: "pipe" });
  const psql = async (db: string, sql: string) => {
    const p = Bun.spawn([join(bin, "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`psql: ${err}`);
    return out.trim();
  };
  const end = Date.now() + 30_000;
  for (;;) {
    try {
      await psql("postgres", "select 1");
      break;
    } catch (e) {
      if (Date.now() > end || proc.exitCode !== null) {
        proc.kill("SIGKILL");
        throw new Error(`PostgreSQL ${bin} did not start: ${e instanceof Error ? e.message : e}`);
      }
      await Bun.sleep(200);
    }
  }
  return {
    port,
    psql,
    async stop() {
      proc.kill("SIGINT");
      await Promise.race([proc.exited, Bun.sleep(10_000)]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
      rmSync(base, { recursive: true, force: true });
    },
  };
}
