/**
 * Administering enterprise sign-in from the shell (until the console has pages for it):
 *   bun src/auth/sso/cli.ts provider list
 *   bun src/auth/sso/cli.ts provider set ID oidc|saml|ldap NAME --config FILE.json
 *   bun src/auth/sso/cli.ts provider import-saml ID NAME --metadata FILE|URL [--config FILE.json]
 *   bun src/auth/sso/cli.ts provider enable|disable ID
 *   bun src/auth/sso/cli.ts map ID GROUP=ROLE [GROUP=ROLE ...]      (replaces the provider's mappings)
 *   bun src/auth/sso/cli.ts policy [--enforced true|false] [--mfa trust-idp|require-local|off] [--require-mfa true|false]
 *   bun src/auth/sso/cli.ts break-glass USERNAME on|off
 * Every change is audited (config_change / user_management, actor "cli"). Uses DATABASE_URL or
 * the embedded PostgreSQL (stop the server first), like src/cli.ts.
 */
import type { Sql } from "postgres";
import { readFileSync } from "node:fs";
import { audit } from "../../audit/audit.ts";
import { createSecretBox, loadSecretKey, type SecretBox } from "../secret-box.ts";
import { listProviders, saveProvider, setGroupMappings, type ProviderKind } from "./providers.ts";
import { importIdpMetadata } from "./saml/metadata.ts";
import { loadSsoPolicy, saveSsoPolicy } from "./policy.ts";

const USAGE = `usage: sso provider list | provider set ID KIND NAME --config FILE | provider import-saml ID NAME --metadata FILE|URL [--config FILE]
       | provider enable|disable ID | map ID GROUP=ROLE... | policy [--enforced B] [--mfa MODE] [--require-mfa B] | break-glass USERNAME on|off`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function bool(v: string | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === "true" || v === "false") return v === "true";
  throw new Error(`${name} takes true or false, not ${v}`);
}

const SECRET_KEYS = /secret|password|privatekey/i;
function redact(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, SECRET_KEYS.test(k) ? "(set)" : k === "idpCerts" || k === "caPem" ? "(certificate)" : v]));
}

export async function runSsoCli(sql: Sql, secrets: SecretBox, args: string[], out: (line: string) => void = console.log): Promise<number> {
  const changed = (action: string, target: string, details: Record<string, unknown>, category: "config_change" | "user_management" = "config_change") =>
    audit(sql, { actor: { type: "system", name: "cli" }, category, action, target, success: true, details });
  const [noun, verb] = args;
  if (noun === "provider" && verb === "list") {
    for (const p of await listProviders(sql)) out(`${p.id}\t${p.kind}\t${p.enabled ? "enabled" : "disabled"}\t${p.name}`);
    return 0;
  }
  if (noun === "provider" && (verb === "set" || verb === "import-saml")) {
    const id = args[2] ?? "";
    const kind = (verb === "set" ? args[3] : "saml") as ProviderKind;
    const name = (verb === "set" ? args[4] : args[3]) ?? id;
    if (!["oidc", "saml", "ldap"].includes(kind)) throw new Error(`provider kind must be oidc, saml or ldap, not ${kind}`);
    const file = flag(args, "--config");
    let config: Record<string, unknown> = file ? JSON.parse(readFileSync(file, "utf8")) : {};
    if (verb === "import-saml") {
      const src = flag(args, "--metadata");
      if (!src) throw new Error("import-saml needs --metadata FILE|URL");
      const xml = /^https?:\/\//.test(src) ? await (await fetch(src, { signal: AbortSignal.timeout(10_000) })).text() : readFileSync(src, "utf8");
      config = { ...config, ...importIdpMetadata(xml) };
    }
    await saveProvider(sql, secrets, { id, kind, name, enabled: true, config });
    await changed("sso.provider.saved", `provider:${id}`, { kind, config: redact(config) });
    out(`provider ${id} (${kind}) saved`);
    return 0;
  }
  if (noun === "provider" && (verb === "enable" || verb === "disable")) {
    const r = await sql`update sso_providers set enabled = ${verb === "enable"}, updated_at = now() where id = ${args[2] ?? ""}`;
    if (r.count !== 1) throw new Error(`no provider ${args[2]}`);
    await changed(`sso.provider.${verb}d`, `provider:${args[2]}`, {});
    out(`provider ${args[2]} ${verb}d`);
    return 0;
  }
  if (noun === "map") {
    const id = args[1] ?? "";
    if (!(await sql`select 1 from sso_providers where id = ${id}`).length) throw new Error(`no provider ${id}`);
    const mappings = args.slice(2).map((a) => {
      const i = a.lastIndexOf("=");
      if (i <= 0) throw new Error(`mapping ${a} is not GROUP=ROLE`);
      return { group: a.slice(0, i), role: a.slice(i + 1) };
    });
    await setGroupMappings(sql, id, mappings);
    await changed("sso.mappings.saved", `provider:${id}`, { mappings });
    out(`${mappings.length} mapping(s) saved for ${id}`);
    return 0;
  }
  if (noun === "policy") {
    const cur = await loadSsoPolicy(sql);
    const next = {
      enforced: bool(flag(args, "--enforced"), "--enforced") ?? cur.enforced,
      mfa: (flag(args, "--mfa") as typeof cur.mfa | undefined) ?? cur.mfa,
      requireMfa: bool(flag(args, "--require-mfa"), "--require-mfa") ?? cur.requireMfa,
    };
    if (args.length > 1) {
      await saveSsoPolicy(sql, next);
      await changed("sso.policy.saved", "settings:sso", { before: cur, after: next });
    }
    out(JSON.stringify(next));
    return 0;
  }
  if (noun === "break-glass" && (args[2] === "on" || args[2] === "off")) {
    const r = await sql`update console_users set break_glass = ${args[2] === "on"} where username = ${(args[1] ?? "").toLowerCase()} returning id`;
    if (!r.length) throw new Error(`no user ${args[1]}`);
    await changed(args[2] === "on" ? "break_glass.flagged" : "break_glass.unflagged", `user:${args[1]}`, {}, "user_management");
    out(`break-glass ${args[2]} for ${args[1]}`);
    return 0;
  }
  out(USAGE);
  return 2;
}

if (import.meta.main) {
  const { loadConfig } = await import("../../config.ts");
  const { openDatabase } = await import("../../db.ts");
  const config = loadConfig();
  const db = await openDatabase(config, () => {});
  let code = 1;
  try {
    code = await runSsoCli(db.sql, createSecretBox(loadSecretKey(config.dataDir)), process.argv.slice(2));
  } catch (e) {
    console.error(`sso: ${(e as Error).message}`);
  } finally {
    await db.close();
  }
  process.exit(code);
}
