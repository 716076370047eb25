import { afterAll } from 'vitest';
import {
  WorkerProcess,
  type WorkerLogLine,
  type WorkerRole,
} from '../../scripts/chaos/worker-process.js';
import { TEST_SETTINGS, type TestEnv } from './test-env.js';

/** Short leases and job locks, so that a killed worker's delivery comes back within seconds. */
export const SHORT_LEASE_SETTINGS = {
  LEASE_TIMEOUT_MS: '5000',
  JOB_LOCK_DURATION_MS: '2000',
  STALLED_INTERVAL_MS: '1000',
  SHUTDOWN_GRACE_MS: '10000',
};

/**
 * Returns the environment of a worker process for a test env: the settings
 * that TestEnv.config() uses, then `overrides`.
 */
export function workerEnvironment(
  env: TestEnv,
  overrides: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: env.databaseUrl,
    REDIS_URL: env.redisUrl,
    QUEUE_PREFIX: env.queuePrefix,
    ...TEST_SETTINGS,
    DATABASE_POOL_MAX: '2',
    LOG_LEVEL: 'info',
    ...overrides,
  };
}

/** A worker process with every line it wrote, for the test's checks and failure messages. */
export interface TestWorker {
  readonly process: WorkerProcess;
  readonly lines: (WorkerLogLine | string)[];
  /** Performance.now() when the worker logged that it started. */
  readyAt: number;
}

/**
 * Starts worker processes for one test file and kills any that still run
 * when the file ends, also when a test failed half-way.
 */
export function useWorkerProcesses() {
  const started: TestWorker[] = [];
  afterAll(async () => {
    for (const worker of started) worker.process.killNow();
    await Promise.all(started.map((worker) => worker.process.exited));
  });
  return {
    /** Starts a worker and waits until it has logged that it started. */
    async start(role: WorkerRole, environment: NodeJS.ProcessEnv): Promise<TestWorker> {
      const lines: (WorkerLogLine | string)[] = [];
      const child = new WorkerProcess(role, environment, (line) => lines.push(line));
      const worker: TestWorker = { process: child, lines, readyAt: 0 };
      started.push(worker);
      const exitedEarly = child.exited.then((status) => {
        throw new Error(
          `${role} worker exited before it started (code ${status.code}, signal ${status.signal}):\n${formatLines(lines)}`,
        );
      });
      await Promise.race([child.ready, exitedEarly]);
      exitedEarly.catch(() => {});
      worker.readyAt = performance.now();
      return worker;
    },
  };
}

/** Returns the log lines whose message is `msg`. */
export function linesWithMessage(worker: TestWorker, msg: string): WorkerLogLine[] {
  return worker.lines.filter(
    (line): line is WorkerLogLine => typeof line !== 'string' && line.msg === msg,
  );
}

/** Formats the last lines of a worker's output for an assertion message. */
export function formatLines(lines: readonly (WorkerLogLine | string)[], last = 30): string {
  return lines
    .slice(-last)
    .map((line) => (typeof line === 'string' ? line.trimEnd() : JSON.stringify(line)))
    .join('\n');
}
