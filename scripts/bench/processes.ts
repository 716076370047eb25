import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Roles must not outlive the benchmark, whether it ends, fails or is
// interrupted.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => process.exit(130));
}

/** A role started as its own Node process, the way operators start it. */
export class RoleProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly entry: string,
    private readonly env: Record<string, string>,
    private readonly extraNodeArgs: string[] = [],
  ) {}

  start(): this {
    const child = spawn(
      process.execPath,
      [...this.extraNodeArgs, '--import', 'tsx', `${ROOT}/${this.entry}`],
      { env: { ...process.env, ...this.env }, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    running.add(child);
    this.exited = new Promise((resolve) =>
      child.on('exit', () => {
        running.delete(child);
        resolve();
      }),
    );
    this.child = child;
    return this;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Peak resident set size so far (VmHWM), in MB; null where /proc is absent. */
  peakRssMb(): number | null {
    return this.readStatusMb('VmHWM');
  }

  /** Current resident set size (VmRSS), in MB; null where /proc is absent. */
  rssMb(): number | null {
    return this.readStatusMb('VmRSS');
  }

  private readStatusMb(field: string): number | null {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
      return match ? Number(match[1]) / 1024 : null;
    } catch {
      return null;
    }
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGTERM');
    await this.exited;
  }
}
