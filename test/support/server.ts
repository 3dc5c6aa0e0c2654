/** Starts the real server (real TLS, real PostgreSQL) on 127.0.0.1 for a test file. */
import { loadConfig, type Config } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { testDatabase, type TestDb } from "./db.ts";

let cert: ReturnType<typeof createSelfSigned> | undefined;

export interface TestServer extends RunningServer {
  db: TestDb;
  config: Config;
  token(): Promise<string>;
  close(): Promise<void>;
}

export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const db = await testDatabase();
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(db.sql, t);
  cert ??= createSelfSigned(["127.0.0.1", "localhost"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", ...env });
  const s = startServer({ config, sql: db.sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" } });
  return Object.assign(s, {
    db,
    config,
    token: async () => (await createActivationToken(db.sql, { createdBy: "test" })).token,
    async close() {
      await s.stop();
      await db.drop();
    },
  });
}
