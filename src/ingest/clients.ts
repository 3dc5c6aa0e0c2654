/**
 * What a client that has not proven who it is may cost: no gate token, a bounded number of
 * bytes, a minimum pace, and at most `maxUnauthenticatedPerIp` requests or streams in flight
 * per address. A request or stream counts here from its start until one of its frames (or its
 * hello) authenticates, or it ends. See docs/protocol.md ("Before authentication").
 */
import type { ClientLimits } from "../config.ts";

export class UnauthenticatedClients {
  private readonly byIp = new Map<string, number>();
  private count = 0;

  constructor(readonly limits: ClientLimits) {}

  /** Unauthenticated requests and streams in flight, all addresses. */
  get inFlight(): number {
    return this.count;
  }

  /** Counts one more for `ip`, or false when the address is at its cap (nothing counted then). */
  enter(ip: string): boolean {
    const n = this.byIp.get(ip) ?? 0;
    if (n >= this.limits.maxUnauthenticatedPerIp) return false;
    this.byIp.set(ip, n + 1);
    this.count++;
    return true;
  }

  /** Gives back what enter() counted; call once per successful enter(). */
  leave(ip: string): void {
    const n = this.byIp.get(ip);
    if (n === undefined) return;
    if (n <= 1) this.byIp.delete(ip);
    else this.byIp.set(ip, n - 1);
    this.count--;
  }
}
