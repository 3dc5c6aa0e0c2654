/**
 * What the server process does with an error nobody caught. Errors of a lost database
 * connection are logged and ignored: PostgreSQL being killed, restarted or unreachable must not
 * take the server down with it while the supervisor brings it back. Anything else that escapes
 * is a bug: logged with its stack, then the process exits.
 *
 * Two ways such errors escape postgres.js 3.4 without any caller to catch them:
 * - thrown from a timer while it writes to a connection PostgreSQL has dropped;
 * - a rejected promise: a new connection first fetches the array types
 *   (`fetchArrayTypes()` in its connection.js), and that promise is discarded, so a connection
 *   dropped during that query rejects with no handler (seen as `read ECONNRESET` with a stack
 *   of `node:net` only, when PostgreSQL is killed while a pool opens a connection).
 */
import { isStoreUnavailable } from "./store/postgres/unavailable.ts";

/**
 * Whether `e` says a connection was lost rather than that the code is wrong: what
 * isStoreUnavailable() calls so (socket and postgres.js connection errors, SQLSTATE 08...,
 * 57P01-57P03, 53300), or any error thrown from inside postgres.js itself.
 */
export function isConnectionLoss(e: unknown): boolean {
  if (e instanceof Error && /node_modules\/postgres\/src\//.test(e.stack ?? "")) return true;
  return isStoreUnavailable(e);
}

/** Installs the policy on this process (once; later calls do nothing). */
export function installCrashPolicy(): void {
  if (installed) return;
  installed = true;
  const handle = (what: string) => (e: unknown) => {
    const stack = e instanceof Error ? (e.stack ?? e.message) : String(e);
    if (isConnectionLoss(e)) {
      console.error(`${what} of a lost connection (ignored): ${stack.split("\n")[0]}`);
      return;
    }
    console.error(`${what}: ${stack}`);
    process.exit(1);
  };
  process.on("uncaughtException", handle("uncaught error"));
  process.on("unhandledRejection", handle("unhandled rejection"));
}

let installed = false;
