/**
 * Output of running commands. The agent sends `{"type": "command-output", "id", "seq", "lines"}`
 * on its stream while a command runs (docs/protocol.md 8.2); each chunk is checked, stored in
 * `command_output` (only for a command sent to that agent in the last two minutes, a backup job's
 * in the last day, so it works
 * on whichever node receives it) and read back by the console while it waits for the result.
 */
import type { Sql } from "postgres";

export const MAX_CHUNKS = 500;
export const MAX_LINES_PER_CHUNK = 200;
export const MAX_LINE_CHARS = 2048;
const SOURCES = new Set(["systemctl", "journal", "state", "file", "backup"]);

export interface OutputLine {
  ts: number;
  src: string;
  text: string;
}

/** The lines of a chunk as sent, or null when the chunk breaks a rule. */
export function checkChunk(seq: unknown, lines: unknown): OutputLine[] | null {
  if (typeof seq !== "number" || !Number.isInteger(seq) || seq < 0 || seq >= MAX_CHUNKS) return null;
  if (!Array.isArray(lines) || lines.length === 0 || lines.length > MAX_LINES_PER_CHUNK) return null;
  const out: OutputLine[] = [];
  for (const l of lines) {
    if (!l || typeof l !== "object") return null;
    const { ts, src, text } = l as Record<string, unknown>;
    if (typeof ts !== "number" || !Number.isFinite(ts) || typeof src !== "string" || !SOURCES.has(src) || typeof text !== "string" || text.length > MAX_LINE_CHARS || text.includes("\n")) return null;
    out.push({ ts: Math.floor(ts), src, text: text.replaceAll("\u0000", "\uFFFD") });
  }
  return out;
}

/** Stores one chunk; false when it breaks a rule or no recent command of this agent has the id. */
export async function storeCommandOutput(sql: Sql, agentId: number, id: string, seq: unknown, lines: unknown): Promise<boolean> {
  const checked = checkChunk(seq, lines);
  if (!checked) return false;
  const r = await sql`insert into command_output (command_id, seq, lines)
    select id, ${seq as number}, ${sql.json(checked as any)} from security_commands
    where id = ${id} and agent_id = ${agentId}
      and (issued_at > now() - interval '2 minutes' or (action like 'backup.%' and issued_at > now() - interval '1 day'))
    on conflict do nothing returning 1`;
  return r.length > 0;
}

/** The lines of a command from chunk `after` + 1 on, in order, with the last chunk number read. */
export async function readCommandOutput(sql: Sql, commandId: string, after = -1): Promise<{ lines: OutputLine[]; last: number; firstAt: Date | null }> {
  const rows = await sql<{ seq: number; lines: OutputLine[]; received_at: Date }[]>`select seq, lines, received_at from command_output
    where command_id = ${commandId} and seq > ${after} order by seq`;
  return { lines: rows.flatMap((r) => r.lines), last: rows.length ? rows.at(-1)!.seq : after, firstAt: rows[0]?.received_at ?? null };
}
