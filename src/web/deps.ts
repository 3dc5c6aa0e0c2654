/** What the console needs from the composition root, and the services built from it once. */
import type { Sql } from "postgres";
import type { Config } from "../config.ts";
import type { Renderer } from "./render.ts";
import type { SettingsStore } from "../settings/console-settings.ts";
import type { SecretBox } from "../auth/secret-box.ts";

export interface ConsoleDeps {
  sql: Sql;
  config: Config;
  dataDir: string;
  /** SHA-256 of the server certificate (hex), shown in the agent install one-liner. */
  serverFingerprint: string;
  /**
   * Overrides how the client's address is found. By default the console reads what the
   * server's fetch wrapper recorded (src/http/client-ip.ts); tests of app.handle() set this.
   */
  clientIp?: (req: Request) => string | undefined | null;
  /** Where `npm run build:agent` wrote the binaries and SHA256SUMS (default dist/agent). */
  agentDistDir?: string;
}

export interface ConsoleServices extends ConsoleDeps {
  settings: SettingsStore;
  views: Renderer;
  /** seals TOTP keys at rest (key: SERVERMIND_SECRET_KEY or <dataDir>/secret.key) */
  secrets: SecretBox;
}
