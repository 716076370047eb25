import { pino } from 'pino';
import type { Logger } from '../../shared/logger.js';

/** One parsed JSON log line. */
export type LogRecord = Record<string, unknown> & { level: number; msg?: string };

/**
 * Creates a pino logger that keeps every line in memory, so that a test can
 * start a worker with it and check what the worker logged.
 */
export function captureLogs(level = 'debug'): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = pino(
    { level, base: { role: 'test' } },
    { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) },
  );
  return { logger, records };
}
