/**
 * A small bounded pool of LDAP connections bound as the service account, one pool per
 * provider. Connections are reused for searches; a connection that fails is dropped. Waiting
 * for a free connection is bounded by `acquireTimeoutMs`. User password checks never use the
 * pool: they bind on a fresh connection so a pooled one never changes identity.
 */
import { Client } from "ldapts";
import type { LdapSettings } from "./settings.ts";
import { SsoError } from "../types.ts";

export interface LdapPoolOptions {
  /** Connections per provider (default 4). */
  size?: number;
  /** Longest wait for a free connection, in ms (default 5000). */
  acquireTimeoutMs?: number;
  /** Idle connections older than this are closed instead of reused, in ms (default 60000). */
  idleMs?: number;
}

export function checkTransport(s: LdapSettings): void {
  const u = new URL(s.url);
  if (u.protocol === "ldaps:") return;
  if (u.protocol === "ldap:" && (s.startTls || s.allowPlaintext)) return;
  throw new SsoError("ldap_insecure", `LDAP at ${u.host} needs ldaps:// or startTls (allowPlaintext permits plain LDAP for labs only).`);
}

/**
 * Bounds an LDAP call: ldapts's own timeouts do not cover a TLS handshake that never completes.
 * On expiry the connection is abandoned (closed without waiting).
 */
export async function bounded<T>(s: LdapSettings, c: Client, what: string, p: Promise<T>): Promise<T> {
  const ms = (s.connectTimeoutMs ?? 3000) + (s.timeoutMs ?? 5000);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void c.unbind().catch(() => {});
      reject(new SsoError("ldap_timeout", `The directory did not answer ${what} within ${ms} ms (ldap timeoutMs + connectTimeoutMs).`));
    }, ms);
  });
  try {
    return await Promise.race([p, expiry]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a connection (TLS or StartTLS as configured) without binding. */
export async function connect(s: LdapSettings): Promise<Client> {
  checkTransport(s);
  const tlsOptions = { ca: s.caPem ? [s.caPem] : undefined, minVersion: "TLSv1.2" as const };
  const client = new Client({
    url: s.url,
    timeout: s.timeoutMs ?? 5000,
    connectTimeout: s.connectTimeoutMs ?? 3000,
    tlsOptions: s.url.startsWith("ldaps:") ? tlsOptions : undefined,
    strictDN: true,
  });
  try {
    if (s.startTls && s.url.startsWith("ldap:")) await bounded(s, client, "StartTLS", client.startTLS(tlsOptions));
  } catch (e) {
    await client.unbind().catch(() => {});
    throw new SsoError("ldap_unreachable", "The directory refused a TLS connection.", { error: String(e).slice(0, 200) });
  }
  return client;
}

interface Idle {
  client: Client;
  since: number;
}

export class LdapPool {
  private idle: Idle[] = [];
  private busy = 0;
  private waiters: Array<(c: Client | Error) => void> = [];
  private closed = false;

  constructor(private readonly settings: LdapSettings, private readonly opts: LdapPoolOptions = {}) {}

  get stats() {
    return { idle: this.idle.length, busy: this.busy, waiting: this.waiters.length };
  }

  private async open(): Promise<Client> {
    const c = await connect(this.settings);
    try {
      await bounded(this.settings, c, "the service bind", c.bind(this.settings.bindDn, this.settings.bindPassword));
    } catch (e) {
      void c.unbind().catch(() => {});
      if (e instanceof SsoError) throw e;
      const error = String((e as Error).message ?? e).slice(0, 200);
      if ((e as Error).name === "InvalidCredentialsError") throw new SsoError("ldap_service_bind", "The directory refused the service account.", { error });
      throw new SsoError("ldap_unreachable", `The directory at ${new URL(this.settings.url).host} could not be reached.`, { error });
    }
    return c;
  }

  private async acquire(): Promise<Client> {
    if (this.closed) throw new SsoError("ldap_closed", "The LDAP pool is closed.");
    const now = Date.now();
    while (this.idle.length) {
      const it = this.idle.pop()!;
      if (now - it.since < (this.opts.idleMs ?? 60_000) && it.client.isConnected) {
        this.busy++;
        return it.client;
      }
      void it.client.unbind().catch(() => {});
    }
    if (this.busy < (this.opts.size ?? 4)) {
      this.busy++;
      try {
        return await this.open();
      } catch (e) {
        this.busy--;
        throw e;
      }
    }
    return new Promise<Client>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new SsoError("ldap_pool_timeout", `No LDAP connection became free within ${this.opts.acquireTimeoutMs ?? 5000} ms (ldap pool size ${this.opts.size ?? 4}).`));
      }, this.opts.acquireTimeoutMs ?? 5000);
      const waiter = (c: Client | Error) => {
        clearTimeout(timer);
        if (c instanceof Error) reject(c);
        else resolve(c);
      };
      this.waiters.push(waiter);
    });
  }

  private release(c: Client, healthy: boolean): void {
    const next = this.waiters.shift();
    if (healthy && next) return next(c); // handed over, still busy
    if (!healthy) void c.unbind().catch(() => {});
    if (next) {
      // a broken connection was dropped: open a fresh one for the waiter
      this.open().then(next, (e: Error) => {
        this.busy--;
        next(e);
      });
      return;
    }
    this.busy--;
    if (healthy && !this.closed) this.idle.push({ client: c, since: Date.now() });
    else if (healthy) void c.unbind().catch(() => {});
  }

  /** Runs `fn` on a pooled, service-bound connection. */
  async use<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = await this.acquire();
    try {
      const r = await fn(c);
      this.release(c, true);
      return r;
    } catch (e) {
      // protocol-level errors (no such object...) leave the connection usable; socket errors do not
      this.release(c, c.isConnected && !/timeout|ECONN|socket|closed/i.test(String((e as Error).message)));
      throw e;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.idle.splice(0);
    await Promise.all(all.map((i) => i.client.unbind().catch(() => {})));
  }
}
