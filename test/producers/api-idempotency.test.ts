import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { publishEventBody } from '../../producers/api/contract/events.js';
import {
  ABANDONED_CLAIM_MS,
  IdempotencyKeys,
  IN_PROGRESS_WAIT_MS,
  requestHash,
} from '../../producers/api/idempotency.js';
import { createLogger } from '../../shared/logger.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const SHORT_TTL_MS = 1_000;

let env: TestEnv;
let system: RunningSystem;
let shortLived: RunningSystem;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, { dispatch: false, delivery: false });
  shortLived = await startSystem(env, {
    dispatch: false,
    delivery: false,
    overrides: { IDEMPOTENCY_KEY_TTL_MS: String(SHORT_TTL_MS) },
  });
});

afterAll(async () => {
  await system?.stop();
  await shortLived?.stop();
  await env?.dispose();
});

interface Published {
  status: number;
  replayed: string | null;
  body: any;
}

async function publish(
  target: RunningSystem,
  key: string | undefined,
  body: unknown,
): Promise<Published> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers['idempotency-key'] = key;
  const response = await fetch(`${target.api.url}/v1/events`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    replayed: response.headers.get('idempotent-replayed'),
    body: await response.json(),
  };
}

async function countEvents(eventClass: string): Promise<number> {
  const { rows } = await env.pool.query(
    `SELECT count(*)::int AS n FROM webhook_event WHERE event_class = $1`,
    [eventClass],
  );
  return rows[0].n;
}

async function keyRow(key: string) {
  const { rows } = await env.pool.query(
    `SELECT request_hash, event_id::text, response_status, response_body,
            time_expires > now() AS live
     FROM webhook_idempotency_key WHERE key = $1`,
    [key],
  );
  return rows[0];
}

/** Computes the hash that the server stores for a body of POST /v1/events. */
function hashOf(body: unknown): string {
  return requestHash('publishEvent', publishEventBody.parse(body));
}

describe('Idempotency-Key replay', () => {
  test('repeat replays first response', async () => {
    const key = randomUUID();
    const body = { event_class: 'idem.replay', data: { n: 1 } };
    const first = await publish(system, key, body);
    const second = await publish(system, key, body);
    expect(first.status).toBe(202);
    expect(first.replayed).toBeNull();
    expect(first.body.created).toBe(true);
    expect(second.status).toBe(202);
    expect(second.replayed).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(await countEvents('idem.replay')).toBe(1);
    const row = await keyRow(key);
    expect(row.event_id).toBe(first.body.id);
    expect(row.response_status).toBe(202);
    expect(JSON.parse(row.response_body)).toEqual(first.body);
  });

  test('reordered keys count as same body', async () => {
    const key = randomUUID();
    const first = await publish(system, key, { event_class: 'idem.order', data: { a: 1, b: 2 } });
    const second = await publish(system, key, { data: { b: 2, a: 1 }, event_class: 'idem.order' });
    expect(second.status).toBe(202);
    expect(second.replayed).toBe('true');
    expect(second.body.id).toBe(first.body.id);
    expect(await countEvents('idem.order')).toBe(1);
  });

  test('requests without key publish twice', async () => {
    const body = { event_class: 'idem.none', data: {} };
    const first = await publish(system, undefined, body);
    const second = await publish(system, undefined, body);
    expect(second.body.id).not.toBe(first.body.id);
    expect(second.replayed).toBeNull();
    expect(await countEvents('idem.none')).toBe(2);
  });

  test('keeps given event id', async () => {
    const id = randomUUID();
    const key = randomUUID();
    const first = await publish(system, key, { event_class: 'idem.given', data: {}, id });
    expect(first.body.id).toBe(id);
    expect((await keyRow(key)).event_id).toBe(id);
  });
});

