/**
 * A real OpenID Provider (the npm package oidc-provider) on 127.0.0.1 for tests: discovery, JWKS,
 * authorization code + PKCE, userinfo, RP-initiated logout, and its built-in login/consent pages.
 * Any password is accepted for a known account; `accounts` can be changed between sign-ins
 * (e.g. to remove a group). Stopped by the test that started it.
 */
import Provider from "oidc-provider";
import { createServer, type Server } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { generateKeyPair, exportJWK } from "jose";

export interface TestAccount {
  preferred_username: string;
  email?: string;
  name?: string;
  groups: string[];
}

export interface TestOp {
  issuer: string;
  /** The OP's self-signed certificate when started with TLS. */
  caPem?: string;
  accounts: Map<string, TestAccount>;
  addClient(c: { client_id: string; client_secret?: string; redirect_uris: string[]; post_logout_redirect_uris?: string[] }): void;
  stop(): Promise<void>;
}

export async function startTestOp(clients: Array<{ client_id: string; client_secret?: string; redirect_uris: string[]; post_logout_redirect_uris?: string[] }>, opts: { tls?: boolean } = {}): Promise<TestOp> {
  const accounts = new Map<string, TestAccount>();
  const cert = opts.tls ? createSelfSigned(["127.0.0.1"], "test OP") : undefined;
  const server: Server = cert ? (createTlsServer({ cert: cert.certPem, key: cert.keyPem }) as unknown as Server) : createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const issuer = `${cert ? "https" : "http"}://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), alg: "RS256", use: "sig", kid: "test-rs256" };
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: c.client_secret ? "client_secret_basic" : "none",
      ...c,
    })),
    jwks: { keys: [jwk as never] },
    cookies: { keys: ["test-cookie-key-0123456789abcdef"] },
    pkce: { required: () => true },
    claims: { openid: ["sub"], profile: ["preferred_username", "name"], email: ["email"], groups: ["groups"] },
    scopes: ["openid", "profile", "email", "groups"],
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    ttl: { IdToken: 600, AccessToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
    async findAccount(_ctx: unknown, id: string) {
      const a = accounts.get(id);
      if (!a) return undefined;
      return { accountId: id, async claims() { const cur = accounts.get(id)!; return { sub: id, ...cur }; } };
    },
  } as never);
  (provider as unknown as { proxy: boolean }).proxy = false;
  server.on("request", provider.callback());
  return {
    issuer,
    caPem: cert?.certPem,
    accounts,
    addClient() {
      throw new Error("clients are fixed at start");
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A minimal cookie jar for driving the provider's pages with fetch. */
export class CookieJar {
  private cookies = new Map<string, string>();
  /** Trusted CA for a TLS provider. */
  caPem?: string;
  store(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair!.indexOf("=");
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(url, { ...init, ...(this.caPem ? { tls: { ca: this.caPem } } : {}), redirect: "manual", headers: { ...(init.headers as Record<string, string>), cookie: this.header() } });
    this.store(res);
    return res;
  }
}

/**
 * Signs in at the provider's own pages with fetch: follows the authorization URL through login
 * and consent and returns the final redirect to the client (redirect_uri?code=...&state=...).
 */
export async function signInAtOp(authUrl: string, login: string, stopAt: string, jar = new CookieJar(), caPem?: string): Promise<string> {
  if (caPem) jar.caPem = caPem;
  let url = authUrl;
  for (let i = 0; i < 12; i++) {
    if (url.startsWith(stopAt)) return url;
    const res = await jar.fetch(url);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get("location")!, url).toString();
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (!action) throw new Error(`no form at ${url}: HTTP ${res.status} ${html.slice(0, 300)}`);
    const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
    const body = new URLSearchParams(prompt === "login" ? { prompt, login, password: "any" } : { prompt: prompt ?? "consent" });
    const post = await jar.fetch(new URL(action, url).toString(), { method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded" } });
    if (post.status < 300 || post.status >= 400) throw new Error(`form post at ${action}: HTTP ${post.status} ${(await post.text()).slice(0, 300)}`);
    url = new URL(post.headers.get("location")!, url).toString();
  }
  throw new Error("too many redirects at the provider");
}
