import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RoleProcess, roleEnvironment, type RoleLogLine } from '../helpers/role-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

// The sweeper is a timer in every dispatch process, and a Redis lock lets
// one process sweep per period. Several dispatch processes go through a
// crash loop, a rolling restart with a new period, a deletion of every
// Redis key of this install and a sweep slowed past its period. The runs
// are counted from the one log line that each run writes when it ends.
const PROCESSES = 2;
const FIRST_PERIOD_MS = 1_500;
const SECOND_PERIOD_MS = 750;
const GRACE_MS = 3_000;
/** Runs expected per observation window: the window is this many periods. */
const PERIODS_OBSERVED = 6;

const RUN_MESSAGES = new Set(['sweep re-enqueued work', 'sweep found nothing to re-enqueue']);

interface SweepRun {
  pid: number;
  start: number;
  end: number;
}

let env: TestEnv;
/** Every dispatch process started, killed ones included, for their log lines. */
const started: RoleProcess[] = [];
let current: RoleProcess[] = [];

beforeAll(async () => {
  env = await createTestEnv();
});

afterAll(async () => {
  for (const role of started) role.kill('SIGKILL');
  await Promise.all(started.map((role) => role.exited));
  await env?.dispose();
});

function startDispatch(periodMs: number): RoleProcess {
  const role = new RoleProcess(
    'dispatch',
    roleEnvironment(env, {
      SWEEP_INTERVAL_MS: String(periodMs),
      SWEEP_GRACE_MS: String(GRACE_MS),
    }),
  );
  started.push(role);
  return role;
}

async function killAll(roles: readonly RoleProcess[]): Promise<void> {
  for (const role of roles) role.kill('SIGKILL');
  await Promise.all(roles.map((role) => role.exited));
}

/** Returns every sweep run that any dispatch process logged, in order of start. */
function sweepRuns(): SweepRun[] {
  const runs: SweepRun[] = [];
  for (const role of started) {
    for (const line of role.lines) {
      if (!RUN_MESSAGES.has(String(line.msg))) continue;
      runs.push(toRun(line));
    }
  }
  return runs.sort((a, b) => a.start - b.start);
}

function toRun(line: RoleLogLine): SweepRun {
  const start = Date.parse(String(line.startedAt));
  return { pid: Number(line.pid), start, end: start + Number(line.durationMs) };
}

function runsStartedBetween(from: number, to: number): SweepRun[] {
  return sweepRuns().filter((run) => run.start >= from && run.start < to);
}

