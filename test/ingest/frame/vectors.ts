/**
 * The test vectors of docs/protocol.md (section "Test vectors"): one frame of every kind, built
 * from a fixed key seed and fixed times, so the same bytes come out on every run. Ed25519
 * (RFC 8032) is deterministic, msgpack keys keep their order and our LZ4 compressor has no
 * randomness. `vectors.test.ts` checks the fixtures and the document against these definitions;
 * `npx bun test/ingest/frame/vectors.ts write` rewrites test/fixtures/frames/ and prints the
 * document's hex blocks.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeFrame, packLogs, packMap, packMetrics, packSecurity, type FrameAuth, type FrameFields } from "../../../src/ingest/frame/encode.ts";
import { FrameKind, type SessionAuth } from "../../../src/ingest/frame/frame.ts";
import { commandPayload, signCommand, type Command } from "../../../src/ingest/frame/commands.ts";

export const FIXTURES = join(import.meta.dir, "../../fixtures/frames");

/** An Ed25519 private key from its 32-byte seed (PKCS#8 DER around the seed). */
export function keyFromSeed(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
}

/** The example agent key: seed = 32 bytes 0x01. */
export const AGENT_KEY = keyFromSeed(new Uint8Array(32).fill(1));
export const AGENT_PUBLIC_HEX = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
export const AGENT_ID = 42;
/** The example session: id 0x01020304, key = 32 bytes 0x02. */
export const SESSION: SessionAuth = { id: 0x01020304, key: new Uint8Array(32).fill(2) };
/** 2026-11-18T11:06:40Z: every vector was "built" then. */
export const T = 1_795_000_000_000;

/** What the server answers when the vector is POSTed alone to /api/v1/ingest (a fresh server, agent 42 enrolled with the example key). */
export interface Answer {
  status: number;
  ack?: "ok" | "dup" | "seen";
  code?: string;
}

export interface Vector {
  file: string;
  title: string;
  fields: FrameFields;
  body: () => Uint8Array;
  auth: "signed" | "sealed";
  /** Whether the body travels LZ4-compressed (the encoder decides: 128 bytes or more, and smaller compressed). */
  lz4: boolean;
  answer: Answer;
}

const f = (kind: FrameKind, seq: number, batchId: number, items: number): FrameFields => ({ kind, agentId: AGENT_ID, seq, batchId, createdMs: T, sentMs: T + 123, items });

