/**
 * Mounts the MCP endpoint (./http.ts) at /mcp for POST, GET and DELETE: the thin Elysia
 * adapter. It is outside the console's router and guard (it authenticates with AI-client tokens
 * itself); the composition root mounts it beside the console plugin.
 * (Under src/web/ because it uses the console's token resolution, src/web/bearer.ts.)
 */
import { Elysia } from "elysia";
import { clientIp } from "../../http/client-ip.ts";
import { createMcpHandler, MCP_PATH, type McpHttpDeps } from "./http.ts";

export const MCP_METHODS = ["POST", "GET", "DELETE"] as const;

export function mcpPlugin(deps: McpHttpDeps, ipOf: (req: Request) => string | undefined | null = () => null) {
  const handle = createMcpHandler(deps);
  const app = new Elysia({ name: "mcp" });
  for (const m of MCP_METHODS) app.route(m, MCP_PATH, ({ request }: { request: Request }) => handle(request, ipOf(request) || clientIp(request)), { parse: "none" });
  return app;
}