/** Returns the pairs of runs where one started before the previous one ended. */
function overlaps(runs: readonly SweepRun[]): [SweepRun, SweepRun][] {
  const found: [SweepRun, SweepRun][] = [];
  for (let index = 1; index < runs.length; index += 1) {
    if (runs[index]!.start < runs[index - 1]!.end) found.push([runs[index - 1]!, runs[index]!]);
  }
  return found;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function insertUndispatchedEvent(): Promise<string> {
  const id = randomUUID();
  await env.pool.query(
    `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
     VALUES ($1, 'sweep.schedule', '{}', now(), now())`,
    [id],
  );
  return id;
}

async function isDispatched(eventId: string): Promise<boolean> {
  const { rows } = await env.pool.query<{ dispatched: boolean }>(
    `SELECT time_dispatched IS NOT NULL AS dispatched FROM webhook_event WHERE id = $1`,
    [eventId],
  );
  return rows[0]?.dispatched === true;
}

/** Deletes every key of this install, as a flush would, and no other key of the shared Redis. */
async function deleteInstallKeys(): Promise<number> {
  const redis = new Redis(env.redisUrl);
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${env.queuePrefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) deleted += await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

function expectRunsPerWindow(runs: readonly SweepRun[], label: string): void {
  const detail = `${label}: ${JSON.stringify(runs)}`;
  expect(runs.length, detail).toBeGreaterThanOrEqual(PERIODS_OBSERVED - 1);
  expect(runs.length, detail).toBeLessThanOrEqual(PERIODS_OBSERVED + 1);
}

describe('sweeper across many dispatch processes', () => {
  test('runs once per period after crash loop', async () => {
    // Crash loop: every process is killed 1 s after it was started, three
    // times, before the survivors start for good.
    current = Array.from({ length: PROCESSES }, () => startDispatch(FIRST_PERIOD_MS));
    for (let loop = 0; loop < 3; loop += 1) {
      await sleep(1_000);
      await killAll(current);
      current = Array.from({ length: PROCESSES }, () => startDispatch(FIRST_PERIOD_MS));
    }
    await Promise.all(current.map((role) => role.started()));

    const from = Date.now();
    const windowMs = PERIODS_OBSERVED * FIRST_PERIOD_MS;
    await sleep(windowMs + 500);
    const runs = runsStartedBetween(from, from + windowMs);
    expectRunsPerWindow(runs, `runs in ${windowMs} ms at a ${FIRST_PERIOD_MS} ms period`);
    expect(new Set(runs.map((run) => run.pid)).size, 'processes that ran a sweep').toBeGreaterThanOrEqual(1);
    const starts = [from, ...runs.map((run) => run.start)];
    const longestGap = Math.max(...starts.slice(1).map((start, index) => start - starts[index]!));
    expect(longestGap, 'longest time without a run').toBeLessThan(2 * FIRST_PERIOD_MS + 500);
    expect(overlaps(sweepRuns()), 'runs that overlap').toEqual([]);
  });

  test('new period applies after rolling restart', async () => {
    // One process at a time, 1 s apart, as a deploy does.
    const replaced: RoleProcess[] = [];
    for (const role of current) {
      await role.stop();
      replaced.push(startDispatch(SECOND_PERIOD_MS));
      await sleep(1_000);
    }
    current = replaced;
    await Promise.all(current.map((role) => role.started()));

    const from = Date.now();
    const windowMs = PERIODS_OBSERVED * SECOND_PERIOD_MS;
    await sleep(windowMs + 500);
    // The old period would give half as many runs.
    expectRunsPerWindow(runsStartedBetween(from, from + windowMs), `runs in ${windowMs} ms at a ${SECOND_PERIOD_MS} ms period`);
    expect(overlaps(sweepRuns()), 'runs that overlap').toEqual([]);
  });

  test('key deletion loses no sweep', async () => {
    const deleted = await deleteInstallKeys();
    expect(deleted, 'keys of this install deleted').toBeGreaterThan(0);
    const flushedAt = Date.now();
    const eventId = await insertUndispatchedEvent();

    // No process restarts: the timers keep running, and the lock is made again.
    await waitFor(() => runsStartedBetween(flushedAt, Infinity).length > 0, {
      timeoutMs: 2 * SECOND_PERIOD_MS + 2_000,
      message: 'a sweep after the keys were deleted',
    });
    await waitFor(() => isDispatched(eventId), {
      timeoutMs: GRACE_MS + SECOND_PERIOD_MS + 5_000,
      intervalMs: 100,
      message: `event ${eventId}, inserted after the keys were deleted, to be dispatched`,
    });
    const sweptEvents = current
      .flatMap((role) => role.linesWithMessage('sweep re-enqueued work'))
      .filter((line) => line.at >= flushedAt);
    expect(sweptEvents.map((line) => typeof line.events), 'count of re-enqueued events per run').toContain('number');
    expect(current.every((role) => role.isRunning), 'dispatch processes still running').toBe(true);
  });

  test('slow sweep does not overlap the next', async () => {
    // A sweep that waits on a table lock runs four periods long; no other
    // process may start a sweep meanwhile.
    const client = await env.pool.connect();
    const lockedFrom = Date.now();
    try {
      await client.query('BEGIN');
      await client.query('LOCK TABLE webhook_event IN ACCESS EXCLUSIVE MODE');
      await sleep(4 * SECOND_PERIOD_MS);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await waitFor(() => runsStartedBetween(lockedFrom, Infinity).some((run) => run.end - run.start > 2 * SECOND_PERIOD_MS), {
      timeoutMs: 5_000,
      message: 'the slowed sweep to end',
    });
    await sleep(2 * SECOND_PERIOD_MS);
    const runs = runsStartedBetween(lockedFrom - SECOND_PERIOD_MS, Infinity);
    expect(overlaps(runs), `runs that overlap: ${JSON.stringify(runs)}`).toEqual([]);
    expect(runs.filter((run) => run.start > lockedFrom + 4 * SECOND_PERIOD_MS).length, 'runs after the slow one').toBeGreaterThan(0);
  });
});
