/** What the console needs from the composition root, and the services built from it once. */
import type { Sql } from "postgres";
import type { Config } from "../config.ts";
import type { Renderer } from "./render.ts";
import type { SettingsStore } from "../settings/console-settings.ts";
import type { SecretBox } from "../auth/secret-box.ts";
import type { RangeStore } from "../store/range.ts";
import type { LogArchive } from "../logs/archive.ts";
import type { ConsoleRoute } from "./route.ts";
import type { CommandDeps } from "../security/issue.ts";
import type { Threshold } from "../security/incidents.ts";
import type { LicenseService } from "../license/service.ts";
import type { TargetStatus } from "../downloads/agent-builds.ts";

/**
 * How the security routes reach agents: the command key signs, `dispatch` delivers. Audit
 * records of the commands are written by the console (with the request's IP and user agent).
 */
export interface SecurityCommandDeps extends Pick<CommandDeps, "commandKey" | "dispatch" | "now"> {
  /** Overrides config.incidentThresholds (SERVERMIND_INCIDENT_THRESHOLDS) for incident timelines. */
  thresholds?: Threshold[];
}

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
  /** curl's public-key pin of the server certificate ("sha256//base64"), shown in the install one-liner. */
  serverPubkeyPin?: string;
  /** The start-time agent builds (src/downloads/agent-builds.ts); without it the dist directory is read as it is. */
  agentBuilds?: { status(): TargetStatus[] };
  /**
   * Where host charts read ranges: the tier router (PostgreSQL or ClickHouse) when the
   * composition root has one; PostgreSQL directly otherwise.
   */
  ranges?: RangeStore;
  /** With the ClickHouse tier on: the fleet log search reads lines older than PostgreSQL's retention there (src/logs/archive.ts). */
  logArchive?: LogArchive;
  /**
   * Signing and delivery of security commands (scan, remediate, rollback). Without it the
   * security routes are still served, and a command answers that no command channel is set up.
   */
  security?: SecurityCommandDeps;
  /**
   * Routes of other features served through the console's guard: session, permission, host
   * scope, CSRF and dangerous-operation checks apply to them too.
   */
  extraRoutes?: ConsoleRoute[];
  /** The license (src/license/service.ts); the composition root shares it with enrollment. Made from sql and dataDir when absent. */
  license?: LicenseService;
}

export interface ConsoleServices extends ConsoleDeps {
  settings: SettingsStore;
  views: Renderer;
  /** seals TOTP keys at rest (key: SERVERMIND_SECRET_KEY or <dataDir>/secret.key) */
  secrets: SecretBox;
  license: LicenseService;
}
