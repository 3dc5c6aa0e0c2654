import { afterAll, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tempDirs } from "../../support/temp.ts";
import { connectIpc, createMessageReader, encodeMessage, listenIpc, MAX_MESSAGE } from "../../../agent/ipc/socket.ts";

const dirs = tempDirs("sm-ipc-");
afterAll(() => dirs.removeAll());

/** A socket path in a fresh temp dir, removed after the file's tests. */
const newSocketPath = () => join(dirs.make(), "p.sock");

test("requests get their own replies, binary bodies intact, socket file mode 0666 (the directory decides who connects)", async () => {
  const path = newSocketPath();
  const server = listenIpc(path, async (m) => {
    if (m.t === "slow") await Bun.sleep(30);
    return { t: "echo", n: (m.body as Uint8Array).length, first: (m.body as Uint8Array)[0] };
  });
  expect(statSync(path).mode & 0o777).toBe(0o666);
  const c = await connectIpc(path);
  const big = new Uint8Array(3 << 20).fill(7);
  const [a, b] = await Promise.all([c.request({ t: "slow", body: Uint8Array.of(1, 2) }), c.request({ t: "x", body: big })]);
  expect(a).toMatchObject({ t: "echo", n: 2, first: 1 });
  expect(b).toMatchObject({ t: "echo", n: 3 << 20, first: 7 });
  c.close();
  server.stop();
});

test("a peer that is not there is an error, not a hang", async () => {
  await expect(connectIpc(join(tmpdir(), "nope-" + Date.now() + ".sock"))).rejects.toThrow();
});

test("the reader refuses oversize and non-msgpack input without throwing", () => {
  const errors: string[] = [];
  const got: unknown[] = [];
  const r = createMessageReader((m) => got.push(m), (e) => errors.push(e.message));
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, MAX_MESSAGE + 1, true);
  r(len);
  expect(errors[0]).toMatch(/over the/);
  const r2 = createMessageReader((m) => got.push(m), (e) => errors.push(e.message));
  const whole = encodeMessage({ t: "a" });
  r2(whole.subarray(0, 3));
  r2(whole.subarray(3));
  expect(got).toEqual([{ t: "a" }]);
  r2(Uint8Array.of(1, 0, 0, 0, 0x01)); // valid msgpack, but a number, not a map
  expect(errors[1]).toMatch(/not a map/);
  const r3 = createMessageReader((m) => got.push(m), (e) => errors.push(e.message));
  r3(Uint8Array.of(2, 0, 0, 0, 0xd9, 0xff)); // a str8 that claims 255 bytes and has none
  expect(errors[2]).toMatch(/not msgpack/);
  expect(got.length).toBe(1);
});

test("progress messages of a request reach its onProgress before the reply, in order; progress after the reply is dropped", async () => {
  const path = newSocketPath();
  let late: ((p: Record<string, unknown>) => void) | undefined;
  const server = listenIpc(path, async (m, progress) => {
    for (let i = 0; i < 3; i++) {
      progress({ chunk: { seq: i, of: m.n } });
      await Bun.sleep(10);
    }
    late = progress;
    return { t: "result", n: m.n };
  });
  const c = await connectIpc(path);
  const got: Array<[number, unknown]> = [];
  const [a, b] = await Promise.all([
    c.request({ t: "x", n: 1 }, 5000, (p) => got.push([1, p.chunk])),
    c.request({ t: "x", n: 2 }, 5000, (p) => got.push([2, p.chunk])),
  ]);
  expect(a).toMatchObject({ t: "result", n: 1 });
  expect(b).toMatchObject({ t: "result", n: 2 });
  expect(got.filter(([r]) => r === 1).map(([, p]) => p)).toEqual([0, 1, 2].map((seq) => ({ seq, of: 1 })));
  expect(got.filter(([r]) => r === 2).map(([, p]) => p)).toEqual([0, 1, 2].map((seq) => ({ seq, of: 2 })));
  // a progress sent after the reply is not written (it would name a request nobody waits for)
  late!({ chunk: { seq: 9 } });
  expect(await c.request({ t: "x", n: 3 })).toMatchObject({ n: 3 });
  expect(got.length).toBe(6);
  c.close();
  server.stop();
});
