import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger, type Logger } from './logger.js';

export interface Service {
  close(): Promise<void>;
}

/**
 * Runs a long-lived role until SIGTERM or SIGINT. The first signal closes
 * the service (stop taking work, finish or hand back what it holds) and
 * exits 0, or 1 when that takes longer than SHUTDOWN_GRACE_MS. A second
 * signal exits at once with 130.
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
  let service: Service;
  try {
    service = await start(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, `${role} failed to start`);
    process.exit(1);
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'stopping');
    const timer = setTimeout(() => {
      logger.error('shutdown grace period passed; exiting');
      process.exit(1);
    }, config.shutdownGraceMs);
    timer.unref();
    service.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Under `npm run workers` the supervisor holds an IPC channel; it closes
  // when the supervisor dies, so the worker stops instead of running on.
  if (process.send !== undefined) {
    process.on('disconnect', () => {
      if (!stopping) onSignal('SIGTERM');
    });
  }
}
