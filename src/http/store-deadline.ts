/**
 * Bounds how long a request to the Elysia app (console, login, enrollment, SSO) may wait on a
 * database that does not answer. At `timeoutMs` the request gets 503 + Retry-After if the
 * store's health probe is failing; if the store answers, the request is only slow (a 30-day
 * range read) and goes on. A 500 while the store is down becomes 503. (The agent endpoints,
 * whose contract allows a 503 at any time, have a hard deadline of their own: src/ingest/agent.)
 */
import type { StoreHealth } from "../store/postgres/health.ts";
import { StoreUnavailable } from "../store/postgres/unavailable.ts";
import { errorResponse, storeUnavailableResponse } from "./errors.ts";

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

