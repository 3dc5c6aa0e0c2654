/** The agent streams of a node (src/ingest/agent/stream-registry.ts): messages go to the newest; a message the socket dropped is not called delivered. */
import { expect, test } from "bun:test";
import { StreamRegistry, type AgentSocket } from "../../../src/ingest/agent/stream-registry.ts";

/** A socket that answers send() as Bun's does: bytes written, -1 when buffered, 0 when dropped. */
function socket(agentId: number, answer: number): AgentSocket & { sent: string[]; closed: Array<[number | undefined, string | undefined]> } {
  const sent: string[] = [];
  const closed: Array<[number | undefined, string | undefined]> = [];
  return { data: { agentId }, sent, closed, send: (t: string) => (sent.push(t), answer), close: (c?: number, r?: string) => void closed.push([c, r]) };
}

test("a message goes down the agent's newest stream; written or buffered counts as delivered", () => {
  const r = new StreamRegistry();
  const old = socket(7, 20);
  const fresh = socket(7, -1);
  r.add(7, old);
  r.add(7, fresh);
  expect(r.send(7, { type: "command", id: "a" })).toBe(true);
  expect([old.sent.length, fresh.sent]).toEqual([0, ['{"type":"command","id":"a"}']]);
  expect(r.send(8, { type: "command" })).toBe(false); // no stream here
});

test("a message the socket dropped (its peer left too much unread) is not delivered, and that stream is closed", () => {
  const r = new StreamRegistry();
  const deaf = socket(9, 0);
  r.add(9, deaf);
  expect(r.send(9, { type: "command", id: "b" })).toBe(false);
  expect(deaf.closed).toEqual([[1013, "too much unread"]]);
});
