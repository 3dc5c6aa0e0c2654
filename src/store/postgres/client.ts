/** The one place a postgres.js pool is created, so every connection gets the same settings. */
import postgres, { type Sql } from "postgres";

export interface PgClientExtras {
  /** Called when a connection closes (the alert evaluator's lock connection: src/alerts/leader.ts). */
  onclose?: (connectionId: number) => void;
  /** Close connections after this many seconds (postgres.js default: 30-60 min); 0: never. */
  maxLifetimeSeconds?: number;
}

export function createPgClient(url: string, max = 8, extras: PgClientExtras = {}): Sql {
  return postgres(url, {
    max,
    onnotice: () => {},
    prepare: true,
    idle_timeout: 0,
    connect_timeout: 5,
    connection: { application_name: "servermind" },
    ...(extras.onclose ? { onclose: extras.onclose } : {}),
    ...(extras.maxLifetimeSeconds !== undefined ? { max_lifetime: extras.maxLifetimeSeconds } : {}),
  });
}
