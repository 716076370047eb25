// The signature covers the exact bytes on the wire, whatever the payload
// contains, and an attempt that fails on a keep-alive socket that the
// receiver closed is recorded and retried, never hidden.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, describe, expect, test } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { serializeEventData } from '../../shared/payload.js';
import {
  expectConsistentAttempts,
  readAttempts,
  waitForFinished,
} from '../helpers/delivery-assertions.js';
import { ReceiverHarness, type RecordedRequest } from '../helpers/receiver-harness.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';

const INPUT_WITH_BIG =
  '{ "z": 1, "a": "café ☕ 🚒 \\u2028 line", "path": "a\\/b", "big": 12345678901234567890, "ratio": 1.0, "nested": {"empty": {}, "list": []} }\n';

function verify(secret: string, request: RecordedRequest): unknown {
  return new Webhook(secret).verify(request.body.toString('utf8'), {
    'webhook-id': String(request.headers['webhook-id']),
    'webhook-timestamp': String(request.headers['webhook-timestamp']),
    'webhook-signature': String(request.headers['webhook-signature']),
  });
}

/** A string of random code points, surrogate pairs and JSON escapes included. */
function randomText(random: () => number): string {
  const pieces: string[] = [];
  const length = 1 + Math.floor(random() * 20);
  for (let index = 0; index < length; index++) {
    const kind = random();
    if (kind < 0.3) pieces.push(String.fromCodePoint(0x20 + Math.floor(random() * 0x5f)));
    else if (kind < 0.5) pieces.push(String.fromCodePoint(0x1f300 + Math.floor(random() * 0x300)));
    else if (kind < 0.7) pieces.push(String.fromCodePoint(0xa0 + Math.floor(random() * 0xd000)));
    else if (kind < 0.8) pieces.push(['"', '\\', '/', '\n', '\u2028', '\u2029', '\t'][Math.floor(random() * 7)]!);
    else pieces.push(String.fromCodePoint(0x4e00 + Math.floor(random() * 0x500)));
  }
  return pieces.join('');
}

/** A deterministic generator, so that a failing payload can be reproduced. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('signed bytes', () => {
  const fixture = useSystem();
  let harness: ReceiverHarness;

  afterAll(async () => {
    await harness?.stop();
  });

  test('rejects a rounded integer by path', async () => {
    const response = await fetch(`${fixture.system.api.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"event_class":"test.bytes","data":${INPUT_WITH_BIG}}`,
    });
    const body = await response.json();
    expect(response.status).toBe(400);
    expect(body.error.message.startsWith('data.big: ')).toBe(true);
    const { rows } = await fixture.env.pool.query('SELECT count(*)::int AS n FROM webhook_event');
    expect(rows[0].n).toBe(0);
  });

  test('rejects a BigInt by path', () => {
    let caught: unknown;
    try {
      serializeEventData({ big: 12345678901234567890n }, 262_144);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toBe('data.big');
  });

  test('delivers unicode bytes verified', async () => {
    harness = await new ReceiverHarness().start();
    const receiver = await createReceiver(fixture.system, {
      name: 'bytes',
      endpoint: harness.url(),
      subscriptions: ['test.*'],
    });
    const data = JSON.parse(INPUT_WITH_BIG.replace('12345678901234567890', '"12345678901234567890"'));
    const random = seededRandom(20261204);
    const generated = Array.from({ length: 200 }, () => ({
      [randomText(random)]: randomText(random),
      list: [randomText(random), random()],
    }));
    const eventIds = [await publishEvent(fixture.system, 'test.bytes', data)];
    for (const item of generated) eventIds.push(await publishEvent(fixture.system, 'test.bytes', item));

    for (const eventId of eventIds) {
      const delivery = await waitForFinished(fixture.env.pool, eventId, receiver.id, 30_000);
      expect(delivery.state, `event ${eventId}`).toBe('delivered');
    }
    expect(harness.requests).toHaveLength(eventIds.length);

    const expectedByEvent = new Map<string, unknown>([[eventIds[0]!, data]]);
    generated.forEach((item, index) => expectedByEvent.set(eventIds[index + 1]!, item));
    for (const request of harness.requests) {
      const payload = verify(receiver.secret, request) as { event_id: string; data: unknown };
      expect(payload.data).toEqual(expectedByEvent.get(payload.event_id));
      expect(Number(request.headers['content-length'])).toBe(request.body.length);
      expect(request.headers['content-type']).toBe('application/json');
    }
    const first = harness.requests.find(
      (request) => request.headers['x-webhook-event-id'] === eventIds[0],
    )!;
    const firstPayload = verify(receiver.secret, first) as { data: { a: string } };
    expect([...firstPayload.data.a]).toEqual([...'café ☕ 🚒 \u2028 line']);
    await expectConsistentAttempts(fixture.env.pool);
  });
});

describe('keep-alive sockets', () => {
  const fixture = useSystem({ overrides: { RETRY_SCHEDULE_MS: '200,400,800' } });
  const arrivals = new Map<string, number>();
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const id = String(request.headers['webhook-id']);
      arrivals.set(id, (arrivals.get(id) ?? 0) + 1);
      response.end('ok');
    });
  });
  // The server drops idle sockets after 100 ms, about when the next event
  // reuses them, so some writes meet a socket that is closing.
  server.keepAliveTimeout = 100;

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('closed sockets are recorded and retried', async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const receiver = await createReceiver(fixture.system, {
      name: 'keep-alive',
      endpoint: `http://127.0.0.1:${port}/hook`,
      subscriptions: ['test.*'],
    });
    const eventIds: string[] = [];
    for (let index = 0; index < 60; index++) {
      eventIds.push(await publishEvent(fixture.system, 'test.keepalive', { index }));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const eventId of eventIds) {
      const delivery = await waitForFinished(fixture.env.pool, eventId, receiver.id, 30_000);
      expect(delivery.state, `event ${eventId}`).toBe('delivered');
      const attempts = await readAttempts(fixture.env.pool, delivery.id);
      for (const attempt of attempts.slice(0, -1)) {
        expect(attempt.result, `attempt ${attempt.attempt} of ${delivery.id}`).toBe('failed_unreachable');
      }
      expect(attempts[attempts.length - 1]!.result).toBe('succeeded');
      // Every request the server saw has its attempt row: got sent no hidden retry.
      expect(arrivals.get(delivery.id) ?? 0).toBeLessThanOrEqual(attempts.length);
    }
    await expectConsistentAttempts(fixture.env.pool);
  });
});
