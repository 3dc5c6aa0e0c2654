/**
 * Runs one service-manager program with a fixed argument vector (never a shell), a timeout and
 * a cap on captured output. The caller has already validated every user-supplied argument and
 * puts it after `--`.
 */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_OUTPUT = 4 << 20;

export interface RunOptions {
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** Called with each complete line of stdout or stderr as it is printed. */
  onLine?: (line: string) => void;
}

export async function runProgram(argv: string[], o: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let p: ReturnType<typeof Bun.spawn>;
  try {
    p = Bun.spawn(argv, { env: { ...process.env, ...o.env, SYSTEMD_PAGER: "", SYSTEMD_COLORS: "0", LC_ALL: "C" }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    return { code: null, stdout: "", stderr: `${argv[0]} could not be started: ${e instanceof Error ? e.message : e}`, timedOut: false };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGKILL");
  }, timeoutMs);
  const read = async (s: ReadableStream<Uint8Array>) => {
    let out = "";
    let partial = "";
    const d = new TextDecoder();
    for await (const c of s) {
      const text = d.decode(c, { stream: true });
      if (out.length < MAX_OUTPUT) out += text;
      if (o.onLine) {
        const lines = (partial + text).split("\n");
        partial = lines.pop()!.slice(0, 65_536);
        for (const l of lines) o.onLine(l);
      }
    }
    if (o.onLine && partial) o.onLine(partial);
    return out.slice(0, MAX_OUTPUT);
  };
  const [stdout, stderr] = await Promise.all([read(p.stdout as ReadableStream<Uint8Array>), read(p.stderr as ReadableStream<Uint8Array>)]);
  const code = await p.exited;
  clearTimeout(timer);
  return { code: timedOut ? null : code, stdout, stderr, timedOut };
}

/**
 * Starts a long-running program (e.g. `journalctl -f`) whose stdout lines go to `onLine` until
 * `stop()` (which kills it) or `maxMs` passes; never a shell.
 */
export function followProgram(argv: string[], onLine: (line: string) => void, o: { env?: Record<string, string | undefined>; maxMs?: number } = {}): { stop(): Promise<void> } {
  let p: ReturnType<typeof Bun.spawn>;
  try {
    p = Bun.spawn(argv, { env: { ...process.env, ...o.env, SYSTEMD_PAGER: "", SYSTEMD_COLORS: "0", LC_ALL: "C" }, stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  } catch {
    return { stop: async () => {} };
  }
  const timer = setTimeout(() => p.kill("SIGKILL"), o.maxMs ?? DEFAULT_TIMEOUT_MS + 5000);
  const reading = (async () => {
    let partial = "";
    const d = new TextDecoder();
    try {
      for await (const c of p.stdout as ReadableStream<Uint8Array>) {
        const lines = (partial + d.decode(c, { stream: true })).split("\n");
        partial = lines.pop()!.slice(0, 65_536);
        for (const l of lines) onLine(l);
      }
    } catch {
      /* killed */
    }
  })();
  return {
    async stop() {
      clearTimeout(timer);
      p.kill("SIGTERM");
      await Promise.race([reading, Bun.sleep(1000)]);
      p.kill("SIGKILL");
    },
  };
}
