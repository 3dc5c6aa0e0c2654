/**
 * The spool: a bounded on-disk queue of batches (SQLite, WAL). Every batch is written here
 * before it is sent and leaves only when the server acknowledges that it is committed.
 *
 * - Ids come from AUTOINCREMENT, so they are never reused; the id is the frame's batch id.
 * - Bounded by bytes: when an append takes the spool over `maxBytes`, the oldest batches are
 *   dropped, and the drop is counted (batches and items) and kept across restarts.
 * - Also keeps the per-agent sequence counter, reserved in blocks so a restart never reuses one.
 */
import { Database } from "bun:sqlite";

export interface SpoolEntry {
  id: number;
  kind: number;
  items: number;
  createdMs: number;
  body: Uint8Array;
}

export interface SpoolStats {
  frames: number;
  bytes: number;
  maxBytes: number;
  droppedFrames: number;
  droppedItems: number;
  oldestMs: number | null;
}

export interface SpoolOptions {
  path: string;
  maxBytes: number;
  /** Sequence numbers reserved per write of the counter (default 256). */
  seqBlock?: number;
  /** Clock in ms; seeds the sequence counter of a new spool. */
  now?: () => number;
}

export interface Spool {
  append(e: Omit<SpoolEntry, "id">): number;
  /** Up to `limit` entries in id order, starting after `afterId`. */
  peek(limit: number, afterId?: number): SpoolEntry[];
  /** Removes acknowledged entries; returns how many were present. */
  ack(ids: number[]): number;
  has(id: number): boolean;
  nextSeq(): number;
  stats(): SpoolStats;
  close(): void;
}

/** Per-row overhead counted against the bound besides the body (row header, index entry). */
const ROW_OVERHEAD = 64;

export function createSpool(opts: SpoolOptions): Spool {
  const db = new Database(opts.path, { create: true, strict: true });
  // incremental auto-vacuum (must precede the first table): freed pages go back to the file system
  db.run("pragma auto_vacuum = incremental");
  db.run("pragma journal_mode = wal");
  db.run("pragma synchronous = normal");
  db.run("pragma busy_timeout = 5000");
  db.run(`create table if not exists frames (
    id integer primary key autoincrement, kind integer not null, items integer not null,
    created_ms integer not null, body blob not null) strict`);
  db.run("create table if not exists meta (k text primary key, v integer not null) strict");

  const getMeta = db.prepare<{ v: number }, [string]>("select v from meta where k = ?");
  const setMeta = db.prepare("insert into meta (k, v) values (?, ?) on conflict (k) do update set v = excluded.v");
  const meta = (k: string) => getMeta.get(k)?.v ?? 0;

  const insert = db.prepare<{ id: number }, [number, number, number, Uint8Array]>(
    "insert into frames (kind, items, created_ms, body) values (?, ?, ?, ?) returning id",
  );
  const oldest = db.prepare<{ id: number; items: number; n: number }, []>("select id, items, length(body) as n from frames order by id limit 1");
  const del = db.prepare("delete from frames where id = ?");
  const peekQ = db.prepare<{ id: number; kind: number; items: number; created_ms: number; body: Uint8Array }, [number, number]>(
    "select id, kind, items, created_ms, body from frames where id > ? order by id limit ?",
  );
  const hasQ = db.prepare<{ one: number }, [number]>("select 1 as one from frames where id = ?");

  const totals = db.query<{ n: number; b: number | null }, []>("select count(*) as n, sum(length(body)) as b from frames").get()!;
  let frames = totals.n;
  let bytes = (totals.b ?? 0) + frames * ROW_OVERHEAD;
  let droppedFrames = meta("dropped_frames");
  let droppedItems = meta("dropped_items");

  const seqBlock = opts.seqBlock ?? 256;
  // Everything below the stored mark may have been used before a crash; start above it.
  // A new spool starts at now * 1000, so a spool recreated under the same identity (deleted,
  // restored from an old backup) still starts above every number the agent sent before,
  // unless it sent more than 1000 frames per millisecond of its life.
  if (meta("seq_reserved") === 0) setMeta.run("seq_reserved", (opts.now ?? Date.now)() * 1000);
  let seq = meta("seq_reserved");
  let seqReserved = seq;

  let acksSinceVacuum = 0;

  const appendTx = db.transaction((e: Omit<SpoolEntry, "id">) => {
    const id = insert.get(e.kind, e.items, Math.trunc(e.createdMs), e.body)!.id;
    frames++;
    bytes += e.body.length + ROW_OVERHEAD;
    let dropped = 0;
    let droppedN = 0;
    while (bytes > opts.maxBytes && frames > 1) {
      const o = oldest.get()!;
      if (o.id === id) break;
      del.run(o.id);
      frames--;
      bytes -= o.n + ROW_OVERHEAD;
      dropped++;
      droppedN += o.items;
    }
    if (dropped) {
      droppedFrames += dropped;
      droppedItems += droppedN;
      setMeta.run("dropped_frames", droppedFrames);
      setMeta.run("dropped_items", droppedItems);
    }
    return id;
  });

  return {
    append(e) {
      return appendTx(e);
    },
    peek(limit, afterId = 0) {
      return peekQ.all(afterId, limit).map((r) => ({ id: r.id, kind: r.kind, items: r.items, createdMs: r.created_ms, body: r.body }));
    },
    ack(ids) {
      let n = 0;
      acksSinceVacuum += ids.length;
      db.transaction(() => {
        for (const id of ids) {
          const row = db.query<{ n: number }, [number]>("select length(body) as n from frames where id = ?").get(id);
          if (!row) continue;
          del.run(id);
          frames--;
          bytes -= row.n + ROW_OVERHEAD;
          n++;
        }
      })();
      if (acksSinceVacuum >= 256 || frames === 0) {
        db.run("pragma incremental_vacuum");
        acksSinceVacuum = 0;
      }
      return n;
    },
    has(id) {
      return hasQ.get(id) !== null;
    },
    nextSeq() {
      seq++;
      if (seq > seqReserved) {
        seqReserved = seq + seqBlock;
        setMeta.run("seq_reserved", seqReserved);
      }
      return seq;
    },
    stats() {
      const o = db.query<{ c: number | null }, []>("select min(created_ms) as c from frames").get();
      return { frames, bytes, maxBytes: opts.maxBytes, droppedFrames, droppedItems, oldestMs: o?.c ?? null };
    },
    close() {
      db.close();
    },
  };
}
