/**
 * LDAP sign-in from the login form: one LdapDirectory (and connection pool) per provider,
 * rebuilt when the provider's settings change, closed with `close()`.
 */
import type { SsoDeps } from "../deps.ts";
import type { RequestInfo } from "../audit-event.ts";
import { getProvider } from "../providers.ts";
import { completeSignIn, type SignedIn } from "../sign-in.ts";
import { SsoError } from "../types.ts";
import { LdapDirectory } from "./directory.ts";
import type { LdapSettings } from "./settings.ts";

export class LdapDirectories {
  private dirs = new Map<string, { json: string; dir: LdapDirectory }>();

  constructor(private readonly deps: SsoDeps) {}

  async get(providerId: string): Promise<LdapDirectory> {
    const p = await getProvider<LdapSettings>(this.deps.sql, this.deps.secrets, providerId, "ldap");
    if (!p) throw new SsoError("unknown_provider", "This sign-in provider is not configured.", { provider: providerId.slice(0, 40) });
    const json = JSON.stringify(p.config);
    const hit = this.dirs.get(providerId);
    if (hit && hit.json === json) return hit.dir;
    if (hit) void hit.dir.close();
    const dir = new LdapDirectory(providerId, p.config, this.deps.config.ldap);
    this.dirs.set(providerId, { json, dir });
    return dir;
  }

  async signIn(providerId: string, username: string, password: string, req: RequestInfo): Promise<SignedIn> {
    const dir = await this.get(providerId);
    const ident = await dir.authenticate(username, password);
    return completeSignIn(this.deps, "ldap", ident, dir.settings, req);
  }

  async close(): Promise<void> {
    const all = [...this.dirs.values()];
    this.dirs.clear();
    await Promise.all(all.map((d) => d.dir.close()));
  }
}
