/** One collected log line and the bounds every log source applies to it. */
export interface LogLine {
  ts: number;
  /** syslog severity 0 (emerg) .. 7 (debug) */
  severity: number;
  source: string;
  message: string;
}

/** Longest message kept; longer ones are cut (the frame decoder refuses over 64 KiB). */
export const MAX_MESSAGE_CHARS = 16 * 1024;

export function clampMessage(s: string): string {
  return s.length > MAX_MESSAGE_CHARS ? s.slice(0, MAX_MESSAGE_CHARS - 1) + "…" : s;
}

/** Severity guessed from the words of a plain text line (files carry no priority field). */
export function guessSeverity(line: string): number {
  const head = line.slice(0, 200);
  if (/\b(emerg|emergency|panic)\b/i.test(head)) return 0;
  if (/\balert\b/i.test(head)) return 1;
  if (/\b(crit|critical|fatal)\b/i.test(head)) return 2;
  if (/\b(err|error|errors|failed|failure)\b/i.test(head)) return 3;
  if (/\b(warn|warning)\b/i.test(head)) return 4;
  if (/\bnotice\b/i.test(head)) return 5;
  if (/\bdebug\b/i.test(head)) return 7;
  return 6;
}
