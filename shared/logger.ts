import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Creates the JSON logger of one process, writing to stdout unless another
 * destination is given. Child loggers add the event, delivery and receiver
 * ids to every line that concerns them.
 */
export function createLogger(
  role: string,
  level = 'info',
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    base: { role, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Secrets and tokens must never reach a log line, whatever logs them.
    redact: {
      paths: ['secret', '*.secret', 'secrets', 'authorization', '*.authorization'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
