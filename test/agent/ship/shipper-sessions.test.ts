/**
 * The ship loop's session handling (agent/ship/shipper.ts) with injected transports and an
 * injected clock: no server, no network. A small in-memory "node" stands in for the server's
 * checks, using the real frame verifiers (verifyFrame, verifySealedFrame) on every frame.
 * shipper.test.ts runs the same loop against the real server.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { parseSessionGrant, type SessionAnswer } from "../../../agent/ship/session.ts";
import { createShipper, RENEW_BEFORE_MS, SESSION_RETRY_MS, USE_MARGIN_MS, type Shipper, type ShipperOptions } from "../../../agent/ship/shipper.ts";
import { TransportError, type Ack, type Reject, type SendResult, type Transport } from "../../../agent/ship/transport.ts";
import type { Spool } from "../../../agent/spool/spool.ts";
import { tempSpools } from "../../support/spools.ts";
import { decodeFrameBody, splitFrames, verifyFrame, verifySealedFrame } from "../../../src/ingest/frame/decode.ts";
import { packMetrics } from "../../../src/ingest/frame/encode.ts";
import { FLAG_SESSION, FrameKind } from "../../../src/ingest/frame/frame.ts";

const AGENT = 42;
const TTL = 3_600_000;
const { privateKey, publicKey } = generateKeyPairSync("ed25519");

/** One frame as the node saw it. */
interface Seen {
  kind: number;
  batch: number;
  seq: number;
  /** Session id of a sealed frame, 0 for a signed one. */
  session: number;
  /** Real time of arrival, to tell a resend "at once" from one after a wait. */
  at: number;
}

/** What the server node does with frames and hellos, reduced to what sessions need. */
function createNode(clock: () => number) {
  const sessions = new Map<number, Uint8Array>();
  let nextId = 0xfffffff0; // near the top of the u32 range
  const node = {
    sessions,
    seen: [] as Seen[],
    hellos: [] as Uint8Array[],
    stored: new Set<number>(),
    /** Answer POST /api/v1/session with this status instead (404: a server without sessions). */
    openStatus: 200,
    /** Forget every session as soon as it is handed out (evicted at once). */
    amnesia: false,
    /** Keep a key that differs from the one handed out (the agent's tags will not match). */
    wrongKey: false,
    /** Refuse the next signed frames as unknown_session (a confused server). */
    confusedFor: 0,
    /** A session as the server's JSON has it. */
    grant() {
      const id = nextId++;
      const key = randomBytes(32);
      const kept = new Uint8Array(node.wrongKey ? randomBytes(32) : key);
      if (!node.amnesia) sessions.set(id, kept);
      return { id, key: key.toString("base64"), expiresMs: clock() + TTL };
    },
    forget() {
      sessions.clear();
    },
    open(hello: Uint8Array): SessionAnswer {
      node.hellos.push(hello);
      if (node.openStatus !== 200) return { ok: false, status: node.openStatus, code: `http_${node.openStatus}`, message: `HTTP ${node.openStatus}` };
      return { ok: true, agentId: AGENT, session: parseSessionGrant(node.grant())! };
    },
    answer(frames: Uint8Array[]): SendResult {
      const acks: Ack[] = [];
      const rejects: Reject[] = [];
      for (const e of splitFrames(Buffer.concat(frames))) {
        if (!e.frame) throw new Error(`the agent sent a bad frame: ${e.error.message}`);
        const h = e.frame.header;
        node.seen.push({ kind: h.kind, batch: h.batchId, seq: h.seq, session: h.session, at: Date.now() });
        const refuse = (code: string) => rejects.push({ batch: h.batchId, seq: h.seq, code, message: code });
        if (h.flags & FLAG_SESSION) {
          const key = sessions.get(h.session);
          if (!key) refuse("unknown_session");
          else if (!verifySealedFrame(e.frame, key)) refuse("bad_signature");
          else accept();
        } else if (node.confusedFor > 0) {
          node.confusedFor--;
          refuse("unknown_session");
        } else if (!verifyFrame(e.frame, publicKey)) refuse("bad_signature");
        else accept();
        function accept() {
          if (h.kind === FrameKind.Heartbeat) return void acks.push({ batch: h.batchId, seq: h.seq, status: "seen" });
          acks.push({ batch: h.batchId, seq: h.seq, status: node.stored.has(h.batchId) ? "dup" : "ok" });
          node.stored.add(h.batchId);
        }
      }
      return { acks, rejects };
    },
    /** Frames of spooled batches (not heartbeats), in arrival order. */
    batches() {
      return node.seen.filter((s) => s.kind !== FrameKind.Heartbeat);
    },
  };
  return node;
}
type Node = ReturnType<typeof createNode>;

