/**
 * A real ClickHouse for tests: CLICKHOUSE_URL when set, otherwise a clickhouse-server (the
 * Debian package) started from a config written under a temp dir, listening on 127.0.0.1 on a
 * free HTTP port. The caller stops what it started; stop()/start() also drive outage tests.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BINARIES = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"];

export function clickhouseBinary(): string | undefined {
  for (const b of BINARIES) if (existsSync(b)) return b;
  const r = spawnSync("sh", ["-c", "command -v clickhouse-server"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

export const hasClickhouse = Boolean(process.env.CLICKHOUSE_URL) || clickhouseBinary() !== undefined;
/** A local clickhouse-server binary that outage tests can stop and start. */
export const hasClickhouseServer = clickhouseBinary() !== undefined;

import { freePort } from "../../src/store/postgres/embedded.ts";
export { freePort };

export interface TestClickhouse {
  url: string;
  /** A database name of its own for the caller (created by the store's ensureSchema). */
  database: string;
  /** Kills the server (an outage); data stays on disk. No-op with an external CLICKHOUSE_URL. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops the server for good and removes its files. */
  close(): Promise<void>;
}

let counter = 0;

function configXml(dir: string, httpPort: number, tcpPort: number): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/log/server.log</log><errorlog>${dir}/log/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <mlock_executable>false</mlock_executable>
  <timezone>UTC</timezone>
</yandex>
`;
}

const USERS = `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`;

async function waitReady(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`${url}/ping`);
      if (r.ok) return;
    } catch {}
    await Bun.sleep(100);
  }
  throw new Error(`clickhouse-server at ${url} did not answer /ping within ${ms} ms`);
}

/**
 * `own: true` always starts a local server, for tests that stop and start it (outages); those
 * need the clickhouse-server binary even when CLICKHOUSE_URL is set.
 */
export async function startTestClickhouse(o: { own?: boolean } = {}): Promise<TestClickhouse> {
  const database = `t_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  if (process.env.CLICKHOUSE_URL && !o.own) {
    const url = process.env.CLICKHOUSE_URL;
    return { url, database, stop: async () => {}, start: async () => {}, close: async () => {} };
  }
  const bin = clickhouseBinary();
  if (!bin) throw new Error("clickhouse-server is not installed (apt-get install clickhouse-server)");
  const dir = mkdtempSync(join(tmpdir(), "servermind-test-ch-"));
  for (const d of ["data", "tmp", "log", "user_files", "format_schemas"]) mkdirSync(join(dir, d), { recursive: true });
  const httpPort = await freePort();
  const tcpPort = await freePort();
  writeFileSync(join(dir, "config.xml"), configXml(dir, httpPort, tcpPort));
  writeFileSync(join(dir, "users.xml"), USERS);
  const url = `http://127.0.0.1:${httpPort}`;
  let proc: ChildProcess | undefined;
  const start = async () => {
    if (proc) return;
    proc = spawn(bin, [`--config-file=${join(dir, "config.xml")}`], { cwd: dir, stdio: "ignore" });
    const p = proc;
    p.once("exit", () => {
      if (proc === p) proc = undefined;
    });
    await waitReady(url, 30_000);
  };
  const stop = async () => {
    const p = proc;
    if (!p) return;
    proc = undefined;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGKILL");
    await exited;
  };
  await start();
  return {
    url,
    database,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
