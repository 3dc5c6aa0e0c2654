/**
 * A real SAML 2.0 IdP for tests: Debian's SimpleSAMLphp served by `php -S` on 127.0.0.1, with a
 * configuration generated in a temporary directory (SIMPLESAMLPHP_CONFIG_DIR): a hosted IdP
 * signing responses and assertions with a fresh RSA key, one remote SP (ours), and
 * exampleauth:UserPass users whose groups the test can change between sign-ins.
 * Stopped and removed by the test that started it.
 */
import { stopChild } from "./process.ts";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./slapd.ts";

export const SSP_WWW = "/usr/share/simplesamlphp/www";

export function simpleSamlPhpAvailable(): boolean {
  return existsSync(`${SSP_WWW}/saml2/idp/SSOService.php`) && spawnSync("php", ["-v"]).status === 0 && spawnSync("openssl", ["version"]).status === 0;
}

export interface SspUser {
  password: string;
  uid: string;
  mail: string;
  displayName: string;
  groups: string[];
}

export interface TestIdp {
  baseUrl: string;
  entityId: string;
  metadataUrl: string;
  certPem: string;
  users: Record<string, SspUser>;
  /** Rewrites authsources.php after changing `users` (read again on each request). */
  saveUsers(): void;
  stop(): Promise<void>;
}

