/**
 * The minimum body pace for requests the app reads itself (console forms, the JSON API, SSO,
 * MCP, enrollment): the rule of the agent endpoints (src/ingest/body.ts), grace + bytes / rate,
 * so a client that declares a body and trickles it is cut instead of holding its connection for
 * as long as it likes. As there, a body that declares at most 64 kB is given the time for its
 * declared length; a longer one the time for the bytes in so far. Time is counted only while the server waits for the client's bytes: a
 * route that waits on the database before it reads the form does not use up the client's grace.
 * The body is passed through chunk by chunk (read ahead up to 64 kB), never buffered here, so
 * each route's own size limit still refuses a large body before reading it.
 */
import { BodyTooSlow, WHOLE_BODY_MAX, type BodyPace } from "../ingest/body.ts";

/** Bytes read ahead of the route: enough for any sign-in form, bounded for large bodies. */
const READ_AHEAD = 64 * 1024;

export interface PacedRequest {
  /** The request to hand to the app: the same method, URL, headers and signal, the body paced. */
  readonly request: Request;
  /** Set once the body fell behind the pace (the rest was not read): answer 408 and close. */
  readonly slow: BodyTooSlow | undefined;
}

export function pacedRequest(req: Request, pace: BodyPace): PacedRequest {
  // (a GET or HEAD with a body cannot be rebuilt with one; its body is left to src/server.ts' afterBody)
  if (!req.body || req.method === "GET" || req.method === "HEAD") return { request: req, slow: undefined };
  const source = req.body.getReader();
  const declared = Number(req.headers.get("content-length") ?? NaN);
  const small = declared >= 0 && declared <= WHOLE_BODY_MAX;
  let received = 0;
  let waitedMs = 0;
  let slow: BodyTooSlow | undefined;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const allowedMs = pace.graceMs + ((small ? declared : received) / pace.minRate) * 1000 - waitedMs;
        const started = performance.now();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), Math.max(0, allowedMs))));
        const got = await Promise.race([source.read(), late]).catch((e: unknown) => ({ error: e }));
        clearTimeout(timer);
        waitedMs += performance.now() - started;
        if (got === "late") {
          slow = new BodyTooSlow(`request body too slow: ${received} bytes in ${(waitedMs / 1000).toFixed(1)} s; after ${pace.graceMs} ms it must arrive at ${pace.minRate} bytes/s or more (SERVERMIND_BODY_GRACE_MS, SERVERMIND_BODY_MIN_RATE)`);
          void source.cancel().catch(() => {});
          controller.error(slow);
        } else if ("error" in got) controller.error(got.error);
        else if (got.done) controller.close();
        else {
          received += got.value.byteLength;
          controller.enqueue(got.value);
        }
      },
      cancel(reason) {
        return source.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: READ_AHEAD, size: (chunk) => chunk?.byteLength ?? 0 },
  );
  const request = new Request(req.url, { method: req.method, headers: req.headers, body, signal: req.signal, duplex: "half" } as RequestInit);
  return {
    request,
    get slow() {
      return slow;
    },
  };
}

/** The answer to a body cut for its pace; the connection is closed after it. */
export function tooSlowResponse(e: BodyTooSlow): Response {
  return new Response(JSON.stringify({ error: { code: "too_slow", message: e.message } }), {
    status: 408,
    headers: { "content-type": "application/json", connection: "close", "cache-control": "no-store" },
  });
}
