import { describe, expect, test } from "bun:test";
import { loadAgentConfig } from "../../agent/config.ts";

describe("agent configuration", () => {
  test("SERVERMIND_AGENT_JOURNAL_DIR points journald at a directory; unset means the system journal", () => {
    expect(loadAgentConfig({}).journalDir).toBeUndefined();
    expect(loadAgentConfig({ SERVERMIND_AGENT_JOURNAL_DIR: "" }).journalDir).toBeUndefined();
    expect(loadAgentConfig({ SERVERMIND_AGENT_JOURNAL_DIR: "/host/var/log/journal/" }).journalDir).toBe("/host/var/log/journal");
  });

  test("SERVERMIND_AGENT_JIT names the processes that keep the JIT; none by default", () => {
    expect(loadAgentConfig({}).jitRoles).toEqual([]);
    expect(loadAgentConfig({ SERVERMIND_AGENT_JIT: "platform, collector" }).jitRoles).toEqual(["platform", "collector"]);
    expect(() => loadAgentConfig({ SERVERMIND_AGENT_JIT: "platform,supervisor" })).toThrow(/SERVERMIND_AGENT_JIT: "supervisor" is not one of/);
  });
});
