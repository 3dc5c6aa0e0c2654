/**
 * The block encoder's thread (block-encoder.ts): encodes each job it is sent and answers with its
 * rows, or with the error that stopped it; the rows' bytes are moved back, not copied.
 */
import { BlockRows } from "./metric-blocks.ts";
import { encodeRows, fromJob, type EncodeJob, type EncodeReply } from "./block-encoder.ts";

declare const self: Worker;
const rows = new BlockRows();

self.onmessage = (ev: MessageEvent<EncodeJob>) => {
  const job = ev.data;
  let reply: EncodeReply;
  try {
    reply = { seq: job.seq, rows: encodeRows(fromJob(job), rows) };
  } catch (e) {
    reply = { seq: job.seq, error: { name: e instanceof Error ? e.name : "Error", message: e instanceof Error ? e.message : String(e) } };
  }
  self.postMessage(reply, "rows" in reply ? [reply.rows.blocks.buffer as ArrayBuffer] : []);
};
