/**
 * Our agent's protocol, transport-independent: a buffer of frames in, acknowledgements out.
 * Each frame is checked in order: header, agent, signature (then revocation), replay, body. Valid frames join the
 * batcher; the result waits until their batch commits. A bad frame is rejected alone: its
 * valid neighbours in the same request are still stored and acknowledged.
 */
import { FLAG_SESSION, FrameError, FrameKind, KIND_NAMES, type FrameBody, type FrameLimits, type RejectCode } from "../frame/frame.ts";
import { decodeFrameBody, splitFrames, verifyFrame, verifySealedFrame, type Inflate, type RawFrame } from "../frame/decode.ts";
import { metricRows } from "../../store/postgres/writer.ts";
import type { Batcher } from "../../batch/batcher.ts";
import type { AgentDirectory, AgentEntry } from "./directory.ts";
import type { AgentState } from "../../store/postgres/agent-state.ts";
import type { IngestMetrics } from "../../metrics/registry.ts";

export interface Ack {
  batch: number;
  seq: number;
  status: "ok" | "dup" | "seen";
}

export interface Reject {
  batch: number | null;
  seq: number | null;
  code: RejectCode | "store_unavailable" | "busy";
  message: string;
}

export interface IngestResult {
  acks: Ack[];
  rejects: Reject[];
}

export interface IngestDeps {
  directory: AgentDirectory;
  batcher: Batcher;
  state: AgentState;
  metrics: IngestMetrics;
  limits: FrameLimits;
  /** LZ4 block decoder; the TypeScript one when absent. */
  inflate?: Inflate;
  /** Told of every frame stored for the first time, after its batch committed. */
  onStored?: (data: FrameBody, agentId: number) => void;
}

export const REJECT_STATUS: Record<Reject["code"], number> = {
  truncated: 400,
  bad_magic: 400,
  bad_version: 400,
  unknown_kind: 400,
  bad_flags: 400,
  bad_lz4: 400,
  bad_msgpack: 400,
  bad_body: 422,
  bad_timestamp: 422,
  frame_too_large: 422,
  too_many_items: 422,
  too_large: 413,
  unknown_agent: 401,
  bad_signature: 401,
  unknown_session: 401,
  revoked_agent: 403,
  replayed_seq: 409,
  bad_name: 422,
  store_rejected: 422,
  store_unavailable: 503,
  busy: 503,
};

/** The HTTP status for a result: 200, or the status of its first rejection. */
export function resultStatus(r: IngestResult): number {
  return r.rejects.length ? REJECT_STATUS[r.rejects[0]!.code] : 200;
}

/** What the store must hold for `seenOnly` frames: nothing; they are acknowledged on receipt. */
const SEEN_ONLY = new Set([FrameKind.Heartbeat]);

/** The answer for an agent id nobody enrolled, and for a revoked agent's frame that does not authenticate. */
export function notEnrolled(agentId: number): FrameError {
  return new FrameError("unknown_agent", `agent ${agentId} is not enrolled`);
}

/**
 * Authenticates a frame, then checks its agent is not revoked: only a sender that proves it
 * holds the agent's key (or session) learns of the revocation; anyone else gets the answer for
 * an unknown agent.
 */
export function authenticateAgent(f: RawFrame, agent: AgentEntry, directory: AgentDirectory): "session" | "signature" {
  let how: "session" | "signature";
  try {
    how = authenticate(f, agent, directory);
  } catch (e) {
    if (agent.revoked && e instanceof FrameError) throw notEnrolled(f.header.agentId);
    throw e;
  }
  if (agent.revoked) throw new FrameError("revoked_agent", `agent ${f.header.agentId} has been revoked`);
  return how;
}

