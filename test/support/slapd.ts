/**
 * A real OpenLDAP server (Debian slapd) for tests, configured in a temporary directory: plain
 * LDAP (for StartTLS) and LDAPS on 127.0.0.1 with a generated certificate, a test directory with
 * users and nested groups (including a cycle), and a read-only service account. Stopped and
 * removed by the test that started it.
 */
import { stopChild } from "./process.ts";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSelfSigned } from "../../src/tls/self-signed.ts";

export const SLAPD = "/usr/sbin/slapd";
export const BASE = "dc=example,dc=test";

export function slapdAvailable(): boolean {
  return existsSync(SLAPD) && existsSync("/usr/sbin/slappasswd") && existsSync("/etc/ldap/schema/inetorgperson.schema");
}

import { freePort } from "../../src/store/postgres/embedded.ts";
export { freePort };

async function waitForPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, "127.0.0.1", () => { c.destroy(); r(true); });
      c.on("error", () => r(false));
    });
    if (ok) return;
    await Bun.sleep(50);
  }
  throw new Error(`slapd did not listen on ${port} within ${ms} ms`);
}

export interface TestSlapd {
  ldapUrl: string;
  ldapsUrl: string;
  caPem: string;
  serviceDn: string;
  servicePassword: string;
  /** Runs ldapmodify as the root DN with the given LDIF (to change the directory mid-test). */
  modify(ldif: string): void;
  stop(): Promise<void>;
}

function hash(pw: string): string {
  const r = spawnSync("/usr/sbin/slappasswd", ["-s", pw], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`slappasswd failed: ${r.stderr}`);
  return r.stdout.trim();
}

export const USERS = { alice: "alice-Pa55", bob: "bob-Pa55", carol: "carol-Pa55" } as const;

export async function startSlapd(): Promise<TestSlapd> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-slapd-"));
  mkdirSync(join(dir, "db"));
  const cert = createSelfSigned(["127.0.0.1"], "slapd test");
  writeFileSync(join(dir, "cert.pem"), cert.certPem);
  writeFileSync(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
  const rootPw = "root-" + crypto.randomUUID();
  const servicePassword = "svc-" + crypto.randomUUID();
  writeFileSync(join(dir, "slapd.conf"), `
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
TLSCertificateFile ${dir}/cert.pem
TLSCertificateKeyFile ${dir}/key.pem
database mdb
maxsize 10485760
suffix "${BASE}"
rootdn "cn=admin,${BASE}"
rootpw ${hash(rootPw)}
directory ${dir}/db
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by dn.exact="cn=reader,${BASE}" read by self read by * none
`);
  const u = (uid: string, cn: string) => `dn: uid=${uid},ou=people,${BASE}
objectClass: inetOrgPerson
uid: ${uid}
cn: ${cn}
sn: ${cn.split(" ").pop()}
mail: ${uid}@example.test
userPassword: ${hash(USERS[uid as keyof typeof USERS])}
`;
  const g = (cn: string, members: string[]) => `dn: cn=${cn},ou=groups,${BASE}
objectClass: groupOfNames
cn: ${cn}
${members.map((m) => `member: ${m}`).join("\n")}
`;
  const ldif = [
    `dn: ${BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n`,
    `dn: ou=people,${BASE}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ou=groups,${BASE}\nobjectClass: organizationalUnit\nou: groups\n`,
    `dn: cn=reader,${BASE}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: ${hash(servicePassword)}\n`,
    u("alice", "Alice Admin"),
    u("bob", "Bob Builder"),
    u("carol", "Carol Star(*)"),
    g("ops", [`uid=alice,ou=people,${BASE}`]),
    g("dba", [`uid=bob,ou=people,${BASE}`]),
    g("platform", [`cn=ops,ou=groups,${BASE}`]),
    g("everyone", [`cn=platform,ou=groups,${BASE}`, `cn=dba,ou=groups,${BASE}`]),
    g("loop-a", [`cn=loop-b,ou=groups,${BASE}`, `uid=carol,ou=people,${BASE}`]),
    g("loop-b", [`cn=loop-a,ou=groups,${BASE}`]),
  ].join("\n");
  writeFileSync(join(dir, "data.ldif"), ldif);
  const add = spawnSync("/usr/sbin/slapadd", ["-f", join(dir, "slapd.conf"), "-l", join(dir, "data.ldif")], { encoding: "utf8" });
  if (add.status !== 0) throw new Error(`slapadd failed: ${add.stderr}`);
  const ldapPort = await freePort();
  const ldapsPort = await freePort();
  const proc: ChildProcess = spawn(SLAPD, ["-d", "0", "-h", `ldap://127.0.0.1:${ldapPort}/ ldaps://127.0.0.1:${ldapsPort}/`, "-f", join(dir, "slapd.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr += String(d)));
  try {
    await waitForPort(ldapsPort, 10_000);
    await waitForPort(ldapPort, 10_000);
  } catch (e) {
    proc.kill("SIGKILL");
    throw new Error(`${(e as Error).message}: ${stderr.slice(0, 500)}`);
  }
  return {
    ldapUrl: `ldap://127.0.0.1:${ldapPort}`,
    ldapsUrl: `ldaps://127.0.0.1:${ldapsPort}`,
    caPem: cert.certPem,
    serviceDn: `cn=reader,${BASE}`,
    servicePassword,
    modify(change: string) {
      const r = spawnSync("/usr/bin/ldapmodify", ["-x", "-H", `ldap://127.0.0.1:${ldapPort}`, "-D", `cn=admin,${BASE}`, "-w", rootPw], { input: change, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`ldapmodify failed: ${r.stderr}`);
    },
    async stop() {
      await stopChild(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