/** An HTTP/2- or HTTP/3-like transport to `node`: POST /api/v1/session opens sessions. */
function httpTo(node: Node, name = "h2", failAfter = Infinity): Transport {
  let sends = 0;
  return {
    name,
    async send(frames) {
      if (++sends > failAfter) throw new TransportError(`${name}: connection reset`);
      return node.answer(frames);
    },
    async openSession(hello) {
      return node.open(hello);
    },
    close() {},
  };
}

/** A WebSocket-like transport to `node`: each connection's welcome brings a session (or none). */
function wssTo(node: Node, withSession = true): Transport {
  return {
    name: "wss",
    session: withSession ? parseSessionGrant(node.grant()) : undefined,
    async send(frames) {
      return node.answer(frames);
    },
    close() {},
  };
}

let clock = 1_800_000_000_000;
const running: Shipper[] = [];
const spools = tempSpools("sm-sess-");
afterEach(async () => {
  for (const sh of running.splice(0)) await sh.stop();
  spools.closeAll(); // the shippers are stopped: their spools can close
});
const newSpool = spools.make;

let tsBase = clock - 3_600_000;
function addMetrics(spool: Spool, n: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const ts = Float64Array.of((tsBase += 1000));
    ids.push(spool.append({ kind: FrameKind.Metrics, items: 1, createdMs: ts[0]!, body: packMetrics({ ts, names: ["test.a"], values: Float64Array.of(i) }) }));
  }
  return ids;
}

function start(spool: Spool, connect: ShipperOptions["connect"], over: Partial<ShipperOptions> = {}) {
  const logs: string[] = [];
  const sh = createShipper({
    spool, agentId: AGENT, key: privateKey as KeyObject, serverUrl: "https://unused.invalid", tls: { ca: "" } as ShipperOptions["tls"],
    fingerprint: "00".repeat(32), transport: "http2", maxFramesPerRequest: 50, replayPerSecond: 1e6, quicProbeMs: 600_000,
    requestTimeoutMs: 1000, heartbeatMs: 100 * TTL, heartbeat: () => ({ version: "test" }), version: "test",
    now: () => clock, random: () => 0, log: (m) => logs.push(m), connect, ...over,
  });
  running.push(sh);
  sh.start();
  return { sh, logs };
}

async function until(cond: () => boolean, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await Bun.sleep(5);
  }
  throw new Error("condition not reached in time");
}

/** Adds `n` batches, wakes the loop and waits until the spool is empty again. */
async function ship(spool: Spool, sh: Shipper, n: number, ms = 3000): Promise<number[]> {
  const ids = addMetrics(spool, n);
  sh.wake();
  await until(() => spool.stats().frames === 0, ms);
  return ids;
}

