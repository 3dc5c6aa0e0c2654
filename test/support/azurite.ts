/**
 * Microsoft's Azure Storage emulator, Azurite (npm `azurite`, blob service only), for the Azure
 * Blob destination: on a free 127.0.0.1 port, its data in a temp dir, a generated account and
 * key, telemetry off (no outbound traffic). Run under node, as Microsoft ships it.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { freePort, startDirDaemon } from "./daemon.ts";

const MAIN = resolve(import.meta.dir, "../../node_modules/azurite/dist/src/blob/main.js");

function nodeBinary(): string | null {
  const r = spawnSync("node", ["--version"], { encoding: "utf8" });
  return r.status === 0 ? "node" : null;
}

export function azuriteAvailable(): boolean {
  return existsSync(MAIN) && nodeBinary() !== null;
}

export interface TestAzurite {
  endpoint: string;
  accountName: string;
  accountKey: string;
  container: string;
  dataDir: string;
  /**
   * The emulator stopped mid-upload. SIGTERM, not SIGKILL: Azurite keeps its blob index in a
   * LokiJS file saved every few seconds, so a kill -9 of the emulator itself forgets blobs it had
   * acknowledged — its durability, not the service's, and not what the test is about.
   */
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAzurite(): Promise<TestAzurite> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-azurite-"));
  const port = await freePort();
  const accountName = "servermindtest";
  const accountKey = randomBytes(64).toString("base64");
  const cmd = ["node", MAIN, "--blobHost", "127.0.0.1", "--blobPort", String(port), "--location", dir, "--silent", "--disableTelemetry", "--skipApiVersionCheck"];
  const env = { AZURITE_ACCOUNTS: `${accountName}:${accountKey}` };
  const controls = await startDirDaemon("azurite", cmd, port, dir, { env, ms: 60_000, kill: (d) => d.stop(15_000) });
  const endpoint = `http://127.0.0.1:${port}/${accountName}`;
  const container = "servermind-test";
  await new BlobServiceClient(endpoint, new StorageSharedKeyCredential(accountName, accountKey)).getContainerClient(container).createIfNotExists();
  return {
    endpoint,
    accountName,
    accountKey,
    container,
    dataDir: dir,
    ...controls,
  };
}
