/**
 * Where the server's read-only files live: the console's views and assets, htmx and the SQL
 * migrations. From a checkout they sit beside the sources; a compiled server (the DEB/RPM
 * packages, docs/releases.md) has no sources beside it, so `SERVERMIND_SHARE` names a directory
 * holding `views/`, `assets/`, `migrations/`, `htmx.min.js`,
 * `uPlot.iife.min.js` and `uPlot.min.css` (/usr/share/servermind).
 */
import { join } from "node:path";

/** `SERVERMIND_SHARE/<rel>` when the variable is set, else the checkout's own path. */
export function sharePath(rel: string, checkoutPath: string, env: Record<string, string | undefined> = process.env): string {
  const share = env.SERVERMIND_SHARE;
  return share ? join(share, rel) : checkoutPath;
}