describe("sealing", () => {
  test("WebSocket: frames are sealed with the welcome's session; the key is in no status or log", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    const { sh, logs } = start(spool, async () => wssTo(node), { transport: "wss" });
    const ids = await ship(spool, sh, 5);
    expect(node.seen.length).toBe(6); // a heartbeat and 5 batches
    const [id] = [...node.sessions.keys()];
    expect(node.seen.every((s) => s.session === id)).toBe(true);
    expect([...node.stored].sort((a, b) => a - b)).toEqual(ids);
    const st = sh.status();
    expect(st).toMatchObject({ session: "open", sessionsOpened: 1, sealedFrames: 6, sentFrames: 6, unknownSessionRejects: 0, state: "connected" });
    const key = Buffer.from(node.sessions.get(id!)!).toString("base64");
    expect(JSON.stringify(st)).not.toContain(key);
    expect(JSON.stringify(st)).not.toContain(Buffer.from(node.sessions.get(id!)!).toString("hex"));
    expect(logs.join("\n")).not.toContain(key);
  });

  test("HTTP: one signed hello opens the session (kind 6, batch 0, fresh sequence, empty nonce), then frames are sealed", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    const { sh } = start(spool, async () => httpTo(node));
    await ship(spool, sh, 3);
    expect(node.hellos.length).toBe(1);
    const [hello] = splitFrames(node.hellos[0]!);
    const f = hello!.frame!;
    expect(f.header).toMatchObject({ kind: FrameKind.Hello, agentId: AGENT, batchId: 0, createdMs: clock, flags: 0, session: 0 });
    expect(verifyFrame(f, publicKey)).toBe(true);
    expect(decodeFrameBody(f.header, f.body).body).toEqual({ nonce: "", version: "test" });
    expect(node.seen.every((s) => s.session !== 0 && s.seq > f.header.seq)).toBe(true);
    expect(sh.status()).toMatchObject({ session: "open", sessionsOpened: 1, sealedFrames: 4 });
  });

  test("a server without sessions (404, or a welcome without one): frames are signed; HTTP asks again only after 10 minutes", async () => {
    const node = createNode(() => clock);
    node.openStatus = 404;
    const spool = newSpool();
    const { sh, logs } = start(spool, async () => httpTo(node));
    await ship(spool, sh, 2);
    clock += SESSION_RETRY_MS - 1000;
    await ship(spool, sh, 2);
    expect(node.hellos.length).toBe(1);
    clock += 2000;
    await ship(spool, sh, 2);
    expect(node.hellos.length).toBe(2);
    expect(node.seen.every((s) => s.session === 0)).toBe(true);
    expect(node.stored.size).toBe(6);
    expect(sh.status()).toMatchObject({ session: "none", sessionsOpened: 0, sealedFrames: 0, state: "connected" });
    expect(logs.filter((l) => l.includes("404")).length).toBe(1); // said once, not every 10 minutes

    const oldWs = createNode(() => clock);
    const spool2 = newSpool();
    const ws = start(spool2, async () => wssTo(oldWs, false), { transport: "wss" });
    await ship(spool2, ws.sh, 2);
    expect(oldWs.seen.every((s) => s.session === 0)).toBe(true);
    expect(ws.sh.status().session).toBe("none");
  });

  test("failures to open a session never hold up the data", async () => {
    for (const failure of ["throws", "503", "garbage"] as const) {
      const node = createNode(() => clock);
      const spool = newSpool();
      const t = httpTo(node);
      t.openSession = async (hello) => {
        node.hellos.push(hello);
        if (failure === "throws") throw new TransportError("h2: reset while opening");
        if (failure === "503") return { ok: false, status: 503, code: "busy", message: "busy" };
        return { ok: false, status: 200, code: "bad_answer", message: "h2: HTTP 200 without a valid session" };
      };
      const { sh } = start(spool, async () => t);
      const ids = await ship(spool, sh, 3);
      expect([...node.stored]).toEqual(ids);
      expect(node.seen.every((s) => s.session === 0)).toBe(true);
      expect(sh.status().session).toBe("none");
    }
  });

  test("a session for another agent id is not used", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    const t = httpTo(node);
    t.openSession = async () => ({ ok: true, agentId: AGENT + 1, session: parseSessionGrant(node.grant())! });
    const { sh, logs } = start(spool, async () => t);
    await ship(spool, sh, 2);
    expect(node.seen.every((s) => s.session === 0)).toBe(true);
    expect(logs.some((l) => l.includes(`agent ${AGENT + 1}`))).toBe(true);
  });
});

