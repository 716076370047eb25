import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  verifyWebhook,
  WebhookVerificationError,
  type WebhookHeaders,
} from 'webhook-deliverator/verify';
import { readAttempts, waitForFinished } from '../helpers/delivery-assertions.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';

// Five loopback receivers verify every delivery of 50 events with the
// helper that the package exports, each the way one kind of Node server
// hands over headers and body. Four pass the raw body and must accept
// everything. The fifth passes what Fastify's default JSON parser made,
// which the helper must reject, so its deliveries run out of attempts.

/** RETRY_SCHEDULE_MS with three delays: 4 attempts in total. */
const BUDGET = 4;
const EVENT_COUNT = 50;

/** Published as raw bytes, spaces, escapes and final newline included. */
const RAW_DATA =
  '{ "z": 1, "a": "café ☕ 🚒 \\u2028 line", "path": "a\\/b", "big": "12345678901234567890", "ratio": 1.0, "nested": {"empty": {}, "list": []} }';

interface Outcome {
  payload?: { event_id: string; data: unknown };
  code?: string;
}

/** Verifies one request, returns the status to respond with (200 or 401) and records what the helper returned. */
function check(
  outcomes: Outcome[],
  secret: () => string,
  headers: WebhookHeaders,
  body: string | Uint8Array,
): number {
  try {
    const payload = verifyWebhook<unknown>({ headers, body, secret: secret() });
    outcomes.push({ payload });
    return 200;
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    outcomes.push({ code: error.code });
    return 401;
  }
}

function readBody(request: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

function titleCase(name: string): string {
  return name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1).toLowerCase())
    .join('-');
}

interface TestReceiver {
  readonly label: string;
  readonly outcomes: Outcome[];
  secret: string;
  url: string;
  close(): Promise<void>;
}

async function listenNode(
  label: string,
  handle: (request: http.IncomingMessage, receiver: TestReceiver) => Promise<number>,
): Promise<TestReceiver> {
  const receiver: TestReceiver = { label, outcomes: [], secret: '', url: '', close: async () => {} };
  const server = http.createServer((request, response) => {
    handle(request, receiver).then(
      (status) => response.writeHead(status).end(),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  receiver.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return receiver;
}

async function listenFastify(label: string, rawBody: boolean): Promise<TestReceiver> {
  const receiver: TestReceiver = { label, outcomes: [], secret: '', url: '', close: async () => {} };
  const app: FastifyInstance = Fastify();
  if (rawBody) {
    // The setup the README documents: keep JSON bodies as the raw Buffer.
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) =>
      done(null, body),
    );
  }
  app.post('/hook', async (request, reply) => {
    const status = check(receiver.outcomes, () => receiver.secret, request.headers, request.body as Buffer);
    return reply.code(status).send();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  receiver.url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/hook`;
  receiver.close = () => app.close();
  return receiver;
}

// Generous timeouts, because 250 deliveries to receivers in this process
// share one event loop with the API and the workers, and a timed-out
// attempt would fail the check that every first attempt succeeds.
const fixture = useSystem({
  overrides: { RETRY_SCHEDULE_MS: '100,200,400', ATTEMPT_TIMEOUT_MS: '20000', CONNECT_TIMEOUT_MS: '10000' },
});
const receivers: TestReceiver[] = [];
const published = new Map<string, unknown>();

beforeAll(async () => {
  receivers.push(
    await listenNode('node http, raw Buffer', async (request, receiver) =>
      check(receiver.outcomes, () => receiver.secret, request.headers, await readBody(request)),
    ),
    await listenFastify('fastify, raw-body parser', true),
    await listenNode('WHATWG Request', async (request, receiver) => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(request.headers)) {
        for (const item of Array.isArray(value) ? value : [value ?? '']) headers.append(name, item);
      }
      const webRequest = new Request(`http://127.0.0.1${request.url}`, {
        method: request.method,
        headers,
        body: Readable.toWeb(request) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      return check(receiver.outcomes, () => receiver.secret, webRequest.headers, await webRequest.text());
    }),
    await listenNode('Title-Case rawHeaders', async (request, receiver) => {
      const headers: Record<string, string> = {};
      for (let index = 0; index < request.rawHeaders.length; index += 2) {
        headers[titleCase(request.rawHeaders[index]!)] = request.rawHeaders[index + 1]!;
      }
      expect(headers['Webhook-Signature']).toBeDefined();
      expect(headers['webhook-signature']).toBeUndefined();
      return check(receiver.outcomes, () => receiver.secret, headers, await readBody(request));
    }),
    await listenFastify('fastify, default JSON parser', false),
  );

  const { system } = fixture;
  for (const [index, receiver] of receivers.entries()) {
    const created = await createReceiver(system, {
      name: `verifier-${index + 1}`,
      endpoint: receiver.url,
      subscriptions: ['test.*'],
    });
    receiver.secret = created.secret;
  }

  const raw = await system.request(
    'POST',
    '/v1/events',
    `{"event_class": "test.f04", "data": ${RAW_DATA}}\n`,
  );
  expect(raw.status, JSON.stringify(raw.body)).toBe(202);
  published.set(raw.body.id, JSON.parse(RAW_DATA));
  for (let index = 1; index < EVENT_COUNT; index++) {
    const data = {
      index,
      text: `événement ${index} ✓ ${'🚒'.repeat(index % 3)}`,
      slash: 'a/b\\c',
      nested: { list: [index, index * 1.5, null, true], empty: {} },
    };
    published.set(await publishEvent(system, 'test.ping', data), data);
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(receivers.map((receiver) => receiver.close()));
});

