import type { Cluster, Redis } from 'ioredis';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger, type Logger } from './logger.js';

export interface Service {
  close(): Promise<void>;
}

/** Exit code of a process that a second signal stopped, as shells report SIGINT. */
export const EXIT_CODE_SECOND_SIGNAL = 130;

/**
 * Runs a long-lived role until SIGTERM or SIGINT. The first signal closes
 * the service (stop taking work, finish or hand back what it holds) and
 * exits 0, or 1 when that takes longer than SHUTDOWN_GRACE_MS. A second
 * signal exits at once with 130. A signal that arrives while the service is
 * still starting is handled the same way once the start has finished.
 */
export async function runService(
  role: string,
  start: (config: Config, logger: Logger) => Promise<Service> | Service,
): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`invalid configuration: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(role, config.logLevel);

  let service: Service | undefined;
  let stopSignal: NodeJS.Signals | undefined;
  let stopStartedAt = 0;

  const closeService = (current: Service) => {
    current.close().then(
      () => {
        logger.info(
          { stopMs: Math.round(performance.now() - stopStartedAt) },
          'closed within the grace period; exiting 0',
        );
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopSignal !== undefined) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(EXIT_CODE_SECOND_SIGNAL);
    }
    stopSignal = signal;
    stopStartedAt = performance.now();
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'stopping');
    // Not unref'd: a close that hangs with nothing else scheduled must
    // still end in exit 1, not in a silent exit 0.
    setTimeout(() => {
      logger.error({ graceMs: config.shutdownGraceMs }, 'shutdown grace period passed; exiting');
      process.exit(1);
    }, config.shutdownGraceMs);
    if (service !== undefined) closeService(service);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Under `npm run workers` and the chaos run, the parent keeps an IPC
  // channel open to the worker. The channel closes when the parent dies, and
  // the worker then stops as on SIGTERM instead of running on unsupervised.
  if (process.send !== undefined) {
    process.on('disconnect', () => {
      if (stopSignal === undefined) onSignal('SIGTERM');
    });
  }

  try {
    service = await start(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, `${role} failed to start`);
    process.exit(1);
  }
  if (stopSignal !== undefined) closeService(service);
}

/** Time that a stopping process waits for Redis to acknowledge QUIT, in ms. */
const QUIT_TIMEOUT_MS = 1_000;

/**
 * Closes a Redis connection: QUIT when it is connected, so that pending
 * replies arrive first, else a plain disconnect. A worker connection
 * (`maxRetriesPerRequest: null`) queues QUIT while Redis is down and would
 * wait for Redis to come back, which kept stopping workers from exiting.
 */
export async function closeRedisConnection(client: Redis | Cluster): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), QUIT_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([client.quit(), timedOut]);
    if (result === 'timeout') client.disconnect();
  } catch {
    // QUIT fails when the connection drops meanwhile; it is closed either way.
    client.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

/** One step of stopping a role. */
export interface CloseStep {
  name: string;
  run: () => Promise<unknown>;
  /** Limit of the step in ms; the caller's default when absent. */
  timeoutMs?: number;
  /** Called when the step runs past its limit, for example to force it. */
  onTimeout?: () => void;
}

const DEFAULT_CLOSE_STEP_TIMEOUT_MS = 10_000;

/**
 * Splits a shutdown grace period into limits for the steps of stopping a
 * role: the step that waits for running jobs gets up to `jobsMs` but leaves
 * room for the others, and every other step gets a small share, so that
 * stopping ends within the grace even when Redis is down.
 */
export function closeStepLimits(shutdownGraceMs: number, jobsMs: number) {
  const otherStepMs = Math.max(100, Math.min(2_000, shutdownGraceMs / 12));
  const jobStepMs = Math.max(
    250,
    Math.min(jobsMs, shutdownGraceMs - 8 * otherStepMs),
  );
  return { jobStepMs, otherStepMs };
}

/**
 * Runs the steps of stopping a role in order. A step that fails or runs
 * past its limit is logged and the next one runs anyway, because a
 * connection stuck on a Redis node that failed over must not keep the
 * others open.
 */
export async function runCloseSteps(
  steps: readonly CloseStep[],
  logger: Logger,
  defaultTimeoutMs = DEFAULT_CLOSE_STEP_TIMEOUT_MS,
): Promise<void> {
  for (const step of steps) {
    const timeoutMs = step.timeoutMs ?? defaultTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const result = await Promise.race([
        step.run().then(() => 'done' as const),
        timedOut,
      ]);
      if (result === 'timeout') {
        logger.error({ step: step.name, timeoutMs }, 'stop step timed out; continuing');
        step.onTimeout?.();
      }
    } catch (error) {
      logger.error({ err: error, step: step.name }, 'stop step failed; continuing');
    } finally {
      clearTimeout(timer);
    }
  }
}
