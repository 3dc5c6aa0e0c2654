/**
 * The web console as one Elysia plugin. Every route comes from a feature's table and runs through
 * the same guard (session, stage, permission, host scope, CSRF, dangerous-operation checks): the
 * HTML pages, htmx partials, JSON API (/api/*, with a session or an API token) and exports alike. The composition root
 * mounts `consolePlugin(deps)` and calls `startConsole(deps)` once at start.
 */
import { Elysia } from "elysia";
import type { ConsoleDeps, ConsoleServices } from "./deps.ts";
import type { ConsoleRoute } from "./route.ts";
import { createRenderer, VIEWS_DIR } from "./render.ts";
import { createSettingsStore } from "../settings/console-settings.ts";
import { createPages } from "./respond.ts";
import { createGuard } from "./guard.ts";
import { loadAssets, serveAsset } from "./assets.ts";
import { authRoutes } from "./auth/routes.ts";
import { accountRoutes } from "./auth/account-routes.ts";
import { fleetRoutes } from "./fleet/routes.ts";
import { inventoryRoutes } from "./inventory/routes.ts";
import { hostRoutes } from "./host/routes.ts";
import { chartRoutes } from "./chart/routes.ts";
import { logSearchRoutes } from "./logs/routes.ts";
import { enrollmentRoutes } from "./enrollment/routes.ts";
import { userRoutes } from "./users/routes.ts";
import { roleRoutes } from "./roles/routes.ts";
import { sessionRoutes } from "./sessions/routes.ts";
import { auditRoutes } from "./audit/routes.ts";
import { settingsRoutes } from "./settings/routes.ts";
import { ssoAdminRoutes } from "./sso/routes.ts";
import { securityPageRoutes } from "./security/pages.ts";
import { securityApiRoutes } from "./security/routes.ts";
import { fileRoutes } from "./files/routes.ts";
import { serviceRoutes } from "./services/routes.ts";
import { backupRoutes } from "./backups/routes.ts";
import { tokenRoutes } from "./tokens/routes.ts";
import { aiRoutes } from "./ai/routes.ts";
import { alertRoutes } from "./alerts/routes.ts";
import { alertApiRoutes } from "./alerts/api.ts";
import { apiRoutes } from "./api/routes.ts";
import { licenseRoutes } from "./license/routes.ts";
import { createLicenseService } from "../license/service.ts";
import { openApiRoute } from "./api/openapi.ts";
import { syncBuiltinRoles } from "../auth/roles.ts";
import { createSecretBox, loadSecretKey } from "../auth/secret-box.ts";
import { ensureSetupCode } from "../auth/setup-code.ts";
import { scheduleAuditPurge } from "../audit/retention.ts";
import { onAudit } from "../audit/audit.ts";
import { createSyslogForwarder } from "../audit/syslog.ts";

export type { ConsoleDeps } from "./deps.ts";

export function createServices(deps: ConsoleDeps): ConsoleServices {
  return {
    ...deps,
    settings: createSettingsStore(deps.sql),
    views: createRenderer(VIEWS_DIR),
    secrets: createSecretBox(loadSecretKey(deps.dataDir)),
    license: deps.license ?? createLicenseService({ sql: deps.sql, dataDir: deps.dataDir }),
  };
}

/** Every route of the console, in one list (the permission and route-matrix tests walk it). */
export function consoleRoutes(s: ConsoleServices): ConsoleRoute[] {
  const pages = createPages(s.views, s.license);
  const routes: ConsoleRoute[] = [
    ...authRoutes(s, pages),
    ...accountRoutes(s, pages),
    ...fleetRoutes(s, pages),
    ...hostRoutes(s, pages),
    ...inventoryRoutes(s, pages),
    ...chartRoutes(s, pages),
    ...logSearchRoutes(s, pages),
    ...securityPageRoutes(s, pages),
    ...securityApiRoutes(s, pages),
    ...fileRoutes(s, pages),
    ...serviceRoutes(s, pages),
    ...backupRoutes(s, pages),
    ...enrollmentRoutes(s, pages),
    ...userRoutes(s, pages),
    ...roleRoutes(s, pages),
    ...sessionRoutes(s, pages),
    ...auditRoutes(s, pages),
    ...settingsRoutes(s, pages),
    ...ssoAdminRoutes(s, pages),
    ...tokenRoutes(s, pages),
    ...licenseRoutes(s, pages),
    ...aiRoutes(s, pages),
    ...alertRoutes(s, pages),
    ...alertApiRoutes(s),
    ...apiRoutes(s),
    ...(s.extraRoutes ?? []),
  ];
  // the OpenAPI document describes every /api/ route of this table, itself included
  routes.push(openApiRoute(() => routes));
  return routes;
}

/** The one console route outside the guard: the static assets, public (what the sign-in page needs). */
export const ASSET_ROUTE = { method: "GET", path: "/assets/:file", access: "public", hostData: "none" } as const;

export function consolePlugin(deps: ConsoleDeps, services = createServices(deps)) {
  const guard = createGuard(services, createPages(services.views, services.license));
  const assets = loadAssets();
  const app = new Elysia({ name: "console" }).get(ASSET_ROUTE.path, ({ params, request }) => serveAsset(assets, params.file, request));
  for (const route of consoleRoutes(services)) {
    app.route(route.method, route.path, ({ request, params }: { request: Request; params: Record<string, string> }) =>
      guard(route, request, params ?? {}), { parse: "none" });
  }
  return app;
}

/**
 * Call once at start, after migrations: syncs the built-in roles, prints the first-run setup code
 * while no user exists, starts the hourly audit-retention purge and syslog forwarding.
 * Returns stop(), to call at shutdown.
 */
export async function startConsole(deps: ConsoleDeps, log: (line: string) => void = console.log): Promise<{ setupCode: string | null; stop(): void }> {
  await syncBuiltinRoles(deps.sql);
  loadSecretKey(deps.dataDir); // creates <dataDir>/secret.key now (when no SERVERMIND_SECRET_KEY) rather than at first use
  const setupCode = await ensureSetupCode(deps.sql, deps.dataDir, log);
  const settings = createSettingsStore(deps.sql);
  await settings.get();
  const stopPurge = scheduleAuditPurge(deps.sql); // the retention is read by the purge function itself
  const syslog = createSyslogForwarder(() => {
    const a = settings.cached().audit;
    return a.syslogHost ? { host: a.syslogHost, port: a.syslogPort } : null;
  });
  const refresh = setInterval(() => void settings.get().catch(() => {}), 10_000);
  const off = onAudit((r) => syslog.send(r));
  return {
    setupCode,
    stop() {
      off();
      clearInterval(refresh);
      stopPurge();
      syslog.close();
    },
  };
}
