/**
 * One error for "the database is not answering": a deadline that passed while PostgreSQL hung,
 * or a connection it refused or dropped. Routes answer it with 503 + Retry-After and a generic
 * body (src/http/errors.ts); the detail goes to the log only.
 */
export type StoreState = "ok" | "timeout" | "unreachable";

export class StoreUnavailable extends Error {
  constructor(message: string, readonly state: Exclude<StoreState, "ok"> = "unreachable") {
    super(message);
  }
}

/** Connection-level failures of postgres.js and the socket beneath it. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
  "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED",
]);

/**
 * True for errors that mean the database is down, refusing, restarting or hung, rather than a
 * bad query: StoreUnavailable, socket errors, and SQLSTATE class 08 (connection exception),
 * 57P01-57P03 (shutdown, crash shutdown, cannot connect now) and 53300 (too many connections).
 */
export function isStoreUnavailable(e: unknown): boolean {
  if (e instanceof StoreUnavailable) return true;
  if (!e || typeof e !== "object") return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && (CONNECTION_CODES.has(code) || /^(08...|57P0[123]|53300)$/.test(code))) return true;
  const errors = (e as { errors?: unknown }).errors; // AggregateError of a multi-address connect
  return Array.isArray(errors) && errors.length > 0 && errors.every(isStoreUnavailable);
}

/**
 * `work`, or StoreUnavailable("timeout") once `ms` have passed. The work goes on in the
 * background (a batch may still commit: the agent's resend is then acknowledged as `dup`).
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, fail) => {
    t = setTimeout(() => fail(new StoreUnavailable(`${what}: no answer from PostgreSQL within ${ms} ms`, "timeout")), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(t);
  }
}