const php = (v: unknown): string => {
  if (Array.isArray(v)) return `[${v.map(php).join(", ")}]`;
  if (v && typeof v === "object") return `[${Object.entries(v).map(([k, x]) => `${php(k)} => ${php(x)}`).join(", ")}]`;
  if (typeof v === "boolean") return v ? "true" : "false";
  return `'${String(v).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
};

export async function startSimpleSamlPhp(sps: Array<{ entityId: string; acsUrl: string; signResponse?: boolean; signAssertion?: boolean; nameIdFormat?: string }>, users: Record<string, SspUser>): Promise<TestIdp> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-ssp-"));
  for (const d of ["config", "metadata", "cert", "log", "data", "tmp", "sessions"]) mkdirSync(join(dir, d));
  const key = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj", "/CN=simplesamlphp test idp",
    "-keyout", join(dir, "cert", "idp.key"), "-out", join(dir, "cert", "idp.crt")], { encoding: "utf8" });
  if (key.status !== 0) throw new Error(`openssl failed: ${key.stderr}`);
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const entityId = `${baseUrl}/saml2/idp/metadata.php`;
  writeFileSync(join(dir, "config", "config.php"), `<?php
$config = ${php({
    baseurlpath: `${baseUrl}/`,
    certdir: `${dir}/cert/`,
    loggingdir: `${dir}/log/`,
    datadir: `${dir}/data/`,
    tempdir: `${dir}/tmp`,
    technicalcontact_name: "Test",
    technicalcontact_email: "test@example.test",
    secretsalt: crypto.randomUUID(),
    "auth.adminpassword": crypto.randomUUID(),
    admin_protectindexpage: true,
    admin_protectmetadata: false,
    timezone: "UTC",
    "logging.handler": "file",
    "logging.logfile": "simplesamlphp.log",
    "enable.saml20-idp": true,
    "module.enable": { exampleauth: true, core: true, saml: true, admin: true },
    "store.type": "phpsession",
    "session.cookie.secure": false,
    "session.phpsession.cookiename": "SSPSESSID",
    "session.phpsession.savepath": `${dir}/sessions`,
    "language.default": "en",
    "trusted.url.domains": [`127.0.0.1:${port}`],
    "metadata.sources": [{ type: "flatfile", directory: `${dir}/metadata` }],
  })};
$config['logging.level'] = SimpleSAML\\Logger::WARNING;
`);
  const idp: TestIdp = {
    baseUrl,
    entityId,
    metadataUrl: entityId,
    certPem: readFileSync(join(dir, "cert", "idp.crt"), "utf8"),
    users,
    saveUsers() {
      const table: Record<string, unknown> = { "exampleauth:UserPass": true };
      for (const [name, u] of Object.entries(idp.users)) {
        table[`${name}:${u.password}`] = { uid: [u.uid], mail: [u.mail], displayName: [u.displayName], groups: u.groups };
      }
      const entries = Object.entries(table).slice(1).map(([k, v]) => `${php(k)} => ${php(v)}`).join(",\n  ");
      writeFileSync(join(dir, "config", "authsources.php"), `<?php
$config = [
  'admin' => ['core:AdminPassword'],
  'example-userpass' => ['exampleauth:UserPass',
  ${entries}
  ],
];
`);
    },
    async stop() {
      await stopChild(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  idp.saveUsers();
  writeFileSync(join(dir, "metadata", "saml20-idp-hosted.php"), `<?php
$metadata[${php(entityId)}] = ${php({
    host: "__DEFAULT__",
    privatekey: "idp.key",
    certificate: "idp.crt",
    auth: "example-userpass",
    "saml20.sign.response": true,
    "saml20.sign.assertion": true,
    "signature.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
  })};
`);
  writeFileSync(join(dir, "metadata", "saml20-sp-remote.php"), `<?php
${sps.map((sp) => `$metadata[${php(sp.entityId)}] = ${php({
    AssertionConsumerService: [{ Binding: "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", Location: sp.acsUrl }],
    NameIDFormat: sp.nameIdFormat ?? "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "simplesaml.nameidattribute": "uid",
    "saml20.sign.response": sp.signResponse ?? true,
    "saml20.sign.assertion": sp.signAssertion ?? true,
  })};`).join("\n")}
`);
  writeFileSync(join(dir, "metadata", "saml20-idp-remote.php"), "<?php\n");
  writeFileSync(join(dir, "metadata", "saml20-sp-hosted.php"), "<?php\n");
  const proc: ChildProcess = spawn("php", ["-d", `session.save_path=${dir}/sessions`, "-d", "display_errors=0", "-d", "opcache.enable=0", "-d", "opcache.enable_cli=0", "-S", `127.0.0.1:${port}`, "-t", SSP_WWW], {
    env: { ...process.env, SIMPLESAMLPHP_CONFIG_DIR: join(dir, "config") },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr = (stderr + String(d)).slice(-4000)));
  const end = Date.now() + 10_000;
  for (;;) {
    const ok = await fetch(idp.metadataUrl).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > end || proc.exitCode !== null) {
      await idp.stop();
      throw new Error(`SimpleSAMLphp did not serve its metadata: ${stderr.slice(-800)}`);
    }
    await Bun.sleep(100);
  }
  return idp;
}

/** Hidden and text inputs of the first form on a page, with its action. */
export function readForm(html: string, base: string): { action: string; fields: Record<string, string> } {
  const form = /<form[^>]*action="([^"]*)"[\s\S]*?<\/form>/i.exec(html);
  if (!form) throw new Error(`no form in page: ${html.slice(0, 400)}`);
  const fields: Record<string, string> = {};
  for (const m of form[0].matchAll(/<input[^>]*>/gi)) {
    const name = /name="([^"]*)"/i.exec(m[0])?.[1];
    const value = /value="([^"]*)"/i.exec(m[0])?.[1] ?? "";
    if (name) fields[name] = value.replace(/&quot;/g, '"').replace(/&#0?39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }
  const action = form[1]!.replace(/&amp;/g, "&");
  return { action: new URL(action || base, base).toString(), fields };
}

/**
 * Signs in at SimpleSAMLphp's own login page with fetch, starting from our AuthnRequest URL, and
 * returns the auto-submit form it answers with (action = our ACS, SAMLResponse, RelayState).
 */
export async function signInAtSsp(authnUrl: string, username: string, password: string): Promise<{ action: string; fields: Record<string, string> }> {
  const { CookieJar } = await import("./oidc-provider.ts");
  const jar = new CookieJar();
  let url = authnUrl;
  let res: Response;
  for (let i = 0; ; i++) {
    res = await jar.fetch(url);
    if (res.status < 300 || res.status >= 400) break;
    url = new URL(res.headers.get("location")!, url).toString();
    if (i > 8) throw new Error("too many redirects at SimpleSAMLphp");
  }
  const login = readForm(await res.text(), url);
  const body = new URLSearchParams({ ...login.fields, username, password });
  let post = await jar.fetch(login.action, { method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded" } });
  let at = login.action;
  for (let i = 0; post.status >= 300 && post.status < 400; i++) {
    at = new URL(post.headers.get("location")!, at).toString();
    post = await jar.fetch(at);
    if (i > 8) throw new Error("too many redirects at SimpleSAMLphp");
  }
  const html = await post.text();
  if (!html.includes("SAMLResponse")) throw new Error(`SimpleSAMLphp did not answer with a SAMLResponse (HTTP ${post.status}): ${html.replace(/\s+/g, " ").slice(0, 600)}`);
  return readForm(html, at);
}
