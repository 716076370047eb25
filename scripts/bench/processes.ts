import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

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
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    this.child = child;
    return this;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Peak resident set size so far (VmHWM), in MB; null where /proc is absent. */
  peakRssMb(): number | null {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const match = /VmHWM:\s+(\d+) kB/.exec(status);
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