describe('receiver helper on real deliveries', () => {
  test('raw-body receivers verify every event', async () => {
    const { env, system } = fixture;
    const { rows: rxRows } = await env.pool.query<{ id: string; name: string }>(
      'SELECT id::text, name FROM webhook_rx ORDER BY name',
    );
    for (const [index, receiver] of receivers.slice(0, 4).entries()) {
      const rxId = rxRows[index]!.id;
      for (const eventId of published.keys()) {
        const delivery = await waitForFinished(env.pool, eventId, rxId);
        expect(delivery.state, `${receiver.label}: event ${eventId}`).toBe('delivered');
        const attempts = await readAttempts(env.pool, delivery.id);
        expect(attempts.map((a) => [a.attempt, a.result]), receiver.label).toEqual([[1, 'succeeded']]);
      }
      expect(receiver.outcomes.filter((outcome) => outcome.code !== undefined), receiver.label).toEqual([]);
      const byEvent = new Map(receiver.outcomes.map((outcome) => [outcome.payload!.event_id, outcome.payload!.data]));
      expect(byEvent.size, receiver.label).toBe(EVENT_COUNT);
      for (const [eventId, data] of published) {
        expect(byEvent.get(eventId), `${receiver.label}: data of event ${eventId}`).toEqual(data);
      }
    }
    const rawPublished = [...published.values()][0];
    expect(rawPublished).toMatchObject({ a: 'café ☕ 🚒 \u2028 line', path: 'a/b' });
    expect(system.config.retryScheduleMs).toHaveLength(BUDGET - 1);
  });

  test('parsed-body receiver rejects every request', async () => {
    const { env } = fixture;
    const receiver = receivers[4]!;
    const { rows } = await env.pool.query<{ id: string }>(
      "SELECT id::text FROM webhook_rx WHERE name = 'verifier-5'",
    );
    const rxId = rows[0]!.id;
    for (const eventId of published.keys()) {
      const delivery = await waitForFinished(env.pool, eventId, rxId);
      expect(delivery.state).toBe('failed');
      const attempts = await readAttempts(env.pool, delivery.id);
      expect(attempts.map((a) => [a.attempt, a.result, a.response_status])).toEqual(
        Array.from({ length: BUDGET }, (_, index) => [index + 1, 'failed_http_error', 401]),
      );
    }
    expect(receiver.outcomes).toHaveLength(EVENT_COUNT * BUDGET);
    expect(new Set(receiver.outcomes.map((outcome) => outcome.code))).toEqual(new Set(['raw_body_required']));
  });
});
