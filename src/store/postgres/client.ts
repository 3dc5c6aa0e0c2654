/** The one place a postgres.js pool is created, so every connection gets the same settings. */
import postgres, { type Sql } from "postgres";

export function createPgClient(url: string, max = 8): Sql {
  return postgres(url, {
    max,
    onnotice: () => {},
    prepare: true,
    idle_timeout: 0,
    connect_timeout: 5,
    connection: { application_name: "servermind" },
  });
}
