/**
 * The release with the real tools (issue 16): one linux-x64 release built into a temp dir, then
 * gpg/sha256sum on SHA256SUMS, rpm -K / -qip, apt-get from the signed file: repository (and
 * refusing a tampered package or Release), dpkg -i of the server package with its binary serving
 * /healthz against an external PostgreSQL (the test one), upgrade, remove, purge, and lintian.
 * Root only (dpkg, useradd); apt runs on throwaway Dir::Etc / Dir::State / Dir::Cache paths so
 * the machine's own sources stay untouched.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireComponent } from "../support/ci.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { release, type ReleaseResult } from "../../scripts/release.ts";
import { freePort } from "../../src/store/postgres/embedded.ts";

const TOOLS = ["dpkg-deb", "rpmbuild", "rpmsign", "createrepo_c", "gpg", "gpgv", "apt-ftparchive", "apt-get", "lintian", "sha256sum"];
const isRoot = process.getuid?.() === 0;
const haveTools = TOOLS.every((t) => Bun.which(t));
const enabled = requireComponent(isRoot && haveTools, `root and ${TOOLS.join(", ")} (the release test installs packages for real)`);

function sh(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  for (let waited = 0; ; waited += 2) {
    const p = Bun.spawnSync(argv, { cwd: opts.cwd, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive", ...opts.env }, stdout: "pipe", stderr: "pipe", timeout: 180_000 });
    const r = { code: p.exitCode, out: p.stdout.toString() + p.stderr.toString() };
    // dpkg has no lock timeout of its own: wait (up to 60 s) while another apt-get or dpkg on the machine holds the lock
    if (argv[0] !== "dpkg" || !/lock was locked by another process/.test(r.out) || waited >= 60) return r;
    Bun.sleepSync(2000);
  }
}

let work = "";
let rel: ReleaseResult;
const dist = () => rel.outDir;
const VERSION = () => rel.version;

/** apt-get on a private state, with only our file: repository as source. */
function apt(name: string, repoDir: string) {
  const base = join(work, `apt-${name}`);
  for (const d of ["etc/sources.list.d", "etc/preferences.d", "lists/partial", "archives/partial"]) mkdirSync(join(base, d), { recursive: true });
  copyFileSync(join(dist(), "gpg.key"), join(base, "servermind.asc")); // apt reads armored keys by the .asc name
  writeFileSync(join(base, "etc/sources.list"), `deb [signed-by=${join(base, "servermind.asc")}] file:${repoDir} stable main\n`);
  const o = [
    "-o", `Dir::Etc::sourcelist=${join(base, "etc/sources.list")}`, "-o", `Dir::Etc::sourceparts=${join(base, "etc/sources.list.d")}`,
    "-o", `Dir::Etc::preferencesparts=${join(base, "etc/preferences.d")}`, "-o", `Dir::State::Lists=${join(base, "lists")}`,
    "-o", `Dir::Cache::archives=${join(base, "archives")}`, "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=", "-o", "APT::Sandbox::User=root",
    // another apt-get on the machine (a developer installing a package) holds the dpkg lock for a while: wait for it
    "-o", "DPkg::Lock::Timeout=60",
  ];
  return {
    update: () => sh(["apt-get", ...o, "update"]),
    install: (pkg: string) => sh(["apt-get", ...o, "install", "-y", "--no-install-recommends", pkg]),
  };
}

