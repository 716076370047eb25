// OpenTelemetry traces across processes: the API's enqueue, the dispatch
// worker and the delivery worker's HTTP attempt share one trace, exported
// over OTLP/HTTP to a loopback collector. Without an endpoint, jobs carry
// no trace context.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { queueKeyPrefix, DISPATCH_QUEUE } from '../../shared/queues.js';
import { OtlpCollector } from '../helpers/otlp-collector.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { RoleProcess, roleEnvironment } from '../helpers/role-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let receiver: ReceiverHarness;

beforeAll(async () => {
  env = await createTestEnv();
  receiver = await new ReceiverHarness().start();
});

afterAll(async () => {
  await receiver?.stop();
  await env?.dispose();
});

function settings() {
  return { databaseUrl: env.databaseUrl, redisUrl: env.redisUrl, queuePrefix: env.queuePrefix };
}

async function post(apiUrl: string, path: string, body: unknown): Promise<any> {
  const response = await fetch(`${apiUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const parsed = await response.json();
  expect(response.status, JSON.stringify(parsed)).toBeLessThan(300);
  return parsed;
}

/** Reads the options of an event's dispatch job from Redis. */
async function dispatchJobOptions(eventId: string) {
  const connection = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(DISPATCH_QUEUE, { connection, prefix: queueKeyPrefix(env.config(), DISPATCH_QUEUE) });
  try {
    return (await queue.getJob(eventId))?.opts;
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

describe('with an OTLP endpoint', () => {
  let collector: OtlpCollector;
  const processes: RoleProcess[] = [];

  beforeAll(async () => {
    collector = await new OtlpCollector().start();
  });

  afterAll(async () => {
    for (const role of processes) await role.stop();
    await collector?.stop();
  });

  test('one trace spans api, dispatch and delivery', { timeout: 90_000 }, async () => {
    const tracing = { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url };
    const api = new RoleProcess('api', roleEnvironment(settings(), tracing));
    const dispatch = new RoleProcess('dispatch', roleEnvironment(settings(), tracing));
    const delivery = new RoleProcess('delivery', roleEnvironment(settings(), tracing));
    processes.push(api, dispatch, delivery);
    const apiUrl = (await api.started()).url as string;
    await Promise.all([dispatch.started(), delivery.started()]);
    for (const role of processes) {
      expect(role.linesWithMessage('tracing started').length, role.role).toBe(1);
    }

    await post(apiUrl, '/v1/receivers', { name: 'traced', endpoint: receiver.url(), subscriptions: ['trace.*'] });
    const eventId = (await post(apiUrl, '/v1/events', { event_class: 'trace.one', data: {} })).id as string;
    await waitFor(() => receiver.requests.some((request) => request.headers['x-webhook-event-id'] === eventId), {
      message: 'the traced event to reach its receiver',
    });
    // Stopping flushes the spans that each process still buffers.
    for (const role of processes) await role.stop();

    const attempt = collector.spans.find(
      (span) => span.name === 'webhook attempt' && span.attributes['webhook.event_id'] === eventId,
    );
    expect(attempt, 'the attempt span').toBeDefined();
    expect(attempt!.service).toBe('webhook-delivery');
    expect(attempt!.attributes['webhook.result']).toBe('succeeded');
    expect(attempt!.attributes['http.response.status_code']).toBe(200);
    expect(attempt!.attributes['webhook.attempt']).toBe(1);
    expect(attempt!.attributes['server.address']).toBe('127.0.0.1');

    const trace = collector.spans.filter((span) => span.traceId === attempt!.traceId);
    const services = new Set(trace.map((span) => span.service));
    expect([...services].sort()).toEqual(['webhook-api', 'webhook-delivery', 'webhook-dispatch']);
    // Every span but the root has its parent in the same trace.
    const ids = new Set(trace.map((span) => span.spanId));
    const roots = trace.filter((span) => span.parentSpanId === '' || !ids.has(span.parentSpanId));
    expect(roots.map((span) => `${span.service} ${span.name}`)).toHaveLength(1);
    expect(roots[0]!.service).toBe('webhook-api');
    expect(collector.rejected).toBe(0);
  });
});

describe('without an OTLP endpoint', () => {
  let api: RoleProcess;

  afterAll(async () => {
    await api?.stop();
  });

  test('jobs carry no trace context', async () => {
    api = new RoleProcess('api', roleEnvironment(settings()));
    const apiUrl = (await api.started()).url as string;
    expect(api.linesWithMessage('tracing started')).toEqual([]);
    // No dispatch worker runs, so the job stays in Redis to be read.
    const eventId = (await post(apiUrl, '/v1/events', { event_class: 'untraced.one', data: {} })).id as string;
    const options = await dispatchJobOptions(eventId);
    expect(options).toBeDefined();
    expect(options!.telemetry).toBeUndefined();
  });
});
