// /metrics of the all-in-one process: every family registered once, counters
// equal to the attempt rows, a consistent histogram, and no series per
// receiver, so that 1000 receivers created and deleted leave the series
// count where it was.
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { processMetrics, recordRetentionDeleted } from '../../shared/ops/metrics.js';
import { generateSecret } from '../../shared/signing.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { RoleProcess, roleEnvironment } from '../helpers/role-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const BULK_RECEIVERS = 1_000;

/** One sample line of the text format: name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Reads the sample lines of a scrape. parse-prometheus-text-format checks
 * the syntax, but it folds labelled histogram series into one, so the
 * values are read from the lines here.
 */
function samples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (match === null) throw new Error(`not a sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const label of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[label[1]!] = label[2]!;
      }
      return { name: match[1]!, labels, value: Number(match[3]) };
    });
}

/**
 * Counts the series of a scrape, leaving out prom-client's GC histogram,
 * which gains series when a kind of garbage collection first runs.
 */
function seriesCount(all: Sample[]): number {
  return all.filter((sample) => !sample.name.startsWith('nodejs_gc_duration_seconds')).length;
}

function sampleValue(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = all.filter(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  return found.reduce((sum, sample) => sum + sample.value, 0);
}

describe('all-in-one process', () => {
  let env: TestEnv;
  let ok: ReceiverHarness;
  let failing: ReceiverHarness;
  let all: RoleProcess;
  let apiUrl: string;

  beforeAll(async () => {
    env = await createTestEnv();
    ok = await new ReceiverHarness(() => ({ status: 200, body: 'ok' })).start();
    failing = await new ReceiverHarness(() => ({ status: 500, body: 'down' })).start();
    all = new RoleProcess(
      'all',
      roleEnvironment(
        { databaseUrl: env.databaseUrl, redisUrl: env.redisUrl, queuePrefix: env.queuePrefix },
        // Four attempts in all, a few ms apart.
        { RETRY_SCHEDULE_MS: '50,50,50', METRICS_REFRESH_MS: '500', DATABASE_POOL_MAX: '5' },
      ),
    );
    await all.started();
    apiUrl = (await all.waitForLine((line) => line.msg === 'API listening')).url as string;
  });

  afterAll(async () => {
    await all?.stop();
    await ok?.stop();
    await failing?.stop();
    await env?.dispose();
  });

  async function post(path: string, body: unknown): Promise<any> {
    const response = await fetch(`${apiUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const parsed = await response.json();
    expect(response.status, JSON.stringify(parsed)).toBeLessThan(300);
    return parsed;
  }

  async function scrape(): Promise<string> {
    const response = await fetch(`${apiUrl}/metrics`);
    expect(response.status).toBe(200);
    return response.text();
  }

  async function waitForFinishedDeliveries(count: number): Promise<void> {
    await waitFor(
      async () => {
        const { rows } = await env.pool.query<{ finished: number }>(
          `SELECT count(*)::int AS finished FROM webhook_delivery WHERE state <> 'pending'`,
        );
        return rows[0]!.finished >= count;
      },
      { timeoutMs: 60_000, intervalMs: 200, message: `${count} finished deliveries` },
    );
  }

  async function attemptRowsByResult(): Promise<Record<string, number>> {
    const { rows } = await env.pool.query<{ result: string; count: number }>(
      `SELECT result::text AS result, count(*)::int AS count FROM webhook_delivery_attempt GROUP BY result`,
    );
    return Object.fromEntries(rows.map((row) => [row.result, row.count]));
  }

  test('starts without double registration', () => {
    expect(all.otherOutput).not.toMatch(/already been registered/);
    expect(all.lines.filter((line) => /already been registered/.test(JSON.stringify(line)))).toEqual([]);
  });

  test('counts five events to two receivers', async () => {
    await post('/v1/receivers', { name: 'ok', endpoint: ok.url(), subscriptions: ['test.*'] });
    await post('/v1/receivers', { name: 'failing', endpoint: failing.url(), subscriptions: ['test.*'] });
    for (let index = 0; index < 5; index++) await post('/v1/events', { event_class: 'test.m', data: { index } });
    await waitForFinishedDeliveries(10);

    const text = await scrape();
    const families = parsePrometheusTextFormat(text);
    expect(families.length).toBeGreaterThan(10);
    for (const kind of ['HELP', 'TYPE']) {
      const names = text
        .split('\n')
        .filter((line) => line.startsWith(`# ${kind} `))
        .map((line) => line.split(' ')[2]);
      expect(names.length, kind).toBe(families.length);
      expect(new Set(names).size, `${kind} lines per family`).toBe(names.length);
    }

    const all = samples(text);
    const rows = await attemptRowsByResult();
    expect(rows).toEqual({ succeeded: 5, failed_http_error: 20 });
    for (const result of ['succeeded', 'failed_http_error', 'failed_unreachable', 'failed_timeout']) {
      expect(sampleValue(all, 'webhook_delivery_attempts_total', { result }), result).toBe(rows[result] ?? 0);
    }
    expect(sampleValue(all, 'webhook_deliveries_total', { result: 'delivered' })).toBe(5);
    expect(sampleValue(all, 'webhook_deliveries_total', { result: 'failed' })).toBe(5);
    expect(sampleValue(all, 'webhook_dispatch_jobs_total', { outcome: 'dispatched' })).toBe(5);
  });

  test('histogram is consistent', async () => {
    const all = samples(await scrape());
    const name = 'webhook_delivery_attempt_duration_seconds';
    expect(sampleValue(all, `${name}_count`)).toBe(25);
    for (const result of ['succeeded', 'failed_http_error']) {
      const buckets = all
        .filter((sample) => sample.name === `${name}_bucket` && sample.labels.result === result)
        .map((sample) => ({ le: Number(sample.labels.le === '+Inf' ? Infinity : sample.labels.le), value: sample.value }))
        .sort((a, b) => a.le - b.le);
      expect(buckets.length, result).toBeGreaterThan(2);
      for (let index = 1; index < buckets.length; index++) {
        expect(buckets[index]!.value, `${result} bucket le=${buckets[index]!.le}`).toBeGreaterThanOrEqual(
          buckets[index - 1]!.value,
        );
      }
      const count = sampleValue(all, `${name}_count`, { result });
      expect(buckets.at(-1)!.le).toBe(Infinity);
      expect(buckets.at(-1)!.value, result).toBe(count);
      expect(sampleValue(all, `${name}_sum`, { result }), result).toBeGreaterThan(0);
    }
  });

  test('delivery logs carry ids', () => {
    const attemptLines = all.lines.filter(
      (line) => line.msg === 'attempt failed; retry scheduled' || line.msg === 'delivery succeeded',
    );
    expect(attemptLines.length).toBeGreaterThanOrEqual(5);
    for (const line of attemptLines) {
      for (const field of ['eventId', 'deliveryId', 'rxId', 'attempt']) {
        expect(line[field], `${line.msg}: ${field}`).toBeDefined();
      }
    }
  });

  test('1000 receivers leave no series', { timeout: 120_000 }, async () => {
    const seriesBefore = seriesCount(samples(await scrape()));
    // The receivers are inserted in one statement, because the test is about
    // metrics, and 1000 calls of POST /v1/receivers take most of a minute on
    // a 2-core machine.
    const { rows } = await env.pool.query<{ id: string }>(
      `WITH created AS (
         INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
         SELECT gen_random_uuid(), 'bulk-' || n, $1, now(), now() FROM generate_series(1, $2::int) AS n
         RETURNING id),
       secrets AS (
         INSERT INTO webhook_secret (id, rx_id, secret, time_created, time_modified)
         SELECT gen_random_uuid(), id, $3, now(), now() FROM created)
       INSERT INTO webhook_rx_subscription (rx_id, event_class, time_created)
       SELECT id, 'bulk.one', now() FROM created
       RETURNING rx_id::text AS id`,
      [ok.url(), BULK_RECEIVERS, generateSecret()],
    );
    const ids = rows.map((row) => row.id);
    expect(ids.length).toBe(BULK_RECEIVERS);
    await post('/v1/events', { event_class: 'bulk.one', data: {} });
    await waitForFinishedDeliveries(10 + BULK_RECEIVERS);

    const text = await scrape();
    expect(Buffer.byteLength(text)).toBeLessThan(2 * 1024 * 1024);
    const after = samples(text);
    expect(sampleValue(after, 'webhook_delivery_attempts_total', { result: 'succeeded' })).toBe(5 + BULK_RECEIVERS);
    expect(await attemptRowsByResult()).toEqual({ succeeded: 5 + BULK_RECEIVERS, failed_http_error: 20 });
    expect(ids.filter((id) => text.includes(id))).toEqual([]);

    // A hundred go through DELETE /v1/receivers/:id, and the rest get the
    // same soft delete in one statement. Each API call takes about 25 ms on
    // a 2-core machine, and the metrics cannot tell the two apart.
    const viaApi = ids.slice(0, 100);
    for (let start = 0; start < viaApi.length; start += 25) {
      await Promise.all(
        viaApi.slice(start, start + 25).map(async (id) => {
          const response = await fetch(`${apiUrl}/v1/receivers/${id}`, { method: 'DELETE' });
          expect(response.status).toBe(204);
        }),
      );
    }
    await env.pool.query(`UPDATE webhook_rx SET time_deleted = now() WHERE id = ANY($1::uuid[])`, [ids.slice(100)]);
    const final = await scrape();
    expect(ids.filter((id) => final.includes(id))).toEqual([]);
    const seriesAfter = seriesCount(samples(final));
    expect(Math.abs(seriesAfter - seriesBefore), `${seriesBefore} series before, ${seriesAfter} after`).toBeLessThanOrEqual(
      seriesBefore * 0.1,
    );
  });
});

describe('in this process', () => {
  test('registry is created once', () => {
    expect(processMetrics()).toBe(processMetrics());
    expect(processMetrics().registry.getSingleMetric('process_cpu_user_seconds_total')).toBeDefined();
  });

  test('retention deletions are counted', async () => {
    recordRetentionDeleted('webhook_event', 3);
    recordRetentionDeleted('webhook_event', 2);
    recordRetentionDeleted('webhook_delivery', 0);
    const text = await processMetrics().registry.metrics();
    expect(text).toMatch(/^webhook_retention_deleted_total\{table="webhook_event"\} 5$/m);
    expect(text).not.toMatch(/table="webhook_delivery"/);
  });
});