describe.skipIf(!enabled)("npm run release (linux-x64)", () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "servermind-release-test-"));
    rel = await release({ outDir: join(work, "dist"), targets: ["linux-x64"], log: () => {} });
    // a previous failed run may have left the packages installed
    sh(["dpkg", "--purge", "servermind-agent", "servermind-server"]);
  }, 600_000);

  afterAll(() => {
    if (!work) return;
    sh(["dpkg", "--purge", "servermind-agent", "servermind-server"]);
    rmSync(work, { recursive: true, force: true });
  });

  test("dist/ holds the layout of the issue and says it used a throwaway key", () => {
    expect(rel.throwaway).toBe(true);
    for (const f of [
      "gpg.key", "SHA256SUMS", "SHA256SUMS.asc", "agent/servermind-agent-linux-x64", "server/servermind-server-linux-x64",
      `packages/servermind-agent_${VERSION()}-1_amd64.deb`, `packages/servermind-server_${VERSION()}-1_amd64.deb`,
      `packages/servermind-agent-${VERSION()}-1.x86_64.rpm`, `packages/servermind-server-${VERSION()}-1.x86_64.rpm`,
      "apt/dists/stable/InRelease", "apt/dists/stable/Release", "apt/dists/stable/Release.gpg", "apt/dists/stable/main/binary-amd64/Packages",
      "yum/repodata/repomd.xml", "yum/repodata/repomd.xml.asc", "sbom/servermind-server-linux-x64.cdx.json", "sbom/servermind-agent-linux-x64.cdx.json",
    ]) expect(existsSync(join(dist(), f)), f).toBe(true);
  }, 120_000);

  test("SHA256SUMS: gpg --verify with the published key, sha256sum -c, and a tampered file fails", () => {
    const home = mkdtempSync(join(work, "gnupg-"));
    const env = { GNUPGHOME: home };
    expect(sh(["gpg", "--batch", "--import", join(dist(), "gpg.key")], { env }).code).toBe(0);
    const v = sh(["gpg", "--batch", "--verify", join(dist(), "SHA256SUMS.asc"), join(dist(), "SHA256SUMS")], { env });
    expect(v.code, v.out).toBe(0);
    expect(v.out).toContain("Good signature");
    const c = sh(["sha256sum", "--strict", "-c", "SHA256SUMS"], { cwd: dist() });
    expect(c.code, c.out).toBe(0);
    const lines = readFileSync(join(dist(), "SHA256SUMS"), "utf8").trim().split("\n");
    expect(c.out.match(/: OK$/gm)?.length).toBe(lines.length);
    // a copy with one byte changed in one artifact
    const copy = join(work, "sums-copy");
    cpSync(dist(), copy, { recursive: true });
    appendFileSync(join(copy, "gpg.key"), "x");
    expect(sh(["sha256sum", "--quiet", "-c", "SHA256SUMS"], { cwd: copy }).code).not.toBe(0);
    // and a changed SHA256SUMS no longer matches its signature
    appendFileSync(join(copy, "SHA256SUMS"), "0".repeat(64) + "  evil\n");
    expect(sh(["gpg", "--batch", "--verify", join(copy, "SHA256SUMS.asc"), join(copy, "SHA256SUMS")], { env }).code).not.toBe(0);
    rmSync(copy, { recursive: true, force: true });
  }, 120_000);

  test("SBOMs are CycloneDX and list the npm packages and the Bun version compiled in", () => {
    const server = JSON.parse(readFileSync(join(dist(), "sbom/servermind-server-linux-x64.cdx.json"), "utf8"));
    expect(server.bomFormat).toBe("CycloneDX");
    const names = new Map<string, string>(server.components.map((c: { name: string; version: string }) => [c.name, c.version]));
    expect(names.get("bun")).toBe(Bun.version);
    const lock = JSON.parse(readFileSync(join(import.meta.dir, "../../package-lock.json"), "utf8"));
    for (const p of ["elysia", "postgres", "msgpackr", "jose"]) expect(names.get(p), p).toBe(lock.packages[`node_modules/${p}`].version);
    const agent = JSON.parse(readFileSync(join(dist(), "sbom/servermind-agent-linux-x64.cdx.json"), "utf8"));
    const agentNames = agent.components.map((c: { name: string }) => c.name);
    expect(agentNames).toContain("msgpackr");
    expect(agentNames).not.toContain("elysia");
    expect(readdirSync(join(dist(), "sbom")).length).toBe(6); // 2 binaries + 2 DEBs + 2 RPMs
  }, 120_000);

  test("rpm -K passes on the signed packages, fails on a tampered one; rpm -qip shows the metadata", () => {
    const db = mkdtempSync(join(work, "rpmdb-"));
    expect(sh(["rpm", "--dbpath", db, "--import", join(dist(), "gpg.key")]).code).toBe(0);
    const rpms = readdirSync(join(dist(), "packages")).filter((f) => f.endsWith(".rpm"));
    expect(rpms.length).toBe(2);
    for (const f of rpms) {
      const k = sh(["rpm", "--dbpath", db, "-K", join(dist(), "packages", f)]);
      expect(k.code, k.out).toBe(0);
      expect(k.out).toContain("signatures OK");
    }
    const info = sh(["rpm", "--dbpath", db, "-qip", join(dist(), "packages", `servermind-server-${VERSION()}-1.x86_64.rpm`)]);
    expect(info.code, info.out).toBe(0);
    expect(info.out).toMatch(/Name\s*: servermind-server/);
    expect(info.out).toMatch(new RegExp(`Version\\s*: ${VERSION().replace(/\./g, "\\.")}`));
    expect(info.out).toMatch(/Architecture: x86_64/);
    // signed by the signing subkey of the published key
    const subkeys = [...sh(["gpg", "--batch", "--with-colons", "--show-keys", join(dist(), "gpg.key")], { env: { GNUPGHOME: mkdtempSync(join(work, "gnupg-show-")) } }).out.matchAll(/^sub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/gm)].map((m) => m[1]!.toLowerCase());
    expect(subkeys.length).toBe(1);
    expect(info.out).toMatch(new RegExp(`Signature\\s*: .*Key ID ${subkeys[0]}`));
    // one byte of the payload changed
    const bad = join(work, "tampered.rpm");
    const bytes = readFileSync(join(dist(), "packages", rpms[0]!));
    bytes[bytes.length - 1000] ^= 0xff;
    writeFileSync(bad, bytes);
    const k = sh(["rpm", "--dbpath", db, "-K", bad]);
    expect(k.code, k.out).not.toBe(0);
    // and without the key, the signature is not trusted
    const empty = mkdtempSync(join(work, "rpmdb-empty-"));
    expect(sh(["rpm", "--dbpath", empty, "-K", join(dist(), "packages", rpms[0]!)]).code).not.toBe(0);
  }, 120_000);

  test("YUM repodata is signed by the release key", () => {
    const home = mkdtempSync(join(work, "gnupg-yum-"));
    sh(["gpg", "--batch", "--import", join(dist(), "gpg.key")], { env: { GNUPGHOME: home } });
    const v = sh(["gpg", "--batch", "--verify", join(dist(), "yum/repodata/repomd.xml.asc"), join(dist(), "yum/repodata/repomd.xml")], { env: { GNUPGHOME: home } });
    expect(v.code, v.out).toBe(0);
    expect(readFileSync(join(dist(), "yum/repodata/repomd.xml"), "utf8")).toContain("primary");
  }, 120_000);

  test("apt refuses a tampered package and a tampered Release", () => {
    // a package whose bytes changed after the repository was signed
    const repo1 = join(work, "repo-badpkg");
    cpSync(join(dist(), "apt"), repo1, { recursive: true });
    appendFileSync(join(repo1, "pool/main", `servermind-agent_${VERSION()}-1_amd64.deb`), "tampered");
    const a1 = apt("badpkg", repo1);
    expect(a1.update().code).toBe(0);
    const i1 = a1.install("servermind-agent");
    expect(i1.code, i1.out).not.toBe(0);
    expect(i1.out).toMatch(/Hash Sum mismatch|Size mismatch|File has unexpected size/);
    expect(sh(["dpkg", "-s", "servermind-agent"]).code).not.toBe(0);
    // Release (and InRelease's signed text) changed: the signature no longer matches
    const repo2 = join(work, "repo-badrelease");
    cpSync(join(dist(), "apt"), repo2, { recursive: true });
    for (const f of ["Release", "InRelease"]) {
      const p = join(repo2, "dists/stable", f);
      writeFileSync(p, readFileSync(p, "utf8").replace("Label: ServerMind", "Label: Evil"));
    }
    const a2 = apt("badrelease", repo2);
    const u2 = a2.update();
    expect(u2.code, u2.out).not.toBe(0);
    expect(u2.out).toMatch(/BADSIG|signature|not signed/i);
    expect(a2.install("servermind-agent").code).not.toBe(0);
  }, 120_000);

  test("apt-get install servermind-agent from the signed file: repository", () => {
    const a = apt("good", join(dist(), "apt"));
    const u = a.update();
    expect(u.code, u.out).toBe(0);
    expect(u.out).not.toMatch(/^W:|^E:/m);
    const i = a.install("servermind-agent");
    expect(i.code, i.out).toBe(0);
    expect(sh(["dpkg-query", "-W", "-f", "${Status} ${Version}", "servermind-agent"]).out).toBe(`install ok installed ${VERSION()}-1`);
    const v = sh(["/usr/bin/servermind-agent", "version"]);
    expect(v.code, v.out).toBe(0);
    for (const u of ["servermind-platform", "servermind-collector", "servermind-monitor"]) expect(sh(["getent", "passwd", u]).code, u).toBe(0);
    expect(existsSync("/lib/systemd/system/servermind-agent.service")).toBe(true);
    expect(sh(["dpkg", "--purge", "servermind-agent"]).code).toBe(0);
    expect(existsSync("/usr/bin/servermind-agent")).toBe(false);
    expect(existsSync("/var/lib/servermind/agent")).toBe(false);
  }, 120_000);

  describe("dpkg -i servermind-server", () => {
    let db: TestDb;
    beforeAll(async () => {
      db = await testDatabase(2);
    });
    afterAll(async () => {
      await db?.drop();
    });

    test("files, user, permissions; the installed binary serves /healthz on an external PostgreSQL; upgrade, remove, purge", async () => {
      const deb = join(dist(), "packages", `servermind-server_${VERSION()}-1_amd64.deb`);
      const inst = sh(["dpkg", "-i", deb]);
      expect(inst.code, inst.out).toBe(0);
      expect(sh(["getent", "passwd", "servermind"]).out).toContain("/usr/sbin/nologin");
      const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8);
      const owner = (p: string) => sh(["stat", "-c", "%U:%G", p]).out.trim();
      expect(mode("/usr/bin/servermind-server")).toBe("755");
      expect(owner("/usr/bin/servermind-server")).toBe("root:root");
      expect(mode("/etc/servermind/server.env")).toBe("640");
      expect(owner("/etc/servermind/server.env")).toBe("root:servermind");
      expect(mode("/var/lib/servermind/server")).toBe("750");
      expect(owner("/var/lib/servermind/server")).toBe("servermind:servermind");
      for (const f of ["/usr/share/servermind/views", "/usr/share/servermind/migrations", "/usr/share/servermind/assets/console.css", "/usr/share/servermind/htmx.min.js", "/lib/systemd/system/servermind-server.service", "/usr/lib/sysctl.d/60-servermind-server.conf"]) {
        expect(existsSync(f), f).toBe(true);
      }
      expect(readFileSync("/var/lib/dpkg/info/servermind-server.conffiles", "utf8")).toContain("/etc/servermind/server.env");

      // start the installed binary as the unit does: its user and its Environment= lines
      const unit = readFileSync("/lib/systemd/system/servermind-server.service", "utf8");
      const env: Record<string, string> = {};
      for (const m of unit.matchAll(/^Environment=(\w+)=(.*)$/gm)) env[m[1]!] = m[2]!;
      expect(env.SERVERMIND_SHARE).toBe("/usr/share/servermind");
      // a port the kernel hands out, not a random one: one in the ephemeral range may be held by
      // another test's connection (a CI run once saw the binary exit here, its output unread)
      const port = await freePort();
      const child = Bun.spawn(["runuser", "-u", "servermind", "--", "env", ...Object.entries({ ...env, DATABASE_URL: db.url, SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1", SERVERMIND_HTTP3: "false" }).map(([k, v]) => `${k}=${v}`), "/usr/bin/servermind-server"], { stdout: "pipe", stderr: "pipe" });
      let health = 0;
      let body = "";
      try {
        const until = Date.now() + 60_000;
        while (Date.now() < until && child.exitCode === null) {
          try {
            const r = await fetch(`https://127.0.0.1:${port}/healthz`, { tls: { rejectUnauthorized: false } });
            health = r.status;
            body = await r.text();
            if (health === 200) break;
          } catch {
            /* not listening yet */
          }
          await Bun.sleep(250);
        }
        // without /healthz these would fail on the connection and hide the binary's output,
        // which the check of `health` below reports
        if (health === 200) {
          // the console's htmx and views come from /usr/share/servermind
          const htmx = await fetch(`https://127.0.0.1:${port}/assets/htmx.min.js`, { tls: { rejectUnauthorized: false } });
          expect(htmx.status).toBe(200);
          expect(await htmx.text()).toBe(readFileSync("/usr/share/servermind/htmx.min.js", "utf8"));
          // (no user yet: /login leads to the first-run setup page, a rendered view too)
          const login = await fetch(`https://127.0.0.1:${port}/login`, { tls: { rejectUnauthorized: false } });
          expect(login.status).toBe(200);
          expect(login.headers.get("content-type")).toContain("text/html");
          expect(await login.text()).toContain("<form");
        }
      } finally {
        child.kill("SIGTERM");
        await Promise.race([child.exited, Bun.sleep(15_000)]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      const log = (await new Response(child.stdout).text()) + (await new Response(child.stderr).text());
      expect(health, log).toBe(200);
      expect(body).toContain("ok");
      expect(existsSync("/var/lib/servermind/server/tls/server.crt")).toBe(true);

      // upgrade to -2: config edits and data stay
      appendFileSync("/etc/servermind/server.env", "# local edit\n");
      writeFileSync("/var/lib/servermind/server/marker", "keep");
      const raw = join(work, "raw");
      expect(sh(["dpkg-deb", "-R", deb, raw]).code).toBe(0);
      const control = join(raw, "DEBIAN/control");
      writeFileSync(control, readFileSync(control, "utf8").replace(`Version: ${VERSION()}-1`, `Version: ${VERSION()}-2`));
      const deb2 = join(work, "servermind-server_2.deb");
      expect(sh(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", raw, deb2]).code).toBe(0);
      const up = sh(["dpkg", "--force-confold", "-i", deb2]);
      expect(up.code, up.out).toBe(0);
      expect(sh(["dpkg-query", "-W", "-f", "${Version}", "servermind-server"]).out).toBe(`${VERSION()}-2`);
      expect(readFileSync("/etc/servermind/server.env", "utf8")).toContain("# local edit");
      expect(readFileSync("/var/lib/servermind/server/marker", "utf8")).toBe("keep");

      // remove keeps data (and the conffile); purge removes both and the user
      expect(sh(["dpkg", "-r", "servermind-server"]).code).toBe(0);
      expect(existsSync("/usr/bin/servermind-server")).toBe(false);
      expect(existsSync("/var/lib/servermind/server/marker")).toBe(true);
      expect(existsSync("/etc/servermind/server.env")).toBe(true);
      expect(sh(["dpkg", "-P", "servermind-server"]).code).toBe(0);
      expect(existsSync("/var/lib/servermind/server")).toBe(false);
      expect(existsSync("/etc/servermind/server.env")).toBe(false);
      expect(sh(["getent", "passwd", "servermind"]).code).not.toBe(0);
    }, 180_000);
  });

  test("lintian: only the tags listed in docs/releases.md remain", () => {
    const debs = readdirSync(join(dist(), "packages")).filter((f) => f.endsWith(".deb")).map((f) => join(dist(), "packages", f));
    const r = sh(["lintian", "--no-tag-display-limit", ...debs]);
    const tags = [...new Set([...r.out.matchAll(/^[EWIPX]: [\w-]+(?: \w+)?: ([\w-]+)/gm)].map((m) => m[1]!))].sort();
    console.log(`lintian tags: ${tags.join(", ") || "(none)"}`);
    const docs = readFileSync(join(import.meta.dir, "../../docs/releases.md"), "utf8");
    const listed = /<!-- lintian-tags -->([\s\S]*?)<!-- \/lintian-tags -->/.exec(docs)?.[1] ?? "";
    for (const t of tags) expect(listed, `lintian tag ${t} is not listed in docs/releases.md`).toContain(`\`${t}\``);
    expect(tags.length).toBeGreaterThan(0); // lintian ran and judged the packages (a Bun executable always draws some)
  }, 120_000);
});