describe("losing the session", () => {
  for (const kind of ["h2", "wss"] as const) {
    test(`${kind}: unknown_session drops the session and resends the batches at once, under a new session, with no identity wait`, async () => {
      const node = createNode(() => clock);
      const spool = newSpool();
      const connects: string[] = [];
      const { sh } = start(spool, async () => (connects.push(kind), kind === "wss" ? wssTo(node) : httpTo(node)), { transport: kind === "wss" ? "wss" : "http2" });
      await ship(spool, sh, 2);
      const [first] = [...node.sessions.keys()];
      node.forget(); // the node restarted
      const before = node.seen.length;
      const ids = await ship(spool, sh, 4, 2000);
      const after = node.seen.slice(before);
      // 4 refused, then the same 4 batches again, sealed with a new session
      expect(after.slice(0, 4).map((s) => [s.batch, s.session])).toEqual(ids.map((b) => [b, first]));
      const second = after[4]!.session;
      expect(second).not.toBe(0);
      expect(second).not.toBe(first);
      expect(after.slice(4).map((s) => [s.batch, s.session])).toEqual(ids.map((b) => [b, second]));
      expect(after[4]!.at - after[3]!.at).toBeLessThan(500);
      for (const id of ids) expect(node.stored.has(id)).toBe(true);
      const st = sh.status();
      expect(st).toMatchObject({ state: "connected", session: "open", sessionsOpened: 2, unknownSessionRejects: 4, lastError: null });
      // a WebSocket reconnects for a new welcome; HTTP opens one on the same connection
      expect(connects.length).toBe(kind === "wss" ? 2 : 1);
      expect(node.hellos.length).toBe(kind === "wss" ? 0 : 2);
    });
  }

  test("a second loss within a minute signs for a minute instead of opening sessions in a loop", async () => {
    const node = createNode(() => clock);
    node.amnesia = true; // every session is forgotten as soon as it is opened
    const spool = newSpool();
    const { sh } = start(spool, async () => httpTo(node));
    const ids = await ship(spool, sh, 3);
    // sealed (refused), sealed with a new session (refused), then signed (stored)
    expect(node.hellos.length).toBe(2);
    const tail = node.batches().slice(-3);
    expect(tail.every((s) => s.session === 0)).toBe(true);
    expect([...node.stored]).toEqual(ids);
    // twice a heartbeat and 3 batches: a refused heartbeat goes again too
    expect(sh.status()).toMatchObject({ unknownSessionRejects: 8, session: "none", state: "connected" });
    // a minute later sessions are tried again
    node.amnesia = false;
    clock += 61_000;
    await ship(spool, sh, 1);
    expect(node.hellos.length).toBe(3);
    expect(node.batches().at(-1)!.session).not.toBe(0);
  });

  test("bad_signature on sealed frames drops the session and resends signed, with no identity wait", async () => {
    const node = createNode(() => clock);
    node.wrongKey = true;
    const spool = newSpool();
    const { sh } = start(spool, async () => httpTo(node));
    const started = Date.now();
    const ids = await ship(spool, sh, 3);
    expect(Date.now() - started).toBeLessThan(2000);
    expect([...node.stored]).toEqual(ids);
    expect(node.batches().slice(-3).every((s) => s.session === 0)).toBe(true);
    expect(sh.status()).toMatchObject({ state: "connected", session: "none", rejectedFrames: 0 });
    // and the session is not asked for again right away
    await ship(spool, sh, 1);
    expect(node.hellos.length).toBe(1);
  });

  test("unknown_session for a signed frame keeps the batch and backs off instead of looping", async () => {
    const node = createNode(() => clock);
    node.openStatus = 404;
    node.confusedFor = 2; // the first send: a heartbeat and one batch
    const spool = newSpool();
    const { sh } = start(spool, async () => httpTo(node));
    const ids = await ship(spool, sh, 1);
    const sent = node.batches();
    expect(sent.length).toBe(2);
    expect(sent[1]!.at - sent[0]!.at).toBeGreaterThanOrEqual(400); // backoff (base 1 s, floor 500 ms)
    expect([...node.stored]).toEqual(ids);
  });

  test("an identity problem still waits the full minute (unknown_session is not one)", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    const t = httpTo(node);
    const send = t.send;
    t.send = async (frames) => {
      const r = await send(frames);
      return { acks: [], rejects: r.acks.map((a) => ({ batch: a.batch, seq: a.seq, code: "revoked_agent", message: "revoked" })) };
    };
    const { sh } = start(spool, async () => t);
    addMetrics(spool, 1);
    sh.wake();
    await until(() => sh.status().state === "rejected");
    await Bun.sleep(300);
    expect(node.batches().length).toBe(1);
    expect(spool.stats().frames).toBe(1);
    expect(sh.status().session).toBe("none");
  });
});

