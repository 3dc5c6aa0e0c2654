/**
 * The one place our own metrics are named (served at /metrics in Prometheus text format 0.0.4).
 * Names follow area_thing_unit with a label for the variant.
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${labels[k]!.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",");
}

export class Counter {
  private values = new Map<string, number>();
  private bound = new Map<string, (by?: number) => void>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  /** An increment function for one label set, for hot paths (no key building per call). */
  with(labels: Labels): (by?: number) => void {
    const k = labelKey(labels);
    let f = this.bound.get(k);
    if (!f) this.bound.set(k, (f = (by = 1) => void this.values.set(k, (this.values.get(k) ?? 0) + by)));
    return f;
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    if (this.values.size === 0) s += `${this.name} 0\n`;
    for (const [k, v] of this.values) s += `${this.name}${k ? `{${k}}` : ""} ${v}\n`;
    return s;
  }
}

export class Gauge {
  constructor(readonly name: string, readonly help: string, private read: () => number) {}
  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${this.read()}\n`;
  }
}

/** Cumulative bucket counts, their sum and count, for one label set of a histogram. */
interface HistogramSeries {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram {
  private series = new Map<string, HistogramSeries>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}
  observe(v: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) s.counts[i]!++;
    s.sum += v;
    s.count++;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    // before the first observation: one empty series without labels, as scrapers expect it
    const all = this.series.size ? this.series : new Map([["", { counts: this.buckets.map(() => 0), sum: 0, count: 0 }]]);
    for (const [k, s] of all) {
      const lead = k ? `${k},` : "";
      const sel = k ? `{${k}}` : "";
      this.buckets.forEach((b, i) => (out += `${this.name}_bucket{${lead}le="${b}"} ${s.counts[i]}\n`));
      out += `${this.name}_bucket{${lead}le="+Inf"} ${s.count}\n${this.name}_sum${sel} ${s.sum}\n${this.name}_count${sel} ${s.count}\n`;
    }
    return out;
  }
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createIngestMetrics() {
  return {
    frames: new Counter("ingest_frames_total", "Frames accepted, by kind."),
    samples: new Counter("ingest_samples_total", "Metric samples committed."),
    logLines: new Counter("ingest_log_lines_total", "Log lines committed."),
    bytes: new Counter("ingest_bytes_total", "Request body bytes read, by transport."),
    rejects: new Counter("ingest_rejects_total", "Frames refused, by reason."),
    frameAuth: new Counter("ingest_frames_authenticated_total", "Frames whose trailer checked out, by how: signature (Ed25519) or session (HMAC)."),
    sessionsOpened: new Counter("ingest_sessions_opened_total", "Agent sessions opened, by transport."),
    duplicates: new Counter("ingest_duplicate_batches_total", "Frames whose batch was already committed (acknowledged again, stored once)."),
    busy: new Counter("ingest_busy_total", "Requests answered 429/503 or streams told to slow down, by transport."),
    clientTimeouts: new Counter("ingest_client_timeouts_total", "Clients cut for being slow, by kind: body_rate (a request body below the minimum rate, 408), hello (a WebSocket without an authenticated hello in time)."),
    unauthenticatedRefused: new Counter("ingest_unauthenticated_refused_total", "Requests and streams refused (429) before authentication, by transport and reason: per_ip_cap (too many unauthenticated in flight from the address), failures (too many failed authentications from it this second)."),
    unauthenticatedCut: new Counter("ingest_unauthenticated_cut_total", "Requests answered before their body was read whole because no frame in it authenticated, by reason."),
    flushes: new Counter("batch_flushes_total", "Batches written, by trigger (rows, bytes, age)."),
    writeErrors: new Counter("store_write_errors_total", "Failed batch writes, by store."),
    flushSeconds: new Histogram("batch_flush_seconds", "Time from a batch's first frame to its commit.", SECONDS),
    copySeconds: new Histogram("store_copy_seconds", "Duration of one store transaction (dedupe, COPY, commit).", SECONDS),
    ackSeconds: new Histogram("ingest_ack_seconds", "Time from a request's body in hand to its acknowledgement (every frame in it committed or refused), by transport.", SECONDS),
  };
}

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;

export function renderMetrics(items: Array<{ render(): string }>): string {
  return items.map((m) => m.render()).join("");
}
