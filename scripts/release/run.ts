/** Runs one external tool of the release and throws its output when it fails. */
export function run(argv: string[], opts: { env?: Record<string, string>; cwd?: string; input?: string } = {}): { stdout: string; stderr: string } {
  const p = Bun.spawnSync(argv, { env: opts.env ?? (process.env as Record<string, string>), cwd: opts.cwd, stdin: opts.input === undefined ? "ignore" : Buffer.from(opts.input), stdout: "pipe", stderr: "pipe", timeout: 900_000 });
  const stdout = p.stdout.toString();
  const stderr = p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`${argv[0]} ${argv.slice(1, 4).join(" ")} failed (${p.exitCode}): ${(stderr + stdout).trim().split("\n").slice(-8).join(" | ")}`);
  return { stdout, stderr };
}