describe('Idempotency-Key misuse', () => {
  test('different body gets 422', async () => {
    const key = randomUUID();
    const first = await publish(system, key, { event_class: 'idem.reused', data: { n: 1 } });
    expect(first.status).toBe(202);
    const second = await publish(system, key, { event_class: 'idem.reused', data: { n: 2 } });
    expect(second.status).toBe(422);
    expect(second.replayed).toBeNull();
    expect(second.body.error.code).toBe('idempotency_key_reused');
    expect(second.body.error.message).toBe(
      `Idempotency-Key: "${key}" was already used with a different request body; use a new key for a new request`,
    );
    expect(typeof second.body.error.request_id).toBe('string');
    expect(await countEvents('idem.reused')).toBe(1);
  });

  test('rejects invalid key without claiming', async () => {
    const key = `bad\tkey`;
    const response = await fetch(`${system.api.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ event_class: 'idem.invalid', data: {} }),
    });
    const body = await response.json();
    expect(response.status).toBe(400);
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.message).toBe(
      'Idempotency-Key: must be 1 to 255 printable ASCII characters, got character U+0009 at position 4',
    );
    expect(await countEvents('idem.invalid')).toBe(0);
    expect(await keyRow(key)).toBeUndefined();
  });

  test('accepts 255-character key', async () => {
    const key = 'k'.repeat(254) + '~';
    const response = await publish(system, key, { event_class: 'idem.long', data: {} });
    expect(response.status).toBe(202);
    expect((await keyRow(key)).response_status).toBe(202);
  });
});

describe('Idempotency-Key concurrency', () => {
  test('20 parallel requests publish once', async () => {
    const key = randomUUID();
    const body = { event_class: 'idem.parallel', data: { n: 20 } };
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => publish(system, key, body)),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(20).fill(202));
    const ids = new Set(responses.map((response) => response.body.id));
    expect(ids.size).toBe(1);
    expect(responses.filter((response) => response.replayed === null)).toHaveLength(1);
    expect(responses.filter((response) => response.replayed === 'true')).toHaveLength(19);
    expect(await countEvents('idem.parallel')).toBe(1);
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM webhook_idempotency_key WHERE key = $1`,
      [key],
    );
    expect(rows[0].n).toBe(1);
  });

  test('parallel different bodies publish once', async () => {
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        publish(system, key, { event_class: 'idem.parallel-mixed', data: { n: index } }),
      ),
    );
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 202)).toHaveLength(1);
    expect(statuses.filter((status) => status === 422)).toHaveLength(9);
    expect(await countEvents('idem.parallel-mixed')).toBe(1);
  });

  test(
    'running claim gets 409 after wait',
    async () => {
      const key = randomUUID();
      const body = { event_class: 'idem.running', data: {} };
      // A claim without a response, as a request that is still running leaves it.
      await env.pool.query(
        `INSERT INTO webhook_idempotency_key (key, request_hash, event_id, time_created, time_expires)
         VALUES ($1, $2, $3, now(), now() + interval '1 hour')`,
        [key, hashOf(body), randomUUID()],
      );
      const started = Date.now();
      const response = await publish(system, key, body);
      expect(response.status).toBe(409);
      expect(response.body.error.code).toBe('idempotency_key_in_progress');
      expect(Date.now() - started).toBeGreaterThanOrEqual(IN_PROGRESS_WAIT_MS);
      expect(await countEvents('idem.running')).toBe(0);
    },
    IN_PROGRESS_WAIT_MS + 30_000,
  );

  test('abandoned claim is taken over', async () => {
    const key = randomUUID();
    const eventId = randomUUID();
    const body = { event_class: 'idem.abandoned', data: { n: 1 } };
    await env.pool.query(
      `INSERT INTO webhook_idempotency_key (key, request_hash, event_id, time_created, time_expires)
       VALUES ($1, $2, $3, now() - make_interval(secs => $4), now() + interval '1 hour')`,
      [key, hashOf(body), eventId, ABANDONED_CLAIM_MS / 1000 + 1],
    );
    const response = await publish(system, key, body);
    expect(response.status).toBe(202);
    expect(response.replayed).toBeNull();
    // The event id chosen by the abandoned claim is published.
    expect(response.body.id).toBe(eventId);
    expect(await countEvents('idem.abandoned')).toBe(1);
    expect((await keyRow(key)).response_status).toBe(202);
  });

  test('failed request releases key', async () => {
    const id = randomUUID();
    const stored = await publish(system, undefined, { event_class: 'idem.release', data: { v: 'a' }, id });
    expect(stored.status).toBe(202);
    const key = randomUUID();
    // Same event id with other data is a conflict, which stores no response.
    const conflict = await publish(system, key, { event_class: 'idem.release', data: { v: 'b' }, id });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe('conflict');
    expect(await keyRow(key)).toBeUndefined();
    const retried = await publish(system, key, { event_class: 'idem.release', data: { v: 'a' }, id });
    expect(retried.status).toBe(202);
    expect(retried.replayed).toBeNull();
    expect(retried.body.created).toBe(false);
  });
});

describe('Idempotency-Key expiry', () => {
  test('expired key counts as new', async () => {
    const key = randomUUID();
    const first = await publish(shortLived, key, { event_class: 'idem.expiry', data: { n: 1 } });
    expect(first.status).toBe(202);
    expect((await keyRow(key)).live).toBe(true);
    await sleep(SHORT_TTL_MS + 200);
    expect((await keyRow(key)).live).toBe(false);
    // A different body is no reuse once the key has expired.
    const second = await publish(shortLived, key, { event_class: 'idem.expiry', data: { n: 2 } });
    expect(second.status).toBe(202);
    expect(second.replayed).toBeNull();
    expect(second.body.id).not.toBe(first.body.id);
    expect(await countEvents('idem.expiry')).toBe(2);
    const row = await keyRow(key);
    expect(row.live).toBe(true);
    expect(row.event_id).toBe(second.body.id);
  });

  test('expired same body publishes again', async () => {
    const key = randomUUID();
    const body = { event_class: 'idem.expiry-same', data: {} };
    const first = await publish(shortLived, key, body);
    await sleep(SHORT_TTL_MS + 200);
    const second = await publish(shortLived, key, body);
    expect(second.replayed).toBeNull();
    expect(second.body.id).not.toBe(first.body.id);
    expect(await countEvents('idem.expiry-same')).toBe(2);
  });

  test('cleanup deletes only expired keys', async () => {
    const expired = randomUUID();
    const live = randomUUID();
    await env.pool.query(
      `INSERT INTO webhook_idempotency_key (key, request_hash, event_id, response_status, response_body, time_created, time_expires)
       VALUES ($1, 'h', gen_random_uuid(), 202, '{}', now() - interval '2 days', now() - interval '1 day'),
              ($2, 'h', gen_random_uuid(), 202, '{}', now(), now() + interval '1 day')`,
      [expired, live],
    );
    const keys = new IdempotencyKeys(env.prisma, 86_400_000, createLogger('test', 'silent'));
    expect(await keys.deleteExpired()).toBeGreaterThanOrEqual(1);
    expect(await keyRow(expired)).toBeUndefined();
    expect(await keyRow(live)).toBeDefined();
  });
});
