import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, expectTypeOf, test } from 'vitest';
import { ApiError, createClient, type Client } from 'webhook-deliverator/client';
import { apiRoutes, type ApiRoute } from '../../producers/api/contract/index.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { unusedLoopbackPort } from '../helpers/unused-port.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const TOKEN = 'client-test-token-0123456789';

let env: TestEnv;
let system: RunningSystem;
let harness: ReceiverHarness;
let client: Client;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, { overrides: { API_TOKEN: TOKEN } });
  harness = await new ReceiverHarness().start();
  client = createClient({ baseUrl: system.api.url, token: TOKEN, validateResponses: true });
});

afterAll(async () => {
  await system?.stop();
  await harness?.stop();
  await env?.dispose();
});

/** State that later calls read from earlier ones. */
const state = {
  receiverId: '',
  secretId: '',
  eventId: '',
  deliveryId: '',
  resendId: '',
};

const RECEIVER = 'client-receiver';

/** Resolves to the error that `promise` rejects with; fails when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Like `rejection`, and checks that the error is an ApiError. */
async function apiRejection(promise: Promise<unknown>): Promise<ApiError> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

type OperationId = ApiRoute['operationId'];

/**
 * One call of every route, in an order where each finds what it needs. The
 * `satisfies` clause makes `tsc` fail when a declared route has no call here.
 */
const CALLS = {
  getOpenApiDocument: async () => {
    const document = await client.getOpenApiDocument();
    expect(document.openapi).toBe('3.1.0');
  },
  createReceiver: async () => {
    const created = await client.createReceiver({
      body: { name: RECEIVER, endpoint: harness.url(), subscriptions: ['client.*'] },
    });
    expect(created.name).toBe(RECEIVER);
    expect(created.secret).toMatch(/^whsec_/);
    state.receiverId = created.id;
  },
  listReceivers: async () => {
    const first = await client.listReceivers({ query: { limit: 1 } });
    expect(first.receivers).toHaveLength(1);
    const all = await client.listReceivers();
    expect(all.receivers.map((receiver) => receiver.id)).toContain(state.receiverId);
    expect(all.next_after).toBeNull();
  },
  getReceiver: async () => {
    const byName = await client.getReceiver({ params: { id: RECEIVER } });
    expect(byName.id).toBe(state.receiverId);
  },
  updateReceiver: async () => {
    const updated = await client.updateReceiver({
      params: { id: state.receiverId },
      body: { description: 'changed by the client' },
    });
    expect(updated.description).toBe('changed by the client');
  },
  addReceiverSecret: async () => {
    const secret = await client.addReceiverSecret({ params: { id: RECEIVER } });
    expect(secret.secret).toMatch(/^whsec_/);
    state.secretId = secret.id;
  },
  listReceiverSecrets: async () => {
    const listed = await client.listReceiverSecrets({ params: { id: RECEIVER } });
    expect(listed.secrets.map((secret) => secret.id)).toContain(state.secretId);
  },
  deleteReceiverSecret: async () => {
    const result = await client.deleteReceiverSecret({
      params: { id: RECEIVER, secret_id: state.secretId },
    });
    expect(result).toBeUndefined();
  },
  disableReceiver: async () => {
    const disabled = await client.disableReceiver({
      params: { id: RECEIVER },
      body: { reason: 'client test' },
    });
    expect(disabled.time_disabled).not.toBeNull();
  },
  enableReceiver: async () => {
    const enabled = await client.enableReceiver({ params: { id: RECEIVER } });
    expect(enabled.time_disabled).toBeNull();
  },
  testPayloadFilter: async () => {
    const result = await client.testPayloadFilter({
      body: { filter: { path: 'action', eq: 'opened' }, data: { action: 'opened' } },
    });
    expect(result.matches).toBe(true);
  },
  publishEvent: async () => {
    const key = randomUUID();
    const body = { event_class: 'client.created', data: { n: 1 } };
    const published = await client.publishEvent({ body, headers: { 'Idempotency-Key': key } });
    expect(published.created).toBe(true);
    state.eventId = published.id;
    const again = await client.send('publishEvent', { body, headers: { 'Idempotency-Key': key } });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(published);
  },
  getEvent: async () => {
    const event = await client.getEvent({ params: { id: state.eventId } });
    expect(event.data).toEqual({ n: 1 });
  },
  listEventDeliveries: async () => {
    const delivered = await waitFor(async () => {
      const listed = await client.listEventDeliveries({ params: { id: state.eventId } });
      return listed.deliveries[0]?.state === 'delivered' ? listed.deliveries[0] : undefined;
    }, { message: 'the client event to be delivered' });
    expect(delivered.rx_id).toBe(state.receiverId);
    state.deliveryId = delivered.id;
  },
  listDeliveries: async () => {
    const listed = await client.listDeliveries({ query: { receiver: RECEIVER, limit: 10 } });
    expect(listed.deliveries.map((delivery) => delivery.id)).toContain(state.deliveryId);
  },
  getDelivery: async () => {
    const delivery = await client.getDelivery({ params: { id: state.deliveryId } });
    expect(delivery.attempt_log.length).toBeGreaterThan(0);
  },
  resendDelivery: async () => {
    const resent = await client.resendDelivery({ params: { id: state.deliveryId } });
    expect(resent.triggered_by).toBe('resend');
  },
  resendEvent: async () => {
    const resent = await client.resendEvent({
      params: { id: state.eventId },
      body: { receiver: RECEIVER },
    });
    expect(resent.event_id).toBe(state.eventId);
  },
  createResend: async () => {
    const batch = await client.createResend({ body: { receiver: RECEIVER } });
    expect(batch.rx_id).toBe(state.receiverId);
    state.resendId = batch.id;
  },
  getResend: async () => {
    const batch = await client.getResend({ params: { id: state.resendId } });
    expect(batch.id).toBe(state.resendId);
  },
  probeReceiver: async () => {
    const result = await client.probeReceiver({ params: { id: RECEIVER } });
    expect(result.probe.triggered_by).toBe('probe');
  },
  deleteReceiver: async () => {
    const result = await client.deleteReceiver({ params: { id: RECEIVER } });
    expect(result).toBeUndefined();
  },
} satisfies Record<OperationId, () => Promise<void>>;

