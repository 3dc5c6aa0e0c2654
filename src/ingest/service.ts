/**
 * Builds the ingest data path from its parts, in data-path order, and stops it in reverse:
 * gate -> frame decode (handler) -> batcher -> PostgreSQL writer -> ack.
 */
import type { Sql } from "postgres";
import type { Config } from "../config.ts";
import { Batcher } from "../batch/batcher.ts";
import { createPgWriter, isDataRefusal } from "../store/postgres/writer.ts";
import { AgentState } from "../store/postgres/agent-state.ts";
import { AgentDirectory } from "./agent/directory.ts";
import { SessionTable } from "./agent/sessions.ts";
import { Gate } from "./gate.ts";
import { DEFAULT_LIMITS, type FrameLimits } from "./frame/frame.ts";
import { createIngestMetrics, Gauge, type IngestMetrics } from "../metrics/registry.ts";
import type { IngestDeps } from "./agent/handler.ts";
import type { StreamDeps } from "./agent/stream.ts";
import { StreamRegistry } from "./agent/stream-registry.ts";
import { chooseInflate } from "./lz4-native.ts";
import { UnauthenticatedClients } from "./clients.ts";
import { WriteFailureLog } from "./write-failures.ts";

export interface Ingest {
  deps: StreamDeps;
  /** Which LZ4 decoder frames go through (liblz4 and its version, or the TypeScript one and why). */
  lz4: string;
  gauges: Gauge[];
  /**
   * PostgreSQL's latest write failed for a full disk (SQLSTATE 53100) and none has committed
   * since: /healthz reports it, as its `select 1` still answers.
   */
  diskFull(): boolean;
  stop(): Promise<void>;
}

/** SQLSTATE disk_full: PostgreSQL could not extend a file. */
const DISK_FULL = "53100";

/** `failureLog`: where failed store writes are logged, limited per outage (write-failures.ts). */
export function createIngest(sql: Sql, config: Config, metrics: IngestMetrics = createIngestMetrics(), failureLog = new WriteFailureLog()): Ingest {
  const limits: FrameLimits = { ...DEFAULT_LIMITS, maxBodyBytes: Math.min(DEFAULT_LIMITS.maxBodyBytes, config.maxRequestBytes) };
  const lz4 = chooseInflate(config.lz4);
  const state = new AgentState(sql);
  const directory = new AgentDirectory(sql, undefined, undefined, new SessionTable({ max: config.maxSessions }));
  const pgWrite = createPgWriter({ sql, latest: state });
  let diskFull = false;
  const batcher = new Batcher({
    write: async (b) => {
      const t = performance.now();
      try {
        const statuses = await pgWrite(b);
        diskFull = false;
        failureLog.succeeded();
        return statuses;
      } catch (e) {
        diskFull = (e as { code?: unknown } | null)?.code === DISK_FULL;
        throw e;
      } finally {
        metrics.copySeconds.observe((performance.now() - t) / 1000);
        metrics.flushSeconds.observe((performance.now() - b.openedAt) / 1000);
      }
    },
    maxRows: config.batchMaxRows,
    maxBytes: Math.max(1 << 20, config.maxPendingBytes / (config.writers * 4)),
    maxAgeMs: config.batchMaxAgeMs,
    maxPendingBytes: config.maxPendingBytes,
    writers: config.writers,
    onFlush: (reason) => metrics.flushes.inc({ trigger: reason }),
    isRefusal: isDataRefusal,
    onRefused: (f, err) => console.error(`frame refused by PostgreSQL (agent ${f.agentId}, batch ${f.batchId}): ${err instanceof Error ? err.message : err}`),
    onError: (err, _attempt, last) => {
      metrics.writeErrors.inc({ store: "postgres" });
      failureLog.failed(err, last);
    },
  });
  const gate = new Gate({ maxConcurrent: 64, maxWaitMs: 2000, maxWaiters: 1024, hasRoom: () => batcher.hasRoom() });
  state.start();
  const clients = new UnauthenticatedClients(config.clients);
  const deps: StreamDeps & IngestDeps = { directory, batcher, state, metrics, limits, inflate: lz4.inflate, gate, streams: new StreamRegistry(), storeTimeoutMs: config.dbTimeoutMs, clients };
  const gauges = [
    new Gauge("batch_pending_bytes", "Bytes of accepted frames not yet committed.", () => batcher.pendingBytes),
    new Gauge("batch_queue_depth", "Batches queued or being written.", () => batcher.queuedBatches),
    new Gauge("ingest_gate_in_use", "Ingest slots in use.", () => gate.used),
    new Gauge("ingest_gate_capacity", "Ingest slots in all.", () => gate.capacity),
    new Gauge("ingest_gate_waiting", "Requests waiting for an ingest slot.", () => gate.waiting),
    new Gauge("ingest_sessions", "Agent sessions open on this node.", () => directory.sessions.size),
    new Gauge("ingest_unauthenticated_in_flight", "Requests and streams that have not authenticated yet.", () => clients.inFlight),
    new Gauge("ingest_streams", "Authenticated agent streams open on this node.", () => deps.streams!.connections),
  ];
  return {
    deps,
    lz4: lz4.description,
    gauges,
    diskFull: () => diskFull,
    async stop() {
      await batcher.drain();
      await state.stop();
    },
  };
}
