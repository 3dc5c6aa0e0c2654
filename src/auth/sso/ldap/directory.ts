/**
 * LDAP / Active Directory sign-in: find the user with the service account (pooled), check the
 * password by binding as that user on a fresh connection, then collect group names, nested
 * groups included. Returns an ExternalIdentity for provisioning.
 */
import type { Client, Entry } from "ldapts";
import { bounded, connect, LdapPool, type LdapPoolOptions } from "./pool.ts";
import { escapeFilterValue, fillFilter } from "./filter.ts";
import type { LdapSettings } from "./settings.ts";
import { SsoError, type ExternalIdentity } from "../types.ts";

const AD_IN_CHAIN = "1.2.840.113556.1.4.1941";
const AD_DISABLED = 0x2;

function first(e: Entry, attr: string): string | undefined {
  const v = e[attr];
  const x = Array.isArray(v) ? v[0] : v;
  if (x === undefined) return undefined;
  return Buffer.isBuffer(x) ? x.toString("hex") : String(x);
}

function groupName(s: LdapSettings, e: Entry): string {
  const attr = s.groupNameAttribute ?? "cn";
  return attr === "dn" ? e.dn : (first(e, attr) ?? e.dn);
}

function and(a: string, b: string | undefined): string {
  return b ? `(&${b}${a})` : a;
}

export class LdapDirectory {
  readonly pool: LdapPool;

  constructor(readonly providerId: string, readonly settings: LdapSettings, poolOptions: LdapPoolOptions = {}) {
    this.pool = new LdapPool(settings, poolOptions);
  }

  /** Checks the password and returns who signed in; throws SsoError("bad_credentials") on any mismatch. */
  async authenticate(username: string, password: string): Promise<ExternalIdentity> {
    const s = this.settings;
    // An empty password would be an unauthenticated bind, which many servers accept (RFC 4513 5.1.2).
    if (!username || !password || username.length > 256 || password.length > 1024) {
      throw new SsoError("bad_credentials", "Wrong username or password.");
    }
    const attrs = [s.usernameAttribute ?? "uid", s.emailAttribute ?? "mail", s.nameAttribute ?? "cn", "userAccountControl"];
    if (s.subjectAttribute) attrs.push(s.subjectAttribute);
    const entries = await this.pool.use(async (c) => (await c.search(s.userBase, {
      scope: "sub",
      filter: fillFilter(s.userFilter, { username }),
      attributes: attrs,
      sizeLimit: 2,
      explicitBufferAttributes: s.subjectAttribute === "objectGUID" ? ["objectGUID"] : [],
    })).searchEntries).catch((e) => {
      if (e instanceof SsoError) throw e;
      // more than one match reports sizeLimitExceeded: ambiguous, refuse
      throw new SsoError("ldap_search_failed", "The directory search failed.", { error: String((e as Error).message).slice(0, 200) });
    });
    if (entries.length !== 1) throw new SsoError("bad_credentials", "Wrong username or password.", { matches: entries.length });
    const user = entries[0]!;
    if ((s.checkAdDisabled ?? s.nested === "ad") && (Number(first(user, "userAccountControl") ?? 0) & AD_DISABLED)) {
      throw new SsoError("disabled", "This directory account is disabled.");
    }

    const userConn = await connect(s);
    try {
      await bounded(s, userConn, "the user bind", userConn.bind(user.dn, password));
    } catch (e) {
      if (e instanceof SsoError && e.reason === "ldap_timeout") throw e;
      throw new SsoError("bad_credentials", "Wrong username or password.", { error: (e as Error).name });
    } finally {
      void userConn.unbind().catch(() => {});
    }

    const groups = await this.pool.use((c) => this.groupsOf(c, user.dn));
    return {
      provider: this.providerId,
      subject: s.subjectAttribute ? (first(user, s.subjectAttribute) ?? user.dn) : user.dn.toLowerCase(),
      username: first(user, s.usernameAttribute ?? "uid") ?? username,
      email: first(user, s.emailAttribute ?? "mail"),
      displayName: first(user, s.nameAttribute ?? "cn"),
      groups,
      idpMfa: false,
    };
  }

  /** Group names the DN belongs to, nested membership included per `nested`. */
  async groupsOf(c: Client, dn: string): Promise<string[]> {
    const s = this.settings;
    const member = s.memberAttribute ?? "member";
    const attributes = [s.groupNameAttribute && s.groupNameAttribute !== "dn" ? s.groupNameAttribute : "cn"];
    if (s.nested === "ad") {
      const filter = and(`(${member}:${AD_IN_CHAIN}:=${escapeFilterValue(dn)})`, s.groupFilter);
      const { searchEntries } = await c.search(s.groupBase, { scope: "sub", filter, attributes, sizeLimit: 2000 });
      return searchEntries.map((e) => groupName(s, e));
    }
    const seen = new Map<string, string>();
    let frontier = [dn];
    const depth = s.nested === "recursive" ? (s.maxDepth ?? 10) : 1;
    for (let level = 0; level < depth && frontier.length; level++) {
      const filter = and(`(|${frontier.map((d) => `(${member}=${escapeFilterValue(d)})`).join("")})`, s.groupFilter);
      const { searchEntries } = await c.search(s.groupBase, { scope: "sub", filter, attributes, sizeLimit: 2000 });
      frontier = [];
      for (const e of searchEntries) {
        const key = e.dn.toLowerCase();
        if (seen.has(key)) continue; // cycles end here
        seen.set(key, groupName(s, e));
        frontier.push(e.dn);
      }
    }
    return [...seen.values()];
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
