/**
 * The console harness (test/support/console-app.ts) with the SSO plugin mounted beside it through
 * the real wiring (src/web/sso/wiring.ts), driven in-process with `app.handle()`.
 */
import { Elysia } from "elysia";
import { consoleHarness, type ConsoleHarness } from "./console-app.ts";
import { createSso, type SsoPlugin } from "../../src/auth/sso/routes.ts";
import { consoleSsoDeps } from "../../src/web/sso/wiring.ts";
import type { SsoConfig } from "../../src/auth/sso/deps.ts";

export interface SsoHarness {
  console: ConsoleHarness;
  sso: SsoPlugin;
  config: SsoConfig;
  handle(req: Request): Promise<Response>;
  close(): Promise<void>;
}

export async function ssoHarness(config: Partial<SsoConfig> = {}): Promise<SsoHarness> {
  const c = await consoleHarness();
  const cfg: SsoConfig = { publicUrl: "http://console.test", ...config };
  const sso = createSso(consoleSsoDeps(c.services, cfg));
  const app = new Elysia().use(sso.plugin);
  return {
    console: c,
    sso,
    config: cfg,
    handle: (req) => app.handle(req),
    async close() {
      await sso.close();
      await c.close();
    },
  };
}

/** The value of one cookie from a response's Set-Cookie headers. */
export function setCookieValue(res: Response, name: string): string | undefined {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(";");
    if (pair!.startsWith(`${name}=`)) return pair!.slice(name.length + 1);
  }
  return undefined;
}

/** Audit rows written so far, oldest first. */
export async function auditRows(h: SsoHarness, action?: string) {
  const rows = await h.console.db.sql`select category, action, success, actor_name, target, ip, user_agent, details from audit_log
    where ${action ? h.console.db.sql`action = ${action}` : h.console.db.sql`true`} order by id`;
  return rows as unknown as Array<{ category: string; action: string; success: boolean; actor_name: string; target: string; ip: string; user_agent: string; details: Record<string, unknown> }>;
}
