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

export async function runProgram(argv: string[], o: { timeoutMs?: number; env?: Record<string, string | undefined> } = {}): Promise<RunResult> {
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
    const d = new TextDecoder();
    for await (const c of s) {
      if (out.length < MAX_OUTPUT) out += d.decode(c, { stream: true });
    }
    return out.slice(0, MAX_OUTPUT);
  };
  const [stdout, stderr] = await Promise.all([read(p.stdout as ReadableStream<Uint8Array>), read(p.stderr as ReadableStream<Uint8Array>)]);
  const code = await p.exited;
  clearTimeout(timer);
  return { code: timedOut ? null : code, stdout, stderr, timedOut };
}
