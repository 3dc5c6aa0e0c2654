/** The console's real template engine and chart, for tests that mount the security routes alone. */
import { createRenderer, VIEWS_DIR } from "../../src/web/render.ts";
import { createSecurityViews } from "../../src/web/security/views.ts";
import type { SecurityViews } from "../../src/security/views.ts";

export function consoleSecurityViews(): SecurityViews {
  return createSecurityViews(createRenderer(VIEWS_DIR));
}
