import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Elysia } from "elysia";
import { downloadsPlugin, pubkeyPin } from "../../src/downloads/routes.ts";
import { installCommand } from "../../src/downloads/install-script.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { tempDirs } from "../support/temp.ts";

const dists = tempDirs("sm-dist-");
const prefixes = tempDirs("sm-prefix-");
afterAll(() => [dists, prefixes].forEach((d) => d.removeAll()));
const dist = dists.make();
const fakeBinary = "#!/bin/sh\necho fake-agent \"$@\"\n";
const sha = (s: string | Uint8Array) => createHash("sha256").update(s).digest("hex");
// install.sh picks linux-x64-musl where a musl loader exists: serve both
writeFileSync(join(dist, "servermind-agent-linux-x64"), fakeBinary, { mode: 0o755 });
writeFileSync(join(dist, "servermind-agent-linux-x64-musl"), fakeBinary, { mode: 0o755 });
writeFileSync(join(dist, "SHA256SUMS"), `${sha(fakeBinary)}  servermind-agent-linux-x64\n${sha(fakeBinary)}  servermind-agent-linux-x64-musl\n`);
const cert = createSelfSigned(["127.0.0.1", "localhost"]);
const app = new Elysia().use(downloadsPlugin({ distDir: dist, certPem: cert.certPem, publicUrl: "https://servermind.example.net:8443" }));
const get = (path: string) => app.handle(new Request(`https://127.0.0.1:8443${path}`));

describe("routes", () => {
  test("SHA256SUMS and a known target are served", async () => {
    const sums = await get("/api/v1/agent/SHA256SUMS");
    expect(sums.status).toBe(200);
    expect(await sums.text()).toContain("servermind-agent-linux-x64");
    const bin = await get("/api/v1/agent/download/linux-x64");
    expect(bin.status).toBe(200);
    expect(bin.headers.get("content-disposition")).toContain("servermind-agent-linux-x64");
    expect(await bin.text()).toBe(fakeBinary);
  });

  test("unknown or unbuilt targets and traversal attempts are 404", async () => {
    for (const t of ["linux-mips", "..%2F..%2Fetc%2Fpasswd", "darwin-arm64"]) {
      const r = await get(`/api/v1/agent/download/${t}`);
      expect(r.status).toBe(404);
    }
  });

  test("install.sh pins the server key and fingerprint and is valid sh", async () => {
    const r = await get("/install.sh");
    const text = await r.text();
    expect(text).toContain(pubkeyPin(cert.certPem));
    expect(text).toContain(cert.fingerprint);
    expect(text).toContain("SERVER='https://servermind.example.net:8443'");
    const f = join(dist, "check.sh");
    writeFileSync(f, text);
    expect(Bun.spawnSync(["sh", "-n", f]).exitCode).toBe(0);
  });

  test("install.sh names the configured public URL, whatever Host the request carries", async () => {
    const r = await app.handle(new Request("https://127.0.0.1:8443/install.sh", { headers: { host: "attacker.example:443" } }));
    const text = await r.text();
    expect(text).toContain("SERVER='https://servermind.example.net:8443'");
    expect(text).not.toContain("attacker.example");
  });
});

describe("install.sh against a real TLS server", () => {
  let server: ReturnType<typeof Bun.serve>;
  let url: string;
  let served: { handle(req: Request): Promise<Response> } | undefined;
  beforeAll(() => {
    // the plugin is made once the port, and with it the public URL, is known
    server = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert: cert.certPem, key: cert.keyPem }, fetch: (req) => served!.handle(req) });
    url = `https://127.0.0.1:${server.port}`;
    served = new Elysia().use(downloadsPlugin({ distDir: dist, certPem: cert.certPem, publicUrl: url }));
  });
  afterAll(() => server.stop(true));

  // async spawn: the server runs on this event loop
  const install = async (pin: string, args = "") => {
    const prefix = prefixes.make();
    // the console's one-liner without a token (nothing to enroll with a fake binary)
    const line = installCommand({ serverUrl: url, pubkeyPin: pin, fingerprint: "", token: "" }).replace(/ --token $/, args);
    const p = Bun.spawn(["sh", "-c", line], {
      env: { ...process.env, PREFIX: prefix, SERVERMIND_NO_SERVICE: "1" }, stdout: "pipe", stderr: "pipe", timeout: 30_000,
    });
    const out = (await new Response(p.stdout).text()) + (await new Response(p.stderr).text());
    return { prefix, code: await p.exited, out };
  };

  test("downloads, verifies and installs the binary for this machine", async () => {
    if (process.arch !== "x64" || process.platform !== "linux") return; // the fixture is linux-x64 only
    const r = await install(pubkeyPin(cert.certPem));
    expect(r.out).toContain("binary verified");
    expect(r.code).toBe(0);
    expect(readFileSync(join(r.prefix, "servermind-agent"), "utf8")).toBe(fakeBinary);
  });

  test("a binary that does not match SHA256SUMS is not installed", async () => {
    const good = readFileSync(join(dist, "SHA256SUMS"), "utf8");
    writeFileSync(join(dist, "SHA256SUMS"), `${"0".repeat(64)}  servermind-agent-linux-x64\n${"0".repeat(64)}  servermind-agent-linux-x64-musl\n`);
    try {
      const r = await install(pubkeyPin(cert.certPem));
      expect(r.code).not.toBe(0);
      expect(r.out).toContain("checksum mismatch");
      expect(existsSync(join(r.prefix, "servermind-agent"))).toBe(false);
    } finally {
      writeFileSync(join(dist, "SHA256SUMS"), good);
    }
  });

  test("a server whose key does not match the pin is refused by curl, and the command fails", async () => {
    const other = createSelfSigned(["127.0.0.1"]);
    const r = await install(pubkeyPin(other.certPem));
    expect(r.out).toMatch(/pinned public key|\(90\)/);
    expect(r.code).toBe(90); // curl's status, not an empty script's 0
    expect(existsSync(join(r.prefix, "servermind-agent"))).toBe(false);
  });

  test("a --fingerprint that is not the server's stops install.sh before it downloads", async () => {
    const r = await install(pubkeyPin(cert.certPem), ` --fingerprint ${"ab".repeat(32)}`);
    expect(r.code).toBe(1);
    expect(r.out).toContain("is not the certificate of");
    expect(existsSync(join(r.prefix, "servermind-agent"))).toBe(false);
  });

  test("--fingerprint accepts the server's fingerprint in upper case with colons", async () => {
    if (process.arch !== "x64" || process.platform !== "linux") return; // the fixture is linux-x64 only
    const fp = cert.fingerprint.toUpperCase().match(/../g)!.join(":");
    const r = await install(pubkeyPin(cert.certPem), ` --fingerprint ${fp}`);
    expect(r.out).toContain("binary verified");
    expect(r.code).toBe(0);
  });
});
