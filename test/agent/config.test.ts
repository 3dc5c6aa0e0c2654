import { expect, test } from "bun:test";
import { loadAgentConfig } from "../../agent/config.ts";

test("SERVERMIND_AGENT_JOURNAL_DIR points journald at a directory; unset means the system journal", () => {
  expect(loadAgentConfig({}).journalDir).toBeUndefined();
  expect(loadAgentConfig({ SERVERMIND_AGENT_JOURNAL_DIR: "" }).journalDir).toBeUndefined();
  expect(loadAgentConfig({ SERVERMIND_AGENT_JOURNAL_DIR: "/host/var/log/journal/" }).journalDir).toBe("/host/var/log/journal");
});
