import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TEST_SETTINGS } from './test-env.js';

/** A role that runs as a process of its own, from its entry point; `all` is the all-in-one process. */
export type Role = 'api' | 'dispatch' | 'delivery' | 'all';

const ENTRY_POINTS: Record<Role, string> = {
  api: fileURLToPath(new URL('../../producers/api/main.ts', import.meta.url)),
  dispatch: fileURLToPath(new URL('../../workers/dispatch/main.ts', import.meta.url)),
  delivery: fileURLToPath(new URL('../../workers/delivery/main.ts', import.meta.url)),
  all: fileURLToPath(new URL('../../scripts/start-all.ts', import.meta.url)),
};

/** The message of the log line that each role writes once it has started. */
const STARTED_MESSAGES: Record<Role, string> = {
  api: 'API listening',
  dispatch: 'dispatch worker started',
  delivery: 'delivery worker started',
  all: 'delivery worker started',
};

/** One pino line of a role, with `at`, when this process read it (Date.now()). */
export type RoleLogLine = Record<string, unknown> & { msg?: string; level?: number; at: number };

const running = new Set<RoleProcess>();
// A test process that exits for any reason leaves no role behind.
process.on('exit', () => {
  for (const role of running) role.kill('SIGKILL');
});

/**
 * A role started as `node --import tsx <entry point>`, as operators run it,
 * with the given environment. Its JSON log lines are kept in `lines`.
 */
export class RoleProcess {
  readonly lines: RoleLogLine[] = [];
  /** Everything the process wrote that is not a JSON log line. */
  otherOutput = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private rest = '';
  private waiters: { test: (line: RoleLogLine) => boolean; resolve: (line: RoleLogLine) => void }[] = [];
  private hasExited = false;

  constructor(
    readonly role: Role,
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(process.execPath, ['--import', 'tsx', ENTRY_POINTS[role]], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.hasExited = true;
        running.delete(this);
        resolve({ code, signal });
      });
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.read(chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.otherOutput += chunk;
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get isRunning(): boolean {
    return !this.hasExited;
  }

  /** Waits for the line that the role logs once it has started, and returns it. */
  started(timeoutMs = 30_000): Promise<RoleLogLine> {
    return this.waitForLine((line) => line.msg === STARTED_MESSAGES[this.role], timeoutMs);
  }

  /** Waits for a log line that passes `test`, including lines already read. */
  waitForLine(test: (line: RoleLogLine) => boolean, timeoutMs = 30_000): Promise<RoleLogLine> {
    const seen = this.lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter.resolve !== done);
        reject(new Error(`${this.role} process logged no matching line within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      const done = (line: RoleLogLine) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiters.push({ test, resolve: done });
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.role} process exited before the expected line:\n${this.tail()}`));
      });
    });
  }

  /** Lines whose message is `msg`. */
  linesWithMessage(msg: string): RoleLogLine[] {
    return this.lines.filter((line) => line.msg === msg);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.isRunning) this.child.kill(signal);
  }

  /** Sends SIGTERM, then SIGKILL when the process still runs after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.isRunning) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Returns the last lines of output, for failure messages. */
  tail(count = 20): string {
    const lines = this.lines.slice(-count).map((line) => JSON.stringify(line));
    return [...lines, this.otherOutput.slice(-2_000)].join('\n');
  }

  private read(chunk: string): void {
    const parts = (this.rest + chunk).split('\n');
    this.rest = parts.pop() ?? '';
    for (const text of parts) {
      if (!text.startsWith('{')) {
        this.otherOutput += `${text}\n`;
        continue;
      }
      let line: RoleLogLine;
      try {
        line = { ...(JSON.parse(text) as Record<string, unknown>), at: Date.now() };
      } catch {
        this.otherOutput += `${text}\n`;
        continue;
      }
      this.lines.push(line);
      for (const waiter of this.waiters.filter((candidate) => candidate.test(line))) {
        this.waiters = this.waiters.filter((candidate) => candidate !== waiter);
        waiter.resolve(line);
      }
    }
  }
}

/**
 * Returns the environment of a role process for a test: the settings of
 * TestEnv.config() for this database and queue prefix, then `overrides`.
 */
export function roleEnvironment(
  settings: { databaseUrl: string; redisUrl: string; queuePrefix: string },
  overrides: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: settings.databaseUrl,
    REDIS_URL: settings.redisUrl,
    QUEUE_PREFIX: settings.queuePrefix,
    ...TEST_SETTINGS,
    API_PORT: '0',
    DATABASE_POOL_MAX: '2',
    LOG_LEVEL: 'info',
    ...overrides,
  };
}
