import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A worker role that runs as its own process. */
export type WorkerRole = 'dispatch' | 'delivery';

const ENTRY_POINTS: Record<WorkerRole, string> = {
  dispatch: fileURLToPath(new URL('../../workers/dispatch/main.ts', import.meta.url)),
  delivery: fileURLToPath(new URL('../../workers/delivery/main.ts', import.meta.url)),
};

/** Exit code of a worker process, or the signal that ended it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** performance.now() when the exit was seen. */
  at: number;
}

/** One JSON log line of a worker, as pino writes it. */
export type WorkerLogLine = Record<string, unknown> & { msg?: string };

/** Every worker process started here that has not exited yet. */
const running = new Set<WorkerProcess>();

// A parent that exits leaves no worker behind, whatever made it exit. The
// IPC channel covers a parent killed with SIGKILL: each worker stops when
// the channel closes.
process.on('exit', () => {
  for (const worker of running) worker.killNow();
});

/**
 * A dispatch or delivery worker started as `node --import tsx
 * workers/<role>/main.ts`, the way operators run it, with an IPC channel so
 * that it stops when this process dies.
 */
export class WorkerProcess {
  /** Resolves when the worker has logged that it started. */
  readonly ready: Promise<void>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  exitStatus: ExitStatus | undefined;
  /** performance.now() when the worker logged that it started; undefined until then. */
  readyAt: number | undefined;
  private readonly child: ChildProcess;
  private stdoutRest = '';

  constructor(
    readonly role: WorkerRole,
    env: NodeJS.ProcessEnv,
    /** Receives every stdout line, parsed when it is JSON, and every stderr chunk. */
    private readonly onOutput: (line: WorkerLogLine | string, worker: WorkerProcess) => void = () => {},
  ) {
    this.child = spawn(process.execPath, ['--import', 'tsx', ENTRY_POINTS[role]], {
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // A group of its own keeps a terminal's Ctrl-C from reaching the
      // worker, so that only the parent decides when it stops.
      detached: true,
    });
    running.add(this);
    let markReady = () => {};
    this.ready = new Promise<void>((resolve) => {
      markReady = () => {
        this.readyAt ??= performance.now();
        resolve();
      };
    });
    this.exited = new Promise<ExitStatus>((resolve) => {
      this.child.on('exit', (code, signal) => {
        running.delete(this);
        this.exitStatus = { code, signal, at: performance.now() };
        resolve(this.exitStatus);
      });
    });
    // A process that exits before it is ready is never ready; callers race
    // `ready` against `exited`.
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (this.stdoutRest + chunk).split('\n');
      this.stdoutRest = lines.pop() ?? '';
      for (const text of lines) {
        const line = parseLine(text);
        if (typeof line !== 'string' && /worker started$/.test(String(line.msg))) markReady();
        this.onOutput(line, this);
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.onOutput(chunk, this);
    });
    // The IPC channel errors when the worker dies mid-write; exit reports it.
    this.child.on('error', () => {});
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get isRunning(): boolean {
    return this.exitStatus === undefined;
  }

  /** Sends a signal; returns false when the process has already exited. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.isRunning) return false;
    return this.child.kill(signal);
  }

  /** Sends SIGKILL at once; for cleanup paths that cannot wait. */
  killNow(): void {
    if (this.isRunning) this.child.kill('SIGKILL');
  }

  /**
   * Sends SIGTERM and waits for the exit. Sends SIGKILL when the process is
   * still running after `timeoutMs`.
   */
  async stop(timeoutMs = 20_000): Promise<ExitStatus> {
    if (!this.isRunning) return this.exitStatus!;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.killNow(), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

function parseLine(text: string): WorkerLogLine | string {
  if (!text.startsWith('{')) return text;
  try {
    return JSON.parse(text) as WorkerLogLine;
  } catch {
    return text;
  }
}

/** Sends SIGKILL to every worker process that this process started and that still runs. */
export function killAllWorkers(): void {
  for (const worker of running) worker.killNow();
}