describe('client against live API', () => {
  test('has a method per route', () => {
    const missing = apiRoutes
      .map((route) => route.operationId)
      .filter((id) => typeof (client as unknown as Record<string, unknown>)[id] !== 'function');
    expect(missing).toEqual([]);
  });

  test('calls cover every route', () => {
    expect(Object.keys(CALLS).sort()).toEqual(apiRoutes.map((route) => route.operationId).sort());
  });

  test.sequential.each(Object.entries(CALLS))('%s', async (_operationId, call) => {
    await call();
  });
});

describe('ApiError', () => {
  test('carries status, code and request id', async () => {
    const id = randomUUID();
    const apiError = await apiRejection(client.getEvent({ params: { id } }));
    expect(apiError.status).toBe(404);
    expect(apiError.code).toBe('not_found');
    expect(apiError.message).toBe(`event "${id}" was not found`);
    expect(apiError.requestId).toMatch(/\S/);
    expect(apiError.operationId).toBe('getEvent');
  });

  test('carries validation message', async () => {
    const error = await apiRejection(client.publishEvent({ body: { event_class: 'bad class', data: {} } }));
    expect(error.status).toBe(400);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/^event_class: /);
  });

  test('carries 401 without token', async () => {
    const anonymous = createClient({ baseUrl: system.api.url });
    const error = await apiRejection(anonymous.listReceivers());
    expect(error.status).toBe(401);
    expect(error.code).toBe('unauthorized');
  });

  test('reused key carries 422', async () => {
    const key = randomUUID();
    await client.publishEvent({
      body: { event_class: 'client.reused', data: 1 },
      headers: { 'Idempotency-Key': key },
    });
    const error = await apiRejection(
      client.publishEvent({ body: { event_class: 'client.reused', data: 2 }, headers: { 'Idempotency-Key': key } }),
    );
    expect(error.status).toBe(422);
    expect(error.code).toBe('idempotency_key_reused');
  });

  test('names unreachable server', async () => {
    const port = await unusedLoopbackPort();
    const offline = createClient({ baseUrl: `http://127.0.0.1:${port}` });
    const error = await rejection(offline.listReceivers());
    expect(error).not.toBeInstanceOf(ApiError);
    expect(error.message).toMatch(
      new RegExp(`^listReceivers: GET http://127\\.0\\.0\\.1:${port}/v1/receivers failed: `),
    );
  });
});

describe('client types', () => {
  test('infer inputs and outputs', () => {
    expectTypeOf(client.getEvent).parameter(0).toEqualTypeOf<{ params: { id: string } }>();
    expectTypeOf<Awaited<ReturnType<Client['getEvent']>>>().toHaveProperty('event_class').toBeString();
    expectTypeOf<Awaited<ReturnType<Client['deleteReceiver']>>>().toBeVoid();
    expectTypeOf<Awaited<ReturnType<Client['listReceivers']>>['next_after']>().toEqualTypeOf<string | null>();
    // Routes without a required part take no argument.
    expectTypeOf(client.listReceivers).toBeCallableWith();
    // @ts-expect-error: params are required for getReceiver
    void (() => client.getReceiver());
  });
});
