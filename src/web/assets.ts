/** Static files of the console, served from memory: our CSS and JS, and htmx and uPlot from node_modules. */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { securityHeaders } from "./respond.ts";
import { sharePath } from "../share.ts";

const require = createRequire(import.meta.url);

interface Asset {
  body: Buffer<ArrayBuffer>;
  type: string;
  etag: string;
}

function load(path: string, type: string): Asset {
  const body = readFileSync(path) as Buffer<ArrayBuffer>;
  return { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 16)}"` };
}

export function loadAssets(): Map<string, Asset> {
  const dir = sharePath("assets", join(import.meta.dir, "assets"));
  return new Map([
    ["console.css", load(join(dir, "console.css"), "text/css; charset=utf-8")],
    ["console.js", load(join(dir, "console.js"), "text/javascript; charset=utf-8")],
    ["charts.js", load(join(dir, "charts.js"), "text/javascript; charset=utf-8")],
    // the logo's square, as the tab's icon (without one every page's load also asked for /favicon.ico)
    ["favicon.svg", load(join(dir, "favicon.svg"), "image/svg+xml")],
    ["htmx.min.js", load(process.env.SERVERMIND_SHARE ? sharePath("htmx.min.js", "") : require.resolve("htmx.org/dist/htmx.min.js"), "text/javascript; charset=utf-8")],
    // uPlot (the interactive charts' library) from node_modules, as htmx
    ["uPlot.iife.min.js", load(process.env.SERVERMIND_SHARE ? sharePath("uPlot.iife.min.js", "") : require.resolve("uplot/dist/uPlot.iife.min.js"), "text/javascript; charset=utf-8")],
    ["uPlot.min.css", load(process.env.SERVERMIND_SHARE ? sharePath("uPlot.min.css", "") : require.resolve("uplot/dist/uPlot.min.css"), "text/css; charset=utf-8")],
  ]);
}

export function serveAsset(assets: Map<string, Asset>, name: string, request: Request): Response {
  const a = assets.get(name);
  if (!a) return new Response("not found", { status: 404, headers: securityHeaders(new Headers()) });
  const h = securityHeaders(new Headers({ "content-type": a.type, etag: a.etag, "cache-control": "public, max-age=3600" }));
  if (request.headers.get("if-none-match") === a.etag) return new Response(null, { status: 304, headers: h });
  return new Response(a.body, { headers: h });
}
