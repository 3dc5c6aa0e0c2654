/**
 * The console served by the real server (src/server.ts: TLS 1.3, HTTP/2) on 127.0.0.1, over a
 * fresh test database, for browser tests. `close()` stops the server and drops the database.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { consolePlugin, startConsole } from "../../src/web/plugin.ts";
import { commandsWithoutAgents } from "./security-views.ts";
import { testDatabase, type TestDb } from "./db.ts";
import type { SecurityCommandDeps } from "../../src/web/deps.ts";

export interface ConsoleServer {
  url: string;
  db: TestDb;
  setupCode: string;
  server: RunningServer;
  close(): Promise<void>;
}

/** `security`: how commands reach agents (default: signed, but no agent answers). */
export async function startConsoleServer(o: { security?: SecurityCommandDeps } = {}): Promise<ConsoleServer> {
  const db = await testDatabase(6);
  const dataDir = mkdtempSync(join(tmpdir(), "servermind-e2e-"));
  const cert = createSelfSigned(["127.0.0.1", "localhost"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir });
  const deps = {
    sql: db.sql, config, dataDir, serverFingerprint: cert.fingerprint,
    // commands of the security routes are signed but no agent answers them here
    security: o.security ?? commandsWithoutAgents(),
  };
  const started = await startConsole(deps, () => {});
  const server = startServer({
    config, sql: db.sql,
    cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
    plugins: [consolePlugin(deps)],
  });
  return {
    url: server.url, db, setupCode: started.setupCode!, server,
    async close() {
      started.stop();
      await server.stop();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
