/**
 * The cluster bus: several server nodes share one PostgreSQL and talk through LISTEN/NOTIFY.
 * - publishToAgent(agentId, msg) pushes a message down the agent's stream, on whichever node
 *   holds it: directly when this node does, else by NOTIFY on `servermind_agent`, which every
 *   node hears and the holder delivers. Delivery is at most once and only to a connected agent:
 *   features that need more (commands) keep the command in a table and publish it again until
 *   the agent acknowledges it; the bus is the fast path, not the record.
 * - Revocation: migration 301 notifies `servermind_revoked` when agents.revoked_at is set, from
 *   any node or tool; every node drops the agent's cached key (so its next frame is checked
 *   against the database and refused) and closes its streams with 4403.
 * NOTIFY payloads are limited to 8000 bytes by PostgreSQL; larger messages are refused here with
 * that limit named. LISTEN uses one dedicated connection per node, which postgres.js re-opens
 * (and re-listens) after a disconnect.
 */
import type { Sql } from "postgres";
import { randomBytes } from "node:crypto";
import { Counter } from "../metrics/registry.ts";
import type { StreamRegistry } from "../ingest/agent/stream-registry.ts";

export const AGENT_CHANNEL = "servermind_agent";
export const REVOKED_CHANNEL = "servermind_revoked";
export const MAX_PAYLOAD_BYTES = 7900;

export interface Invalidate {
  invalidate(agentId: number): void;
}

export interface ClusterBusOptions {
  sql: Sql;
  streams: StreamRegistry;
  /** The agent directory (or anything that forgets an agent's cached key). */
  directory?: Invalidate;
  nodeId?: string;
  log?: (s: string) => void;
}

export type Delivery = "local" | "published";

export interface ClusterBus {
  nodeId: string;
  publishToAgent(agentId: number, msg: Record<string, unknown>): Promise<Delivery>;
  metrics: Counter[];
  stop(): Promise<void>;
}

interface Envelope {
  agent: number;
  from: string;
  msg: Record<string, unknown>;
}

export async function startClusterBus(o: ClusterBusOptions): Promise<ClusterBus> {
  const nodeId = o.nodeId ?? randomBytes(6).toString("hex");
  const log = o.log ?? ((s: string) => console.error(s));
  const delivered = new Counter("cluster_agent_messages_total", "Messages for agents, by outcome (local, published, delivered_here, not_here).");
  const revocations = new Counter("cluster_revocations_total", "Revocations heard on the bus.");

  const onAgent = (payload: string) => {
    let e: Envelope;
    try {
      e = JSON.parse(payload) as Envelope;
    } catch {
      return log(`cluster bus: ignored a malformed ${AGENT_CHANNEL} payload of ${payload.length} bytes`);
    }
    if (e.from === nodeId || !Number.isSafeInteger(e.agent)) return;
    const ok = o.streams.send(e.agent, { type: "command", ...e.msg });
    delivered.inc({ outcome: ok ? "delivered_here" : "not_here" });
  };
  const onRevoked = (payload: string) => {
    const id = Number(payload);
    if (!Number.isSafeInteger(id)) return;
    revocations.inc();
    o.directory?.invalidate(id);
    o.streams.close(id, 4403, "agent revoked");
  };
  const subs = [await o.sql.listen(AGENT_CHANNEL, onAgent), await o.sql.listen(REVOKED_CHANNEL, onRevoked)];

  return {
    nodeId,
    metrics: [delivered, revocations],
    async publishToAgent(agentId, msg) {
      if (!Number.isSafeInteger(agentId) || agentId <= 0) throw new Error(`agent id ${agentId} is not a positive integer`);
      if (o.streams.send(agentId, { type: "command", ...msg })) {
        delivered.inc({ outcome: "local" });
        return "local";
      }
      const payload = JSON.stringify({ agent: agentId, from: nodeId, msg } satisfies Envelope);
      const size = Buffer.byteLength(payload);
      if (size > MAX_PAYLOAD_BYTES) {
        throw new Error(`message for agent ${agentId} is ${size} bytes, over the ${MAX_PAYLOAD_BYTES}-byte NOTIFY limit: store large payloads in a table and publish their id`);
      }
      await o.sql`select pg_notify(${AGENT_CHANNEL}, ${payload})`;
      delivered.inc({ outcome: "published" });
      return "published";
    },
    async stop() {
      for (const s of subs) await s.unlisten();
    },
  };
}
