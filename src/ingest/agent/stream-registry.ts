/**
 * The agent streams open on this node, by agent id, so a message for an agent can be pushed down
 * the stream that holds it (src/cluster/bus.ts finds the node). An agent that reconnects may
 * briefly have two streams; messages go to the newest. Bounded by the open connections.
 */

/** What the registry needs of a stream's socket (Bun's AgentSocket fits). */
export interface AgentSocket {
  data: { agentId?: number };
  send(text: string): unknown;
  close(code?: number, reason?: string): void;
}

export class StreamRegistry {
  private byAgent = new Map<number, Array<AgentSocket>>();
  private sockets = 0;

  add(agentId: number, ws: AgentSocket): void {
    const list = this.byAgent.get(agentId);
    if (list) list.push(ws);
    else this.byAgent.set(agentId, [ws]);
    this.sockets++;
  }

  remove(ws: AgentSocket): void {
    const id = ws.data.agentId;
    if (id === undefined) return;
    const list = this.byAgent.get(id);
    if (!list) return;
    const i = list.indexOf(ws);
    if (i < 0) return;
    list.splice(i, 1);
    this.sockets--;
    if (list.length === 0) this.byAgent.delete(id);
  }

  has(agentId: number): boolean {
    return this.byAgent.has(agentId);
  }

  get size(): number {
    return this.byAgent.size;
  }

  /** Streams held, all agents. */
  get connections(): number {
    return this.sockets;
  }

  /**
   * Sends one JSON message down the agent's newest stream; false if it has none here, or if the
   * stream could not take it: Bun drops a message when the peer leaves its limit unread (Bun's
   * send answers 0), and that stream, whose agent stopped reading, is then closed so that the
   * agent reconnects (the command is answered "delivery failed" in time, not lost in silence).
   */
  send(agentId: number, msg: unknown): boolean {
    const list = this.byAgent.get(agentId);
    const ws = list?.[list.length - 1];
    if (!ws) return false;
    if (ws.send(JSON.stringify(msg)) === 0) {
      ws.close(1013, "too much unread");
      return false;
    }
    return true;
  }

  /** Closes every stream of the agent on this node (revocation). */
  close(agentId: number, code: number, reason: string): number {
    const list = this.byAgent.get(agentId) ?? [];
    this.byAgent.delete(agentId);
    this.sockets -= list.length;
    for (const ws of list) ws.close(code, reason);
    return list.length;
  }
}
