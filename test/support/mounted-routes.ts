/**
 * The console's route tables as src/main.ts mounts them: the console plugin (every ConsoleRoute
 * of consoleRoutes() behind the guard, plus the static assets) and the downloads plugin. Returns
 * the routes Elysia's own router holds (`mounted`) and their declarations (`declared`: method,
 * path, access, hostData). The route matrix test and the permission coverage test both walk these.
 */
import { join } from "node:path";
import { Elysia } from "elysia";
import { ASSET_ROUTE, consolePlugin, consoleRoutes, createServices } from "../../src/web/plugin.ts";
import { DOWNLOAD_ROUTES, downloadsPlugin } from "../../src/downloads/routes.ts";
import type { ConsoleDeps } from "../../src/web/deps.ts";
import type { HostData } from "../../src/web/route.ts";

export interface DeclaredRoute {
  method: string;
  path: string;
  access: string;
  hostData?: HostData;
}

export function mountedRouteTables(deps: ConsoleDeps) {
  const services = createServices(deps);
  const consoleApp = consolePlugin(deps, services);
  const downloads = downloadsPlugin({ distDir: join(deps.dataDir, "no-agent-build"), publicUrl: deps.config.publicUrl });
  // the routes as the router holds them (both plugins, as src/main.ts mounts them)
  const mounted: Array<{ method: string; path: string }> = new Elysia().use(consoleApp).use(downloads).routes.map((r) => ({ method: r.method, path: r.path }));
  const declared: DeclaredRoute[] = [...consoleRoutes(services), ASSET_ROUTE, ...DOWNLOAD_ROUTES];
  return { services, consoleApp, downloads, mounted, declared };
}
