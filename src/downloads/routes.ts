/**
 * Agent downloads:
 *   GET /api/v1/agent/SHA256SUMS          checksums of the built binaries
 *   GET /api/v1/agent/download/:target    one binary (linux-x64, linux-x64-musl, linux-arm64,
 *                                         darwin-arm64, darwin-x64, windows-x64)
 *   GET /install.sh                       the installer (see install-script.ts)
 * Files come from `distDir` (what `npm run build:agent` or the start-time build of
 * agent-builds.ts writes). Only the six known names can be served, so no request can name
 * another file. install.sh names the server by the configured public URL (SERVERMIND_PUBLIC_URL),
 * never by the request's Host header, which the client chooses.
 */
import { Elysia } from "elysia";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { renderInstallScript } from "./install-script.ts";
import { AGENT_TARGETS, agentBinaryName } from "./targets.ts";

export { AGENT_TARGETS };

export interface DownloadsOptions {
  distDir: string;
  /** The server certificate (PEM). When given, install.sh pins its key and fingerprint. */
  certPem?: string;
  /** The server's public origin (config.publicUrl): what install.sh downloads from and enrolls with. */
  publicUrl: string;
}

function notFound(message: string): Response {
  return new Response(JSON.stringify({ error: { code: "not_found", message } }), { status: 404, headers: { "content-type": "application/json" } });
}

/** curl's --pinnedpubkey form: "sha256//" + base64 of the SHA-256 of the DER SubjectPublicKeyInfo. */
export function pubkeyPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return `sha256//${createHash("sha256").update(spki).digest("base64")}`;
}

/**
 * What this plugin serves, declared like the console's routes (src/web/route.ts): every route is
 * public (agents and install scripts fetch them before any sign-in) and touches no host data.
 * The route matrix test (test/web/route-matrix.test.ts) fails on a mounted route missing here.
 */
export const DOWNLOAD_ROUTES = [
  { method: "GET", path: "/api/v1/agent/SHA256SUMS", access: "public", hostData: "none" },
  { method: "GET", path: "/api/v1/agent/download/:target", access: "public", hostData: "none" },
  { method: "GET", path: "/install.sh", access: "public", hostData: "none" },
] as const;

export function downloadsPlugin(opts: DownloadsOptions) {
  const pin = opts.certPem ? pubkeyPin(opts.certPem) : "";
  const fingerprint = opts.certPem ? createHash("sha256").update(new X509Certificate(opts.certPem).raw).digest("hex") : "";
  return new Elysia({ name: "downloads" })
    .get(DOWNLOAD_ROUTES[0].path, () => {
      const f = join(opts.distDir, "SHA256SUMS");
      if (!existsSync(f)) return notFound("no agent binaries are built on this server yet: the enrollment page shows the build's state (or run npm run build:agent)");
      return new Response(Bun.file(f), { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" } });
    })
    .get(DOWNLOAD_ROUTES[1].path, ({ params }) => {
      const t = params.target;
      if (!(AGENT_TARGETS as readonly string[]).includes(t)) return notFound(`unknown target "${t.slice(0, 40)}" (known: ${AGENT_TARGETS.join(", ")})`);
      const name = agentBinaryName(t);
      const f = join(opts.distDir, name);
      if (!existsSync(f)) return notFound(`the ${t} binary is not built on this server (yet: the enrollment page shows the build's state)`);
      return new Response(Bun.file(f), {
        headers: { "content-type": "application/octet-stream", "content-disposition": `attachment; filename="${name}"`, "cache-control": "no-cache" },
      });
    })
    .get(DOWNLOAD_ROUTES[2].path, () => {
      return new Response(renderInstallScript({ serverUrl: opts.publicUrl, pubkeyPin: pin, fingerprint }), {
        headers: { "content-type": "text/x-shellscript; charset=utf-8", "cache-control": "no-cache" },
      });
    });
}
