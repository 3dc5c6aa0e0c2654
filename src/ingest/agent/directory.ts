/**
 * Who may send frames: each enrolled agent's Ed25519 public key, its revocation state and its
 * replay window, cached in memory and re-read from PostgreSQL every `recheckMs` so that a
 * revocation made on any node takes effect within that time. Unknown ids are remembered
 * briefly (bounded) so garbage cannot turn into a query per frame. The agents' sessions
 * (docs/protocol.md 3.5) are kept beside them and go with a revocation.
 */
import type { Sql } from "postgres";
import { createPublicKey, type KeyObject } from "node:crypto";
import { ReplayWindow } from "./replay-window.ts";
import { SessionTable } from "./sessions.ts";

export interface AgentEntry {
  id: number;
  key: KeyObject;
  revoked: boolean;
  replay: ReplayWindow;
  checkedAt: number;
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw).toString("base64url") }, format: "jwk" });
}

export class AgentDirectory {
  private entries = new Map<number, AgentEntry>();
  private unknown = new Map<number, number>();
  private loading = new Map<number, Promise<AgentEntry | undefined>>();

  constructor(
    private readonly sql: Sql,
    private readonly recheckMs = 15_000,
    private readonly maxUnknown = 10_000,
    readonly sessions = new SessionTable(),
  ) {}

  async lookup(id: number): Promise<AgentEntry | undefined> {
    const now = Date.now();
    const e = this.entries.get(id);
    if (e && now - e.checkedAt < this.recheckMs) return e;
    const miss = this.unknown.get(id);
    if (!e && miss !== undefined && now - miss < this.recheckMs) return undefined;
    let p = this.loading.get(id);
    if (!p) {
      p = this.load(id, e).finally(() => this.loading.delete(id));
      this.loading.set(id, p);
    }
    return p;
  }

  private async load(id: number, prev: AgentEntry | undefined): Promise<AgentEntry | undefined> {
    const rows = await this.sql<{ public_key: Uint8Array; revoked: boolean; last_seq: string }[]>`
      select public_key, revoked_at is not null as revoked, last_seq from agents where id = ${id}`;
    const now = Date.now();
    if (rows.length === 0) {
      this.entries.delete(id);
      if (this.unknown.size >= this.maxUnknown) this.unknown.clear();
      this.unknown.set(id, now);
      return undefined;
    }
    const r = rows[0]!;
    if (prev) {
      if (r.revoked) this.sessions.drop(id);
      prev.revoked = r.revoked;
      prev.checkedAt = now;
      return prev;
    }
    const entry: AgentEntry = {
      id,
      key: publicKeyFromRaw(r.public_key),
      revoked: r.revoked,
      replay: new ReplayWindow(Number(r.last_seq)),
      checkedAt: now,
    };
    this.entries.set(id, entry);
    return entry;
  }

  /** Forgets an agent at once on this node (after revocation). */
  invalidate(id: number): void {
    this.entries.delete(id);
    this.sessions.drop(id);
  }

  /** Highest sequence number seen per agent, for the agent-state flusher. */
  highWater(): Array<[number, number]> {
    return [...this.entries.values()].map((e) => [e.id, e.replay.highest]);
  }
}
