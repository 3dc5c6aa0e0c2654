/**
 * Composition root: read config, open the database, start partition upkeep, the console's
 * background work and the server; on SIGINT/SIGTERM stop them in reverse order.
 */
import { loadConfig } from "./config.ts";
import { openDatabase } from "./db.ts";
import { loadOrCreateCert } from "./tls/certs.ts";
import { startServer } from "./server.ts";
import { startPartitionUpkeep, timeSeriesTables } from "./store/postgres/partitions.ts";
import { consolePlugin, startConsole } from "./web/plugin.ts";

async function main(): Promise<void> {
  const config = loadConfig();
  const db = await openDatabase(config);
  const upkeep = startPartitionUpkeep(db.sql, timeSeriesTables(config.retentionMetricsDays, config.retentionLogsDays));
  await upkeep.ready;
  const cert = loadOrCreateCert({ certFile: config.tlsCert, keyFile: config.tlsKey, dataDir: config.dataDir, names: config.tlsNames });
  if (cert.generated) console.log(`generated a self-signed certificate: ${cert.path}`);
  const consoleDeps = { sql: db.sql, config, dataDir: config.dataDir, serverFingerprint: cert.fingerprint };
  const consoleRuntime = await startConsole(consoleDeps);
  const server = startServer({ config, sql: db.sql, cert, plugins: [consolePlugin(consoleDeps)] });
  console.log(`ServerMind listening on ${server.url} (TLS 1.3; HTTP/1.1, HTTP/2${config.http3 ? ", HTTP/3" : ""}, WSS)`);
  console.log(`server certificate SHA-256 fingerprint (pin it in agents): ${cert.fingerprint}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping`);
    await server.stop();
    consoleRuntime.stop();
    upkeep.stop();
    await db.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((e) => {
  console.error(`servermind: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
