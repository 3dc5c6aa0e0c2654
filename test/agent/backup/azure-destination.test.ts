import { afterAll, beforeAll, expect, test } from "bun:test";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { AzureBlobDestination, type AzureConfig } from "../../../agent/backup/azure.ts";
import { BackupError } from "../../../agent/backup/error.ts";
import { azuriteAvailable, startAzurite, type TestAzurite } from "../../support/azurite.ts";
import { requireComponent } from "../../support/ci.ts";
import { destinationSuite } from "./destination.case.ts";
import { serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(azuriteAvailable(), "Azurite (npm azurite, run under node) for the Azure Blob destination");
let az: TestAzurite;
let n = 0;

const dest = (sub: string, over: Partial<AzureConfig> = {}) =>
  new AzureBlobDestination({ endpoint: az.endpoint, container: az.container, accountName: az.accountName, accountKey: az.accountKey, root: sub, timeoutMs: 10_000, ...over });

/** Every blob under `sub/`, as the service lists it, nothing filtered. */
async function raw(sub: string): Promise<string[]> {
  const c = new BlobServiceClient(az.endpoint, new StorageSharedKeyCredential(az.accountName, az.accountKey)).getContainerClient(az.container);
  const out: string[] = [];
  for await (const b of c.listBlobsFlat({ prefix: `${sub}/` })) out.push(b.name.slice(sub.length + 1));
  return out;
}

if (available) {
  beforeAll(async () => {
    az = await startAzurite();
  }, 90_000);
  afterAll(async () => {
    await az?.stop();
  });

  destinationSuite("Azure Blob (Azurite)", async () => {
    const sub = `suite-${++n}`;
    const d = dest(sub);
    return { dest: d, cleanup: async () => { for (const k of await raw(sub)) await d.delete(k).catch(() => {}); } };
  });

  serverDestinationCases("Azure Blob", () => ({
    dest: (sub) => dest(sub),
    raw,
    kill: () => az.kill(),
    restart: () => az.restart(),
  }), { noSize: true });

  test("Azure Blob: a wrong account key is refused without the key in the error", async () => {
    const wrong = Buffer.from("not-the-key-123".repeat(4)).toString("base64");
    const err = await dest("auth", { accountKey: wrong }).put("config", Buffer.from("x")).catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("refused");
    expect((err as Error).message).not.toContain(wrong);
    expect((err as Error).message).not.toContain(az.accountKey);
  });

  test("Azure Blob: a server that accepts TCP but never answers fails within the deadline", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const t = Date.now();
      const err = await dest("x", { endpoint: `http://127.0.0.1:${silent.port}/${az.accountName}`, timeoutMs: 1500 }).get("config").catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");
      expect(Date.now() - t).toBeLessThan(5000);
    } finally {
      silent.stop(true);
    }
  });
}