export const VECTORS: Vector[] = [
  {
    file: "heartbeat.bin", title: "heartbeat (kind 5), signed", auth: "signed", lz4: false,
    fields: f(FrameKind.Heartbeat, 7, 3, 1),
    body: () => packMap({ uptime: 3600 }),
    answer: { status: 200, ack: "seen" },
  },
  {
    file: "metrics-2x2.bin", title: "metrics (kind 1), 2 series x 2 timestamps, signed", auth: "signed", lz4: false,
    fields: f(FrameKind.Metrics, 8, 4, 4),
    body: () => packMetrics({ ts: Float64Array.of(T, T + 10_000), names: ["cpu.util", "mem.used"], values: Float64Array.of(12.5, 13, 1024, 2048) }),
    answer: { status: 200, ack: "ok" },
  },
  {
    file: "heartbeat-sealed.bin", title: "heartbeat (kind 5), sealed with session 0x01020304", auth: "sealed", lz4: false,
    fields: f(FrameKind.Heartbeat, 9, 3, 1),
    body: () => packMap({ uptime: 3600 }),
    // the server never opened that session: a node that does not know it answers so
    answer: { status: 401, code: "unknown_session" },
  },
  {
    file: "logs.bin", title: "logs (kind 2), 2 lines from 2 sources, signed", auth: "signed", lz4: false,
    fields: f(FrameKind.Logs, 10, 5, 2),
    body: () =>
      packLogs({
        ts: Float64Array.of(T, T + 1500),
        severity: Uint8Array.of(6, 3),
        sources: ["sshd.service", "kernel"],
        sourceIndex: Uint16Array.of(0, 1),
        messages: ["Accepted publickey for deploy", "Out of memory: Killed process 4242"],
      }),
    answer: { status: 200, ack: "ok" },
  },
  {
    file: "inventory.bin", title: "inventory (kind 3), signed", auth: "signed", lz4: false,
    fields: f(FrameKind.Inventory, 11, 6, 1),
    body: () => packMap({ os: "debian 12", kernel: "6.1.0-18-amd64", packages: [{ name: "openssl", version: "3.0.11-1" }], ports: [{ proto: "tcp", port: 22 }] }),
    answer: { status: 200, ack: "ok" },
  },
  {
    file: "security.bin", title: "security events (kind 4), one event, signed", auth: "signed", lz4: false,
    fields: f(FrameKind.SecurityEvents, 12, 7, 1),
    body: () => packSecurity({ events: [{ ts: T, type: "fim.modify", severity: 7, path: "/etc/passwd", data: { size: 1856 } }] }),
    answer: { status: 200, ack: "ok" },
  },
  {
    file: "hello.bin", title: "hello (kind 6) for POST /api/v1/session, signed", auth: "signed", lz4: false,
    fields: f(FrameKind.Hello, 13, 0, 1),
    body: () => packMap({ nonce: "", version: "0.1.0" }),
    // a hello is no batch: /api/v1/ingest refuses it (and /api/v1/session, 5 minutes after T, as too old)
    answer: { status: 422, code: "bad_body" },
  },
  {
    file: "metrics-lz4.bin", title: "metrics (kind 1), 4 series x 4 timestamps, LZ4-compressed, signed", auth: "signed", lz4: true,
    fields: f(FrameKind.Metrics, 14, 8, 16),
    body: () =>
      packMetrics({
        ts: Float64Array.of(T, T + 10_000, T + 20_000, T + 30_000),
        names: ["cpu.util", "mem.used_pct", "disk.used_pct./", "net.rx_bytes.eth0"],
        values: Float64Array.of(12, 13, 12, 14, 40, 40, 41, 41, 63, 63, 63, 63, 1000, 1200, 900, 1100),
      }),
    answer: { status: 200, ack: "ok" },
  },
];

/** The example server command key: seed = 32 bytes 0x03. */
export const COMMAND_KEY = keyFromSeed(new Uint8Array(32).fill(3));

/** A signed command (docs/protocol.md 9.4): non-ASCII in a string, keys given out of order. */
export const COMMAND_VECTOR: Command = {
  requestedBy: "user:7 Zoë Ñúñez",
  v: 1,
  id: "0b0e9a52-7d7e-4c1a-9f43-2b6f0e1d2a3b",
  agentId: AGENT_ID,
  action: "cis.remediate",
  args: { dryRun: true, controls: ["smx.ssh.root-login"] },
  issuedMs: T,
};

export function encodeVector(v: Vector): Uint8Array {
  const auth: FrameAuth = v.auth === "sealed" ? SESSION : AGENT_KEY;
  return encodeFrame(v.fields, v.body(), auth);
}

/** The hex of `bytes`, 16 bytes a line, as the document shows it. */
export function hexLines(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) lines.push(Buffer.from(bytes.subarray(i, i + 16)).toString("hex").replace(/(..)(?!$)/g, "$1 "));
  return lines.join("\n");
}

if (import.meta.main && process.argv[2] === "write") {
  for (const v of VECTORS) {
    const bytes = encodeVector(v);
    writeFileSync(join(FIXTURES, v.file), bytes);
    console.log(`<!-- vector: ${v.file} -->\n\`\`\`\n${hexLines(bytes)}\n\`\`\`\n`);
  }
  console.log(`signing input:\n${commandPayload(COMMAND_VECTOR).toString("utf8")}\n\nhex:\n${hexLines(commandPayload(COMMAND_VECTOR))}\n\nsig: ${signCommand(COMMAND_VECTOR, COMMAND_KEY).sig}`);
}