describe("renewal", () => {
  test("HTTP: the next session is opened two minutes before expiry; in its last minute a session is not used", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    const { sh } = start(spool, async () => httpTo(node));
    await ship(spool, sh, 1);
    const first = node.batches().at(-1)!.session;
    const opened = clock;
    clock = opened + TTL - RENEW_BEFORE_MS - 1000; // not yet
    await ship(spool, sh, 1);
    expect(node.hellos.length).toBe(1);
    expect(node.batches().at(-1)!.session).toBe(first);
    clock = opened + TTL - RENEW_BEFORE_MS + 1000; // now
    await ship(spool, sh, 1);
    expect(node.hellos.length).toBe(2);
    const second = node.batches().at(-1)!.session;
    expect(second).not.toBe(first);
    expect(sh.status().sessionsOpened).toBe(2);

    // the node cannot open a third: the second is used while it is good, then frames are signed
    node.openStatus = 503;
    const renewedAt = clock;
    clock = renewedAt + TTL - RENEW_BEFORE_MS + 1000;
    await ship(spool, sh, 1);
    expect(node.batches().at(-1)!.session).toBe(second);
    clock = renewedAt + TTL - USE_MARGIN_MS + 1000;
    await ship(spool, sh, 1);
    expect(node.batches().at(-1)!.session).toBe(0);
    expect(sh.status().session).toBe("none");
    expect(node.stored.size).toBe(5);
  });

  test("WebSocket: near expiry the stream is reopened between sends for a new welcome", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    let connects = 0;
    const { sh } = start(spool, async () => (connects++, wssTo(node)), { transport: "wss" });
    await ship(spool, sh, 1);
    const first = node.batches().at(-1)!.session;
    clock += TTL - RENEW_BEFORE_MS + 1000;
    await ship(spool, sh, 1);
    expect(connects).toBe(2);
    expect(node.batches().at(-1)!.session).not.toBe(first);
    expect(node.batches().at(-1)!.session).not.toBe(0);
    expect(sh.status()).toMatchObject({ sessionsOpened: 2, session: "open", state: "connected" });
  });

  test("a session that by this host's clock is nearly over on arrival is not used, and not asked for again in a loop", async () => {
    const node = createNode(() => clock - TTL + 60_000); // the server's clock is an hour behind
    const spool = newSpool();
    const { sh, logs } = start(spool, async () => httpTo(node));
    await ship(spool, sh, 2);
    await ship(spool, sh, 2);
    expect(node.hellos.length).toBe(1);
    expect(node.seen.every((s) => s.session === 0)).toBe(true);
    expect(logs.some((l) => l.includes("clock skew"))).toBe(true);
    expect(sh.status()).toMatchObject({ session: "none", sessionsOpened: 0 });
  });
});

describe("reconnects and fallback", () => {
  test("a session belongs to its connection: after a failure the new connection opens its own", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    let connects = 0;
    const { sh } = start(spool, async () => httpTo(node, "h2", ++connects === 1 ? 1 : Infinity));
    await ship(spool, sh, 1);
    const first = node.batches().at(-1)!.session;
    const ids = await ship(spool, sh, 2); // the first connection fails on this send
    expect(connects).toBe(2);
    expect(node.hellos.length).toBe(2);
    const last = node.batches().slice(-2);
    expect(last.map((s) => s.batch)).toEqual(ids);
    expect(last.every((s) => s.session !== 0 && s.session !== first)).toBe(true);
  });

  test("auto: falling back from HTTP/3 to the WebSocket seals with the welcome's session, not HTTP/3's", async () => {
    const node = createNode(() => clock);
    const spool = newSpool();
    const kinds: string[] = [];
    let wsSession = 0;
    const { sh } = start(spool, async (kind) => {
      kinds.push(kind);
      if (kind === "h3") return httpTo(node, "h3", 1);
      const t = wssTo(node);
      wsSession = t.session!.id;
      return t;
    }, { transport: "auto" });
    await ship(spool, sh, 1);
    const h3Session = node.batches().at(-1)!.session;
    expect(h3Session).not.toBe(0);
    await ship(spool, sh, 2); // HTTP/3 fails on this send; the WebSocket carries it
    expect(kinds).toEqual(["h3", "wss"]);
    expect(node.batches().slice(-2).every((s) => s.session === wsSession)).toBe(true);
    expect(sh.status()).toMatchObject({ transport: "wss", session: "open", sessionsOpened: 2 });
  });
});
