/** Packs collected lines into the wire format's columnar logs body. */
import type { LogsBody } from "../../../src/ingest/frame/frame.ts";
import type { LogLine } from "./line.ts";

export function toLogsBody(lines: LogLine[]): LogsBody {
  const sources: string[] = [];
  const index = new Map<string, number>();
  const sourceIndex = new Uint16Array(lines.length);
  lines.forEach((l, i) => {
    let s = index.get(l.source);
    if (s === undefined) {
      s = sources.length;
      sources.push(l.source);
      index.set(l.source, s);
    }
    sourceIndex[i] = s;
  });
  return {
    ts: Float64Array.from(lines, (l) => l.ts),
    severity: Uint8Array.from(lines, (l) => l.severity),
    sources,
    sourceIndex,
    messages: lines.map((l) => l.message),
  };
}
