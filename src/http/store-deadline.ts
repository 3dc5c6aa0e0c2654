/**
 * Bounds how long a request may wait on a database that does not answer. Two flavours:
 *   - `hardDeadline`: the agent endpoints, whose contract allows a 503 at any time (the agent
 *     resends; a batch that commits later is acknowledged as `dup`): 503 at `timeoutMs`, always.
 *   - `storeAwareDeadline`: everything else (console, login, enrollment, SSO). At `timeoutMs` the
 *     request gets 503 if the store's health probe is failing; if the store answers, the request
 *     is only slow (a 30-day range read) and goes on. A 500 while the store is down becomes 503.
 */
import type { StoreHealth } from "../store/postgres/health.ts";
import { StoreUnavailable, withDeadline } from "../store/postgres/unavailable.ts";
import { errorResponse, storeUnavailableResponse } from "./errors.ts";

export function hardDeadline<A extends unknown[]>(timeoutMs: number, what: string, handler: (req: Request, ...rest: A) => Promise<Response>) {
  return async (req: Request, ...rest: A): Promise<Response> => {
    try {
      return await withDeadline(handler(req, ...rest), timeoutMs, what);
    } catch (e) {
      return errorResponse(e, req);
    }
  };
}

/** After this many deadlines with a healthy store, stop checking and just wait for the request. */
const MAX_ROUNDS = 12;

export async function storeAwareDeadline(req: Request, work: Promise<Response>, health: StoreHealth, timeoutMs: number): Promise<Response> {
  const settled = work.then((r) => ({ r }), (e: unknown) => ({ r: errorResponse(e, req) }));
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let t: ReturnType<typeof setTimeout> | undefined;
    const done = await Promise.race([settled, new Promise<undefined>((ok) => (t = setTimeout(() => ok(undefined), timeoutMs)))]);
    clearTimeout(t);
    if (done) {
      if (done.r.status === 500 && (await health.check()) !== "ok") return storeUnavailableResponse(req);
      return done.r;
    }
    const state = health.state();
    if (state !== "ok") {
      return errorResponse(new StoreUnavailable(`${req.method} ${new URL(req.url).pathname} waited ${timeoutMs} ms with the store ${state}`, state), req);
    }
  }
  return (await settled).r;
}

