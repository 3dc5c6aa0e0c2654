/**
 * Sessions (docs/protocol.md 3.5): one signed hello buys an agent a 32-byte key, and frames
 * sealed with it are checked with an HMAC instead of an Ed25519 verification. Keys live in this
 * node's memory only, never in PostgreSQL or a log; a restart or another node simply does not
 * know them, and the agent opens a new session.
 *
 * Bounded twice: the newest `perAgent` sessions of each agent, and `max` in all (oldest first).
 * Insertion order is age order, so the oldest session is always the Map's first entry.
 */
import { randomBytes, randomInt } from "node:crypto";

export interface Session {
  agentId: number;
  id: number;
  key: Uint8Array;
  expiresMs: number;
}

export interface SessionOptions {
  ttlMs?: number;
  perAgent?: number;
  max?: number;
  now?: () => number;
}

export class SessionTable {
  private readonly byKey = new Map<string, Session>();
  private readonly byAgent = new Map<number, Session[]>();
  private readonly ttlMs: number;
  private readonly perAgent: number;
  private readonly max: number;
  private readonly now: () => number;
  /** Sessions dropped to stay within the bounds (not counting expiry). */
  evicted = 0;

  constructor(o: SessionOptions = {}) {
    this.ttlMs = o.ttlMs ?? 3_600_000;
    this.perAgent = o.perAgent ?? 4;
    this.max = o.max ?? 200_000;
    this.now = o.now ?? Date.now;
  }

  get size(): number {
    return this.byKey.size;
  }

  open(agentId: number): Session {
    this.sweep();
    const mine = this.byAgent.get(agentId) ?? [];
    let id: number;
    do id = randomInt(1, 2 ** 32);
    while (mine.some((s) => s.id === id));
    const s: Session = { agentId, id, key: new Uint8Array(randomBytes(32)), expiresMs: this.now() + this.ttlMs };
    mine.push(s);
    this.byAgent.set(agentId, mine);
    this.byKey.set(keyOf(agentId, id), s);
    while (mine.length > this.perAgent) {
      this.remove(mine[0]!);
      this.evicted++;
    }
    while (this.byKey.size > this.max) {
      this.remove(this.byKey.values().next().value!);
      this.evicted++;
    }
    return s;
  }

  /** The key of a live session, or undefined (never opened here, replaced, dropped or expired). */
  key(agentId: number, id: number): Uint8Array | undefined {
    const s = this.byKey.get(keyOf(agentId, id));
    if (!s) return undefined;
    if (s.expiresMs <= this.now()) {
      this.remove(s);
      return undefined;
    }
    return s.key;
  }

  /** Forgets every session of an agent (revocation). */
  drop(agentId: number): void {
    for (const s of this.byAgent.get(agentId) ?? []) this.byKey.delete(keyOf(agentId, s.id));
    this.byAgent.delete(agentId);
  }

  /** Removes expired sessions from the old end. */
  private sweep(): void {
    const t = this.now();
    for (const s of this.byKey.values()) {
      if (s.expiresMs > t) break;
      this.remove(s);
    }
  }

  private remove(s: Session): void {
    this.byKey.delete(keyOf(s.agentId, s.id));
    const mine = this.byAgent.get(s.agentId);
    if (!mine) return;
    const i = mine.indexOf(s);
    if (i >= 0) mine.splice(i, 1);
    if (mine.length === 0) this.byAgent.delete(s.agentId);
  }
}

function keyOf(agentId: number, id: number): string {
  return `${agentId}:${id}`;
}
