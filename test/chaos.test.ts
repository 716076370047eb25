// A small chaos run in CI: the checks of `npm run chaos` with a few hundred
// events, one SIGKILL and one SIGTERM of a delivery worker process and one
// flush of the run's Redis keys.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ScheduledDisruption } from '../scripts/chaos/plan.js';
import type { ChaosReport } from '../scripts/chaos/report.js';
import { runChaos } from '../scripts/chaos/run.js';
import { killAllWorkers } from '../scripts/chaos/worker-process.js';
import { createTestEnv, type TestEnv } from './helpers/test-env.js';

const DISRUPTIONS: ScheduledDisruption[] = [
  { atMs: 1_500, disruption: { kind: 'kill', signal: 'SIGKILL', role: 'delivery' } },
  { atMs: 3_000, disruption: { kind: 'flush' } },
  { atMs: 4_500, disruption: { kind: 'kill', signal: 'SIGTERM', role: 'delivery' } },
];

/** Shorter than the chaos run's settings, so that a killed worker's deliveries return within seconds. */
const WORKER_SETTINGS = {
  ATTEMPT_TIMEOUT_MS: '4000',
  LEASE_TIMEOUT_MS: '5000',
  JOB_LOCK_DURATION_MS: '2000',
  STALLED_INTERVAL_MS: '1000',
  SWEEP_INTERVAL_MS: '1000',
  SWEEP_GRACE_MS: '2000',
  SHUTDOWN_GRACE_MS: '10000',
  DATABASE_POOL_MAX: '2',
};

let env: TestEnv;
let report: ChaosReport;
const progress: string[] = [];
const workerLog: string[] = [];

beforeAll(async () => {
  env = await createTestEnv();
  report = await runChaos({
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    queuePrefix: env.queuePrefix,
    events: 300,
    receivers: 8,
    workers: { dispatch: 1, delivery: 2 },
    publishRate: 60,
    disruptions: DISRUPTIONS,
    drainTimeoutMs: 60_000,
    seed: 20_261_204,
    workerSettings: WORKER_SETTINGS,
    writeLog: (text) => {
      workerLog.push(text);
      if (workerLog.length > 200) workerLog.shift();
    },
    onProgress: (text) => progress.push(text),
  });
}, 110_000);

afterAll(async () => {
  // runChaos stops its workers itself; this covers a run cut off by the hook timeout.
  killAllWorkers();
  await env?.dispose();
});

function value(label: string): string {
  const row = report.rows.find((candidate) => candidate.label === label);
  if (row === undefined) throw new Error(`the report has no line "${label}"`);
  return row.value;
}

describe('chaos run', () => {
  test('every guarantee holds', () => {
    const context = `${progress.join('\n')}\n${JSON.stringify(report.examples, null, 2)}`;
    for (const row of report.rows) {
      expect(row.failed, `${row.label}: ${row.value}\n${context}`).toBe(false);
    }
    expect(report.failed).toBe(false);
  });

  test('no delivery lost or duplicated', () => {
    expect(value('events published')).toBe('300');
    expect(value('event rows')).toBe('300');
    expect(Number(value('expected deliveries (from subscriptions)'))).toBeGreaterThan(300);
    expect(value('delivery rows')).toBe(value('expected deliveries (from subscriptions)'));
    expect(value('lost: expected delivery without a row')).toBe('0');
    expect(value('lost: delivery never finished')).toBe('0');
    expect(value('duplicate delivery rows')).toBe('0');
    const finished =
      Number(value('deliveries delivered')) + Number(value('deliveries failed (budget spent)'));
    expect(finished).toBe(Number(value('delivery rows')));
  });

  test('attempt rows consistent', () => {
    expect(value('attempt-number gaps or repeats')).toBe('0');
    expect(value('attempts column differs from attempt rows')).toBe('0');
    expect(value('state differs from last attempt')).toBe('0');
    expect(value('delivered without a 2xx at the receiver')).toBe('0');
    expect(value('requests failing the signature check')).toBe('0');
  });

  test('disruptions took place', () => {
    expect(value('SIGKILLs sent')).toBe('1');
    expect(value('SIGTERMs sent (chaos, not the final stop)')).toBe('1');
    expect(Number(value('Redis keys deleted by the flush'))).toBeGreaterThan(0);
    // The SIGTERM during the run, and the final stop of each worker that
    // was running then (a worker may be between exit and restart).
    expect(Number(value('SIGTERM stops that exited 0 (final stop included)'))).toBeGreaterThanOrEqual(2);
    expect(value('SIGTERM stops that did not exit 0')).toBe('0');
    expect(value('workers that exited by themselves')).toBe('0');
  });
});
