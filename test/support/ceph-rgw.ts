/**
 * A real S3 server for the S3 destination: Ceph's RADOS Gateway (Debian radosgw) over a one-node
 * Ceph cluster the test builds in a temp dir — one monitor, one OSD on the in-memory object store
 * (memstore), no cephx (127.0.0.1 only) — with an S3 user and a bucket. Killing "the server" kills
 * radosgw; the cluster behind it stays, as a real deployment's would.
 */
import { spawnSync } from "node:child_process";
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startDaemon, type Daemon } from "./daemon.ts";

const BIN = ["/usr/bin/ceph-mon", "/usr/bin/ceph-osd", "/usr/bin/radosgw", "/usr/bin/radosgw-admin", "/usr/bin/monmaptool", "/usr/bin/ceph"];

export function cephRgwAvailable(): boolean {
  return BIN.every((b) => existsSync(b));
}

export interface TestRgw {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** kill -9 of radosgw (the S3 server); the cluster behind it stays */
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`.slice(0, 1500));
  return r.stdout;
}

/** AWS Signature V4 of a request without a body (the test creates its bucket; Bun's client has no CreateBucket). */
export function signV4(method: string, url: URL, keyId: string, secret: string, region: string): Record<string, string> {
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const payload = createHash("sha256").update("").digest("hex");
  const headers: Record<string, string> = { host: url.host, "x-amz-content-sha256": payload, "x-amz-date": amzDate };
  const signed = Object.keys(headers).sort();
  const canonical = [method, url.pathname, url.search.slice(1), ...signed.map((h) => `${h}:${headers[h]}`), "", signed.join(";"), payload].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, createHash("sha256").update(canonical).digest("hex")].join("\n");
  let key: Buffer = createHmac("sha256", `AWS4${secret}`).update(day).digest();
  for (const part of [region, "s3", "aws4_request"]) key = createHmac("sha256", key).update(part).digest();
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  return { ...headers, authorization: `AWS4-HMAC-SHA256 Credential=${keyId}/${scope}, SignedHeaders=${signed.join(";")}, Signature=${signature}` };
}

export async function startCephRgw(): Promise<TestRgw> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-ceph-"));
  for (const d of ["run", "log", "mon", "osd/ceph-0", "rgw"]) mkdirSync(join(dir, d), { recursive: true });
  const fsid = randomUUID();
  const monPort = await freePort();
  const rgwPort = await freePort();
  const conf = join(dir, "ceph.conf");
  writeFileSync(
    conf,
    `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
public addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail crit = 0
osd crush chooseleaf type = 0
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
`,
  );
  const daemons: Daemon[] = [];
  const stopAll = async () => {
    for (const d of daemons.reverse()) await d.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    run("/usr/bin/monmaptool", ["--create", "--addv", "a", `[v1:127.0.0.1:${monPort}]`, "--fsid", fsid, join(dir, "monmap")]);
    run("/usr/bin/ceph-mon", ["-c", conf, "-i", "a", "--mkfs", "--monmap", join(dir, "monmap")]);
    daemons.push(await startDaemon("ceph-mon", ["/usr/bin/ceph-mon", "-c", conf, "-i", "a", "-f"], monPort, { ms: 30_000 }));
    const osdUuid = randomUUID();
    const id = run("/usr/bin/ceph", ["-c", conf, "--connect-timeout", "30", "osd", "new", osdUuid]).trim();
    run("/usr/bin/ceph-osd", ["-c", conf, "-i", id, "--mkfs", "--osd-uuid", osdUuid]);
    daemons.push(await startDaemon("ceph-osd", ["/usr/bin/ceph-osd", "-c", conf, "-i", id, "-f"], null));
    const end = Date.now() + 60_000;
    while (!/"num_up_osds":\s*1/.test(run("/usr/bin/ceph", ["-c", conf, "osd", "stat", "--format", "json"]))) {
      if (Date.now() > end) throw new Error("the Ceph OSD did not come up within 60 s");
      await Bun.sleep(500);
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  const rgwCmd = ["/usr/bin/radosgw", "-c", conf, "-n", "client.rgw", "-f"];
  let rgw: Daemon;
  const region = "us-east-1";
  const accessKeyId = `AK${randomBytes(8).toString("hex").toUpperCase()}`;
  const secretAccessKey = randomBytes(20).toString("base64url");
  const bucket = "servermind-test";
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  try {
    rgw = await startDaemon("radosgw", rgwCmd, rgwPort, { ms: 90_000 });
    run("/usr/bin/radosgw-admin", ["-c", conf, "user", "create", "--uid=backup", "--display-name=backup", `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`]);
    const url = new URL(`/${bucket}`, endpoint);
    const res = await fetch(url, { method: "PUT", headers: signV4("PUT", url, accessKeyId, secretAccessKey, region), signal: AbortSignal.timeout(30_000) });
    if (res.status !== 200) throw new Error(`CreateBucket answered ${res.status}: ${await res.text()}`);
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    region,
    kill: () => rgw.kill(),
    async restart() {
      await rgw.kill();
      rgw = await startDaemon("radosgw", rgwCmd, rgwPort, { ms: 90_000 });
    },
    async stop() {
      await rgw.kill();
      await stopAll();
    },
  };
}
