/**
 * Answers to commands sent down agent streams. A command goes out as
 * `{"type": "command", "id", "command"}`; the agent answers on its stream with
 * `{"type": "command-result", "id", "result"}`. The node that receives the answer may not be
 * the one waiting for it (several nodes), so the answer is stored on the command's row
 * (`security_commands`, only for the agent the command was for) and announced with
 * `NOTIFY servermind_command_result`; the waiting node reads it back. Waits are bounded.
 */
import type { Sql } from "postgres";

export const RESULT_CHANNEL = "servermind_command_result";

interface Waiter {
  agentId: number;
  resolve(v: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

export interface CommandReplies {
  /** Resolves with the agent's result, or `{ok: false, error}` after `timeoutMs`. */
  wait(id: string, agentId: number, timeoutMs: number): Promise<unknown>;
  /** An answer arrived on a stream of `agentId`; false if no command of that agent has this id. */
  deliver(agentId: number, id: string, result: unknown): Promise<boolean>;
  readonly waiting: number;
  stop(): Promise<void>;
}

const MAX_RESULT_BYTES = 1 << 20;

export async function startCommandReplies(sql: Sql, maxWaiters = 10_000): Promise<CommandReplies> {
  const pending = new Map<string, Waiter>();
  const settle = (id: string, v: unknown) => {
    const w = pending.get(id);
    if (!w) return;
    pending.delete(id);
    clearTimeout(w.timer);
    w.resolve(v);
  };
  const sub = await sql.listen(RESULT_CHANNEL, async (id) => {
    if (!pending.has(id)) return;
    const [row] = await sql<{ result: unknown }[]>`select result from security_commands where id = ${id}`;
    if (row) settle(id, row.result);
  });
  return {
    get waiting() {
      return pending.size;
    },
    wait(id, agentId, timeoutMs) {
      if (pending.size >= maxWaiters) return Promise.resolve({ ok: false, error: `${maxWaiters} commands already wait for answers` });
      return new Promise((resolve) => {
        const timer = setTimeout(() => settle(id, { ok: false, error: `agent ${agentId} did not answer within ${timeoutMs / 1000} s (offline, or not connected by WebSocket)` }), timeoutMs);
        pending.set(id, { agentId, resolve, timer });
      });
    },
    async deliver(agentId, id, result) {
      const json = JSON.stringify(result ?? null);
      const stored = Buffer.byteLength(json) > MAX_RESULT_BYTES ? { ok: false, error: `result of ${Buffer.byteLength(json)} bytes is over ${MAX_RESULT_BYTES}` } : result;
      const w = pending.get(id);
      if (w && w.agentId === agentId) {
        settle(id, stored);
        return true;
      }
      // Another node may be waiting: store on the row (only for the agent it was sent to) and announce.
      const r = await sql`update security_commands set result = ${sql.json((stored ?? null) as any)}
        where id = ${id} and agent_id = ${agentId} and status = 'sent' returning 1`;
      if (r.length === 0) return false;
      await sql`select pg_notify(${RESULT_CHANNEL}, ${id})`;
      return true;
    },
    async stop() {
      // `unanswered`: the agent may still answer after a restart (a backup run fetches its result again)
      for (const [id] of pending) settle(id, { ok: false, error: "server stopping", unanswered: true });
      await sub.unlisten();
    },
  };
}

/**
 * Sends a signed command down the agent's stream (through whichever node holds it) and waits
 * for its answer: the `dispatch` of src/security/issue.ts.
 */
export function commandDispatcher(
  bus: { publishToAgent(agentId: number, msg: Record<string, unknown>): Promise<unknown> },
  replies: CommandReplies,
  timeoutMs = 60_000,
) {
  return async (agentId: number, command: { id: string }): Promise<unknown> => {
    const answer = replies.wait(command.id, agentId, timeoutMs);
    await bus.publishToAgent(agentId, { id: command.id, command });
    return await answer;
  };
}
