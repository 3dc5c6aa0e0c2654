/** The console's real template engine and chart, and a command channel with no agent behind it. */
import { createRenderer, VIEWS_DIR } from "../../src/web/render.ts";
import { createSecurityViews } from "../../src/web/security/views.ts";
import type { SecurityViews } from "../../src/security/views.ts";
import { generateKeyPairSync } from "node:crypto";
import type { SecurityCommandDeps } from "../../src/web/deps.ts";

export function consoleSecurityViews(): SecurityViews {
  return createSecurityViews(createRenderer(VIEWS_DIR));
}

/** Signs commands with a throwaway key; no agent answers them. */
export function commandsWithoutAgents(): SecurityCommandDeps {
  return {
    commandKey: generateKeyPairSync("ed25519").privateKey,
    dispatch: async () => ({ ok: false, error: "no agent in this test" }),
  };
}
