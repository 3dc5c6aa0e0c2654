/**
 * Output of a running command, sent up as it is produced: lines are collected and flushed as one
 * chunk every `flushMs` (or at `maxLines`), each chunk numbered from 0, so Platform can relay
 * them to the server (`command-output`, docs/protocol.md 8.2) long before the command's result.
 * Bounded: at most `maxChunks` chunks of at most `maxLines` lines, each line cut at 2,048
 * characters; lines past the last chunk are not sent (the command's result still comes).
 */
export type OutputSource = "systemctl" | "journal" | "state" | "file" | "backup";

export interface OutputLine {
  /** ms since the epoch */
  ts: number;
  src: OutputSource;
  text: string;
}

export interface OutputChunk {
  seq: number;
  lines: OutputLine[];
}

export interface OutputSink {
  line(src: OutputSource, text: string, ts?: number): void;
  /** Sends what is pending now and stops the timer; later lines are dropped. */
  close(): void;
}

export const MAX_LINE_CHARS = 2048;

export function createOutput(emit: (c: OutputChunk) => void, o: { flushMs?: number; maxLines?: number; maxChunks?: number } = {}): OutputSink {
  const flushMs = o.flushMs ?? 200;
  const maxLines = o.maxLines ?? 100;
  const maxChunks = o.maxChunks ?? 500;
  let seq = 0;
  let pending: OutputLine[] = [];
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (!pending.length) return;
    if (seq >= maxChunks) {
      pending = [];
      return;
    }
    const lines = pending;
    pending = [];
    try {
      emit({ seq: seq++, lines });
    } catch {
      /* the consumer is gone: the command still finishes */
    }
  };
  return {
    line(src, text, ts = Date.now()) {
      if (closed) return;
      for (const t of text.split("\n")) {
        if (!t.trim()) continue;
        pending.push({ ts, src, text: t.slice(0, MAX_LINE_CHARS) });
        if (pending.length >= maxLines) flush();
      }
      if (pending.length && !timer) timer = setTimeout(flush, flushMs);
    },
    close() {
      if (closed) return;
      flush();
      closed = true;
    },
  };
}

/** A sink that drops everything (a command run without a listener). */
export const NO_OUTPUT: OutputSink = { line() {}, close() {} };
