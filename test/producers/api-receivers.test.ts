import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const SECRET_FORM = /^whsec_[A-Za-z0-9+/]+={0,2}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let env: TestEnv;
let system: RunningSystem;
let harness: ReceiverHarness;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, { dispatch: false, delivery: false });
  harness = await new ReceiverHarness().start();
});

afterAll(async () => {
  await system?.stop();
  await harness?.stop();
  await env?.dispose();
});

async function createReceiver(name: string, fields: Record<string, unknown> = {}) {
  const response = await system.request('POST', '/v1/receivers', {
    name,
    endpoint: harness.url(),
    subscriptions: ['orders.*'],
    ...fields,
  });
  expect(response.status).toBe(201);
  return response.body;
}

async function receiverRow(id: string) {
  const { rows } = await env.pool.query(
    `SELECT name, time_deleted, secret_gen::int, subscription_gen::int
     FROM webhook_rx WHERE id = $1`,
    [id],
  );
  return rows[0];
}

describe('receiver create and read', () => {
  test('create returns secret once', async () => {
    const created = await createReceiver('create-once', {
      description: 'orders service',
      subscriptions: ['orders.created', 'orders.*', 'orders.created'],
    });
    expect(created.name).toBe('create-once');
    expect(created.description).toBe('orders service');
    expect(created.endpoint).toBe(harness.url());
    expect(created.subscriptions).toEqual(['orders.*', 'orders.created']);
    expect(created.secret).toMatch(SECRET_FORM);
    expect(Buffer.from(created.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    expect(created.secrets).toHaveLength(1);
    expect(created.secrets[0].time_created).toMatch(ISO_UTC);
    expect(created.time_created).toMatch(ISO_UTC);

    const { rows } = await env.pool.query(
      `SELECT id::text, secret FROM webhook_secret WHERE rx_id = $1`,
      [created.id],
    );
    expect(rows).toEqual([{ id: created.secrets[0].id, secret: created.secret }]);
  });

  test('GET never returns secret values', async () => {
    const created = await createReceiver('no-secret-leak');
    for (const path of [
      `/v1/receivers/${created.id}`,
      '/v1/receivers/no-secret-leak',
      `/v1/receivers/${created.id}/secrets`,
      '/v1/receivers?limit=1000',
    ]) {
      const response = await fetch(`${system.api.url}${path}`);
      const text = await response.text();
      expect(response.status).toBe(200);
      expect(text).not.toContain(created.secret);
      expect(text).not.toContain(created.secret.slice('whsec_'.length));
    }
    const fetched = await system.request('GET', `/v1/receivers/${created.id}`);
    expect(fetched.body.secret).toBeUndefined();
    expect(fetched.body.secrets).toEqual(created.secrets);
  });

  test('GET by id and name agree', async () => {
    const created = await createReceiver('by-name');
    const byId = await system.request('GET', `/v1/receivers/${created.id}`);
    const byName = await system.request('GET', '/v1/receivers/by-name');
    const byUpperId = await system.request('GET', `/v1/receivers/${created.id.toUpperCase()}`);
    expect(byId.status).toBe(200);
    expect(byName.body).toEqual(byId.body);
    expect(byUpperId.body).toEqual(byId.body);
    const { secret: _secret, ...view } = created;
    expect(byId.body).toEqual(view);
  });

  test('create keeps given secret', async () => {
    const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
    const created = await createReceiver('given-secret', { secret });
    expect(created.secret).toBe(secret);
  });
});

describe('receiver list', () => {
  test('pages through live receivers', async () => {
    for (let index = 0; index < 5; index += 1) {
      await createReceiver(`page-${index}`);
    }
    const deleted = await createReceiver('page-deleted');
    expect((await system.request('DELETE', `/v1/receivers/${deleted.id}`)).status).toBe(204);
    const { rows } = await env.pool.query(
      `SELECT id::text FROM webhook_rx WHERE time_deleted IS NULL ORDER BY id`,
    );
    const expected = rows.map((row) => row.id);

    const seen: string[] = [];
    const pageSizes: number[] = [];
    let after: string | null = null;
    do {
      const query: string = after === null ? 'limit=2' : `limit=2&after=${after}`;
      const page = await system.request('GET', `/v1/receivers?${query}`);
      expect(page.status).toBe(200);
      pageSizes.push(page.body.receivers.length);
      seen.push(...page.body.receivers.map((receiver: { id: string }) => receiver.id));
      after = page.body.next_after;
    } while (after !== null);

    expect(seen).toEqual(expected);
    expect(seen).not.toContain(deleted.id);
    expect(pageSizes.slice(0, -1).every((size) => size === 2)).toBe(true);
  });

  test('full last page ends list', async () => {
    const all = await system.request('GET', '/v1/receivers?limit=1000');
    const count = all.body.receivers.length;
    expect(count).toBeGreaterThan(0);
    expect(all.body.next_after).toBeNull();
    const exact = await system.request('GET', `/v1/receivers?limit=${count}`);
    expect(exact.body.receivers).toHaveLength(count);
    expect(exact.body.next_after).toBeNull();
    const short = await system.request('GET', `/v1/receivers?limit=${count - 1 || 1}`);
    expect(short.body.next_after).toBe(short.body.receivers.at(-1).id);
  });
});

describe('receiver update', () => {
  test('PATCH replaces subscriptions', async () => {
    const created = await createReceiver('patch-subs', {
      subscriptions: ['orders.created', 'billing.*'],
    });
    expect((await receiverRow(created.id)).subscription_gen).toBe(0);

    const patched = await system.request('PATCH', `/v1/receivers/${created.id}`, {
      subscriptions: ['github.**', 'orders.created'],
    });
    expect(patched.status).toBe(200);
    expect(patched.body.subscriptions).toEqual(['github.**', 'orders.created']);
    expect(Date.parse(patched.body.time_modified)).toBeGreaterThan(
      Date.parse(created.time_modified),
    );

    const { rows } = await env.pool.query(
      `SELECT event_class, is_glob, event_class_regex FROM webhook_rx_subscription
       WHERE rx_id = $1 ORDER BY event_class`,
      [created.id],
    );
    expect(rows).toEqual([
      {
        event_class: 'github.**',
        is_glob: true,
        event_class_regex: '^github\\.[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$',
      },
      { event_class: 'orders.created', is_glob: false, event_class_regex: null },
    ]);
    expect((await receiverRow(created.id)).subscription_gen).toBe(1);
  });

  test('PATCH without subscriptions keeps gen', async () => {
    const created = await createReceiver('patch-description');
    const patched = await system.request('PATCH', `/v1/receivers/${created.id}`, {
      description: 'changed',
      endpoint: harness.url('/other'),
    });
    expect(patched.status).toBe(200);
    expect(patched.body.description).toBe('changed');
    expect(patched.body.endpoint).toBe(harness.url('/other'));
    expect(patched.body.subscriptions).toEqual(['orders.*']);
    expect((await receiverRow(created.id)).subscription_gen).toBe(0);
  });

  test('PATCH with empty list clears subscriptions', async () => {
    const created = await createReceiver('patch-empty');
    const patched = await system.request('PATCH', `/v1/receivers/${created.id}`, {
      subscriptions: [],
    });
    expect(patched.body.subscriptions).toEqual([]);
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM webhook_rx_subscription WHERE rx_id = $1`,
      [created.id],
    );
    expect(rows[0].n).toBe(0);
    expect((await receiverRow(created.id)).subscription_gen).toBe(1);
  });

  test('PATCH renames receiver', async () => {
    const created = await createReceiver('old-name');
    const patched = await system.request('PATCH', '/v1/receivers/old-name', {
      name: 'new-name',
    });
    expect(patched.body.name).toBe('new-name');
    expect((await system.request('GET', '/v1/receivers/old-name')).status).toBe(404);
    expect((await system.request('GET', '/v1/receivers/new-name')).body.id).toBe(created.id);
  });
});

describe('receiver delete', () => {
  test('DELETE keeps row with time_deleted', async () => {
    const created = await createReceiver('soft-deleted');
    const response = await system.request('DELETE', `/v1/receivers/${created.id}`);
    expect(response.status).toBe(204);
    expect(response.body).toBeNull();

    const row = await receiverRow(created.id);
    expect(row.name).toBe('soft-deleted');
    expect(row.time_deleted).toBeInstanceOf(Date);
    const secrets = await env.pool.query(
      `SELECT time_deleted FROM webhook_secret WHERE rx_id = $1`,
      [created.id],
    );
    expect(secrets.rows).toHaveLength(1);
    expect(secrets.rows[0].time_deleted).toBeInstanceOf(Date);

    expect((await system.request('GET', `/v1/receivers/${created.id}`)).status).toBe(404);
    expect((await system.request('DELETE', `/v1/receivers/${created.id}`)).status).toBe(404);
  });

  test('deleted name can be reused', async () => {
    const first = await createReceiver('reused-name');
    expect((await system.request('DELETE', '/v1/receivers/reused-name')).status).toBe(204);
    const second = await createReceiver('reused-name');
    expect(second.id).not.toBe(first.id);
    const byName = await system.request('GET', '/v1/receivers/reused-name');
    expect(byName.body.id).toBe(second.id);
    const { rows } = await env.pool.query(
      `SELECT id::text, time_deleted IS NULL AS live FROM webhook_rx
       WHERE name = 'reused-name' ORDER BY time_created`,
    );
    expect(rows).toEqual([
      { id: first.id, live: false },
      { id: second.id, live: true },
    ]);
  });
});

describe('receiver secrets', () => {
  test('rotates secrets add then delete', async () => {
    const created = await createReceiver('rotating');
    const original = created.secrets[0].id;

    const generated = await system.request('POST', `/v1/receivers/${created.id}/secrets`);
    expect(generated.status).toBe(201);
    expect(generated.body.secret).toMatch(SECRET_FORM);
    expect(generated.body.secret).not.toBe(created.secret);
    expect(generated.body.time_created).toMatch(ISO_UTC);

    const given = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    const added = await system.request('POST', `/v1/receivers/${created.id}/secrets`, {
      secret: given,
    });
    expect(added.status).toBe(201);
    expect(added.body.secret).toBe(given);

    const listed = await system.request('GET', `/v1/receivers/${created.id}/secrets`);
    expect(listed.status).toBe(200);
    expect(listed.body.secrets.map((s: { id: string }) => s.id)).toEqual([
      original,
      generated.body.id,
      added.body.id,
    ]);
    expect(JSON.stringify(listed.body)).not.toContain('whsec_');
    expect((await receiverRow(created.id)).secret_gen).toBe(2);

    const removed = await system.request(
      'DELETE',
      `/v1/receivers/${created.id}/secrets/${original}`,
    );
    expect(removed.status).toBe(204);
    const after = await system.request('GET', `/v1/receivers/${created.id}/secrets`);
    expect(after.body.secrets.map((s: { id: string }) => s.id)).toEqual([
      generated.body.id,
      added.body.id,
    ]);
    expect((await receiverRow(created.id)).secret_gen).toBe(3);

    const { rows } = await env.pool.query(
      `SELECT time_deleted FROM webhook_secret WHERE id = $1`,
      [original],
    );
    expect(rows[0].time_deleted).toBeInstanceOf(Date);
  });

  test('deleted secret cannot be deleted again', async () => {
    const created = await createReceiver('delete-twice');
    const added = await system.request('POST', `/v1/receivers/${created.id}/secrets`, {});
    const path = `/v1/receivers/${created.id}/secrets/${added.body.id}`;
    expect((await system.request('DELETE', path)).status).toBe(204);
    const again = await system.request('DELETE', path);
    expect(again.status).toBe(404);
    expect(again.body.error.message).toBe(`secret "${added.body.id}" was not found`);
  });

  test('concurrent deletes keep one secret', async () => {
    const created = await createReceiver('concurrent-delete');
    const added = await system.request('POST', `/v1/receivers/${created.id}/secrets`);
    const statuses = await Promise.all(
      [created.secrets[0].id, added.body.id].map(async (secretId) => {
        const response = await system.request(
          'DELETE',
          `/v1/receivers/${created.id}/secrets/${secretId}`,
        );
        return response.status;
      }),
    );
    expect(statuses.sort()).toEqual([204, 409]);
    const listed = await system.request('GET', `/v1/receivers/${created.id}/secrets`);
    expect(listed.body.secrets).toHaveLength(1);
  });
});
