/** What the console needs from the composition root, and the services built from it once. */
import type { Sql } from "postgres";
import type { Config } from "../config.ts";
import type { Renderer } from "./render.ts";
import type { SettingsStore } from "../settings/console-settings.ts";

export interface ConsoleDeps {
  sql: Sql;
  config: Config;
  dataDir: string;
  /** SHA-256 of the server certificate (hex), shown in the agent install one-liner. */
  serverFingerprint: string;
  /**
   * The client's address for a request. Bun.serve knows it (`server.requestIP(req)`), an
   * in-process `app.handle()` does not; without this the audit trail records "unknown".
   */
  clientIp?: (req: Request) => string | undefined | null;
}

export interface ConsoleServices extends ConsoleDeps {
  settings: SettingsStore;
  views: Renderer;
}