/** Checks a frame's trailer, signed or sealed with a session; throws FrameError, or says which it was. */
export function authenticate(f: RawFrame, agent: AgentEntry, directory: AgentDirectory): "session" | "signature" {
  const h = f.header;
  if (h.flags & FLAG_SESSION) {
    const key = directory.sessions.key(h.agentId, h.session);
    if (!key) throw new FrameError("unknown_session", `session ${h.session} of agent ${h.agentId} is not open on this server (expired, replaced, or lost in a restart): open a new session or sign the frame, and resend`);
    if (!verifySealedFrame(f, key)) throw new FrameError("bad_signature", `session tag of frame seq ${h.seq} does not match session ${h.session} of agent ${h.agentId}`);
    return "session";
  }
  if (!verifyFrame(f, agent.key)) throw new FrameError("bad_signature", `signature of frame seq ${h.seq} does not match agent ${h.agentId}'s key`);
  return "signature";
}

export async function ingestFrames(deps: IngestDeps, buf: Uint8Array, transport: string): Promise<IngestResult> {
  const { directory, batcher, state, metrics } = deps;
  const started = performance.now();
  const acks: Ack[] = [];
  const rejects: Reject[] = [];
  const waits: Promise<void>[] = [];
  const reject = (code: Reject["code"], message: string, batch: number | null, seq: number | null) => {
    metrics.rejects.inc({ reason: code });
    rejects.push({ batch, seq, code, message });
  };
  metrics.bytes.inc({ transport }, buf.length);

  for (const entry of splitFrames(buf, deps.limits)) {
    if (entry.error) {
      reject(entry.error.code, entry.error.message, entry.header?.batchId ?? null, entry.header?.seq ?? null);
      continue;
    }
    const { header: h } = entry.frame;
    try {
      const agent = await directory.lookup(h.agentId);
      if (!agent) throw notEnrolled(h.agentId);
      metrics.frameAuth.inc({ auth: authenticateAgent(entry.frame, agent, directory) });
      if (!agent.replay.accept(h.seq)) throw new FrameError("replayed_seq", `sequence number ${h.seq} was already used or is older than the replay window (highest ${agent.replay.highest})`);
      const data = decodeFrameBody(h, entry.frame.body, deps.inflate);
      if (data.kind === FrameKind.Hello) throw new FrameError("bad_body", "hello frames belong to the stream handshake, not to a batch");
      state.touch(h.agentId, h.seq, transport);
      metrics.frames.with({ kind: KIND_NAMES[data.kind]! })();
      if (SEEN_ONLY.has(data.kind)) {
        state.heartbeat(h.agentId, data.body as Record<string, unknown>);
        acks.push({ batch: h.batchId, seq: h.seq, status: "seen" });
        continue;
      }
      const rows = data.kind === FrameKind.Metrics ? metricRows(data.body) : h.items;
      waits.push(
        batcher
          .push({ agentId: h.agentId, batchId: h.batchId, seq: h.seq, createdMs: h.createdMs, data, bytes: h.rawLength * 2 + 256, rows, receivedAt: started, transport })
          .then(
            (status) => {
              // acks are listed in commit order; each names its frame
              acks.push({ batch: h.batchId, seq: h.seq, status });
              if (status === "ok") deps.onStored?.(data, h.agentId);
              if (status === "dup") metrics.duplicates.with({})();
              else if (data.kind === FrameKind.Metrics) metrics.samples.with({})(h.items);
              else if (data.kind === FrameKind.Logs) metrics.logLines.with({})(h.items);
            },
            // a refused frame says why; any other cause (addresses, SQL) is in the server log, not for the agent
            (err: Error) =>
              err instanceof FrameError && err.code === "store_rejected"
                ? reject("store_rejected", err.message, h.batchId, h.seq)
                : reject("store_unavailable", "the database did not commit this frame; resend it later", h.batchId, h.seq),
          ),
      );
    } catch (e) {
      if (e instanceof FrameError) reject(e.code, e.message, h.batchId, h.seq);
      else throw e;
    }
  }
  await Promise.all(waits);
  metrics.ackSeconds.observe((performance.now() - started) / 1000, { transport });
  return { acks, rejects };
}
