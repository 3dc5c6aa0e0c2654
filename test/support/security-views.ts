/** The console's real template engine and chart, for tests that mount the security routes alone. */
import { createRenderer, VIEWS_DIR } from "../../src/web/render.ts";
import { createSecurityViews } from "../../src/web/security/views.ts";
import type { SecurityViews } from "../../src/security/views.ts";
import type { Sql } from "postgres";
import { generateKeyPairSync } from "node:crypto";
import { audit } from "../../src/audit/audit.ts";
import { securityConsoleRoutes } from "../../src/web/security/routes.ts";
import type { ConsoleRoute } from "../../src/web/route.ts";

export function consoleSecurityViews(): SecurityViews {
  return createSecurityViews(createRenderer(VIEWS_DIR));
}

/** The security routes through the console guard, as src/main.ts mounts them; no agent answers commands. */
export function securityRoutesWithoutAgents(sql: Sql): ConsoleRoute[] {
  return securityConsoleRoutes({
    sql,
    commandKey: generateKeyPairSync("ed25519").privateKey,
    audit: (e) => audit(sql, e).then(() => {}),
    dispatch: async () => ({ ok: false, error: "no agent in this test" }),
    principal: async () => null,
  });
}
