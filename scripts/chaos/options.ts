import { parseArgs } from 'node:util';

/** The command-line options of `npm run chaos`. */
export interface ChaosOptions {
  events: number;
  receivers: number;
  dispatchWorkers: number;
  deliveryWorkers: number;
  /** Events published per second. */
  rate: number;
  /** Mean time between two kills, in ms. */
  killIntervalMs: number;
  /** How long kills go on after publishing has ended, in ms. */
  chaosAfterPublishMs: number;
  drainTimeoutMs: number;
  seed: number;
}

export const USAGE = `usage: npm run chaos -- [options]
  --events N              events to publish (default 3000)
  --receivers N           receivers to register, about 15% flaky and 15% slow (default 20)
  --dispatch N            dispatch worker processes (default 2)
  --delivery N            delivery worker processes (default 4)
  --rate N                events published per second (default 100)
  --kill-interval-ms N    mean time between two kills in ms (default 2500)
  --chaos-after-ms N      how long kills go on after the last publish, in ms (default 10000)
  --drain-timeout-ms N    how long to wait for every delivery to finish, in ms (default 600000)
  --seed N                seed of the kill plan and the event classes (default: random)`;

/** An invalid command line; the message names the option and the rule. */
export class UsageError extends Error {}

function readNumber(
  values: Record<string, string | boolean | undefined>,
  option: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = values[option];
  if (raw === undefined) return fallback;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) {
    throw new UsageError(`--${option} must be a whole number, got "${String(raw)}"`);
  }
  const value = Number(raw);
  if (value < min || value > max) {
    throw new UsageError(`--${option} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

/** Parses the command line; returns null for --help. Throws UsageError. */
export function parseChaosOptions(args: string[]): ChaosOptions | null {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        events: { type: 'string' },
        receivers: { type: 'string' },
        dispatch: { type: 'string' },
        delivery: { type: 'string' },
        rate: { type: 'string' },
        'kill-interval-ms': { type: 'string' },
        'chaos-after-ms': { type: 'string' },
        'drain-timeout-ms': { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return null;
  return {
    events: readNumber(values, 'events', 3_000, 1, 1_000_000),
    receivers: readNumber(values, 'receivers', 20, 1, 1_000),
    dispatchWorkers: readNumber(values, 'dispatch', 2, 1, 64),
    deliveryWorkers: readNumber(values, 'delivery', 4, 1, 64),
    rate: readNumber(values, 'rate', 100, 1, 100_000),
    killIntervalMs: readNumber(values, 'kill-interval-ms', 2_500, 100, 3_600_000),
    chaosAfterPublishMs: readNumber(values, 'chaos-after-ms', 10_000, 0, 3_600_000),
    drainTimeoutMs: readNumber(values, 'drain-timeout-ms', 600_000, 1_000, 86_400_000),
    seed: readNumber(values, 'seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1),
  };
}
