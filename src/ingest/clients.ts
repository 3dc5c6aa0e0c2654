/**
 * What a client that has not proven who it is may cost: no gate token, a bounded number of
 * bytes, a minimum pace, and at most `maxUnauthenticatedPerIp` requests or streams in flight
 * per address. A request or stream counts here from its start until one of its frames (or its
 * hello) authenticates, or it ends. Failed authentications cost a signature check or a lookup
 * each: an address that fails more than `maxAuthFailuresPerIp` times in a second is refused
 * without checking until the next second. See docs/protocol.md ("Before authentication").
 */
import type { ClientLimits } from "../config.ts";

export class UnauthenticatedClients {
  private readonly byIp = new Map<string, number>();
  private count = 0;
  /** Failed authentications per address in the current one-second window. */
  private failures = new Map<string, number>();
  private window = 0;

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

  /** May this address try to authenticate now (it has not failed too often this second)? */
  mayTry(ip: string): boolean {
    this.tick();
    return (this.failures.get(ip) ?? 0) < this.limits.maxAuthFailuresPerIp;
  }

  /** Counts a failed authentication (bad signature or tag, unknown agent, bad hello) for the address. */
  failed(ip: string): void {
    this.tick();
    this.failures.set(ip, (this.failures.get(ip) ?? 0) + 1);
  }

  /** A fixed one-second window: the counts start again every second, so the map holds only this second's addresses. */
  private tick(): void {
    const w = Math.floor(performance.now() / 1000);
    if (w !== this.window) {
      this.window = w;
      this.failures.clear();
    }
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
