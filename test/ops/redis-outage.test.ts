// Health, metrics and Bull Board keep responding within 2 s while Redis is
// stopped and while it is paused, in an API process and in a delivery
// worker process, and report the outage. Uses a private redis-server; the
// shared Redis is never stopped or paused.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { establishedConnections, plainRequest, type TimedResponse } from '../helpers/plain-http.js';
import { PrivateRedis, redisServerUnavailable } from '../helpers/private-redis.js';
import { RoleProcess, roleEnvironment } from '../helpers/role-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { unusedLoopbackPort } from '../helpers/unused-port.js';

const TOKEN = 'outage-test-token-0123456789';
const RESPONSE_LIMIT_MS = 2_000;
const RECOVERY_LIMIT_MS = 5_000;
const unavailable = redisServerUnavailable();
if (unavailable !== null) console.warn(`Redis outage test skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)('Redis outage', () => {
  let env: TestEnv;
  let redis: PrivateRedis;
  let api: RoleProcess;
  let delivery: RoleProcess;
  let apiUrl: string;
  let apiPort: number;
  let workerHealthUrl: string;

  beforeAll(async () => {
    env = await createTestEnv();
    redis = await PrivateRedis.start();
    const settings = { databaseUrl: env.databaseUrl, redisUrl: redis.url, queuePrefix: env.queuePrefix };
    api = new RoleProcess('api', roleEnvironment(settings, { API_TOKEN: TOKEN, METRICS_REFRESH_MS: '300' }));
    delivery = new RoleProcess(
      'delivery',
      roleEnvironment(settings, {
        HEALTH_PORT: String(await unusedLoopbackPort()),
        METRICS_REFRESH_MS: '300',
      }),
    );
    apiUrl = (await api.started()).url as string;
    apiPort = Number(new URL(apiUrl).port);
    await delivery.started();
    workerHealthUrl = (await delivery.waitForLine((line) => line.msg === 'health server listening')).url as string;
    await expectHealthy();
  });

  afterAll(async () => {
    await api?.stop();
    await delivery?.stop();
    await redis?.kill();
    await env?.dispose();
  });

  /** GETs a URL and fails unless the whole response arrives within RESPONSE_LIMIT_MS. */
  async function get(url: string, headers: Record<string, string> = {}): Promise<TimedResponse> {
    const response = await plainRequest(url, { headers, timeoutMs: RESPONSE_LIMIT_MS + 3_000 });
    expect(response.elapsedMs, `GET ${url} took ${Math.round(response.elapsedMs)} ms`).toBeLessThan(RESPONSE_LIMIT_MS);
    return response;
  }

  function gauge(metrics: string, name: string): number | undefined {
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics);
    return match === null ? undefined : Number(match[1]);
  }

  async function expectHealthy(): Promise<void> {
    for (const base of [apiUrl, workerHealthUrl]) {
      await waitFor(async () => (await get(`${base}/health`)).status === 200, {
        timeoutMs: RECOVERY_LIMIT_MS,
        message: `${base}/health to return 200`,
      });
      await waitFor(async () => gauge((await get(`${base}/metrics`)).text, 'webhook_redis_up') === 1, {
        timeoutMs: RECOVERY_LIMIT_MS,
        message: `${base}/metrics to show webhook_redis_up 1`,
      });
    }
    // The API process reports queue depths; they are fresh again.
    await waitFor(async () => {
      const metrics = (await get(`${apiUrl}/metrics`)).text;
      return metrics.includes('webhook_queue_jobs{') && (gauge(metrics, 'webhook_queue_stats_age_seconds') ?? 99) < 1;
    }, {
      timeoutMs: RECOVERY_LIMIT_MS,
      message: 'queue depths to be read again',
    });
  }

  /** Checks every endpoint of both processes while Redis does not respond. */
  async function expectDegraded(): Promise<void> {
    for (const base of [apiUrl, workerHealthUrl]) {
      const health = await get(`${base}/health`);
      expect(health.status, `${base}/health`).toBe(503);
      expect(JSON.parse(health.text)).toEqual({ postgres: 'ok', redis: 'down' });
      expect((await get(`${base}/livez`)).status, `${base}/livez`).toBe(200);
      const metrics = await waitFor(async () => {
        const response = await get(`${base}/metrics`);
        expect(response.status).toBe(200);
        return gauge(response.text, 'webhook_redis_up') === 0 ? response.text : undefined;
      }, { timeoutMs: RECOVERY_LIMIT_MS, message: `${base}/metrics to show webhook_redis_up 0` });
      expect(gauge(metrics, 'process_cpu_user_seconds_total'), base).toBeGreaterThan(0);
      expect(gauge(metrics, 'webhook_queue_stats_age_seconds'), base).toBeGreaterThan(0);
    }

    const board = await get(`${apiUrl}/admin/queues/api/queues`, { authorization: `Bearer ${TOKEN}` });
    expect(board.status).toBe(503);
    expect(JSON.parse(board.text).error).toBe('redis_unavailable');

    const idle = establishedConnections(apiPort);
    const answers = await Promise.all(Array.from({ length: 50 }, () => get(`${apiUrl}/health`)));
    expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 50 }, () => 503));
    await waitFor(() => establishedConnections(apiPort) <= idle, {
      timeoutMs: 5_000,
      message: `connections to the API to fall back to ${idle}`,
    });
  }

  test('stopped Redis', async () => {
    await redis.shutdownNoSave();
    await expectDegraded();
    // The queue gauges keep their last values and grow stale.
    const before = (await get(`${apiUrl}/metrics`)).text;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = (await get(`${apiUrl}/metrics`)).text;
    expect(after).toMatch(/^webhook_queue_jobs\{queue="dispatch",state="waiting"\} \d+$/m);
    expect(gauge(after, 'webhook_queue_stats_age_seconds')).toBeGreaterThanOrEqual(
      gauge(before, 'webhook_queue_stats_age_seconds')! + 0.9,
    );

    await redis.restart();
    await expectHealthy();
  });

  test('paused Redis', async () => {
    const pauseMs = 8_000;
    await redis.pauseAll(pauseMs);
    const pausedAt = Date.now();
    await expectDegraded();
    const remaining = pausedAt + pauseMs - Date.now();
    expect(remaining, 'the checks ran while Redis was paused').toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, remaining));
    await expectHealthy();
  });
});
