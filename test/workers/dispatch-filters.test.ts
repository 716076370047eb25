import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ReceiverService } from '../../producers/receivers.js';
import type { SubscriptionInput } from '../../producers/subscription-input.js';
import { createLogger } from '../../shared/logger.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import { openQueues, workerConnection, type Queues, type RedisClient } from '../../shared/queues.js';
import { dispatchEvent } from '../../workers/dispatch/dispatch-event.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let harness: ReceiverHarness;
let connection: RedisClient;
let queues: Queues;
let receivers: ReceiverService;

beforeAll(async () => {
  env = await createTestEnv();
  // No delivery worker runs in the dispatch tests, so the harness only
  // gets requests in the pipeline test.
  harness = await new ReceiverHarness().start();
  connection = workerConnection(env.config());
  queues = openQueues(connection, env.config());
  receivers = new ReceiverService(env.prisma, new NetworkGuard(['127.0.0.0/8']));
});

afterAll(async () => {
  await queues?.dispatch.close();
  await queues?.delivery.close();
  await connection?.quit();
  await harness?.stop();
  await env?.dispose();
});

function dispatch(eventId: string) {
  return dispatchEvent(
    { pool: env.pool, deliveryQueues: queues.delivery, logger: createLogger('test', 'silent') },
    eventId,
  );
}

/** Stores an event the way the publisher does: its data as JSON text. */
async function insertEvent(eventClass: string, data: unknown): Promise<string> {
  const id = randomUUID();
  await env.pool.query(
    `INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
     VALUES ($1, $2, $3, now(), now())`,
    [id, eventClass, JSON.stringify(data)],
  );
  return id;
}

async function createReceiver(name: string, subscriptions: (string | SubscriptionInput)[]) {
  const created = await receivers.create({ name, endpoint: harness.url(), subscriptions });
  return created.receiver.id;
}

/** Names of the receivers that got a delivery of the event, sorted. */
async function recipientsOf(eventId: string): Promise<string[]> {
  const { rows } = await env.pool.query(
    `SELECT r.name FROM webhook_delivery d JOIN webhook_rx r ON r.id = d.rx_id
     WHERE d.event_id = $1 ORDER BY r.name`,
    [eventId],
  );
  return rows.map((row) => row.name);
}

async function dispatchTo(eventClass: string, data: unknown): Promise<string[]> {
  const eventId = await insertEvent(eventClass, data);
  const outcome = await dispatch(eventId);
  expect(outcome.kind).toBe('dispatched');
  const recipients = await recipientsOf(eventId);
  expect(outcome).toMatchObject({ numDispatched: recipients.length });
  return recipients;
}

describe('dispatch with payload filters', () => {
  beforeEach(async () => {
    await env.pool.query(`UPDATE webhook_rx SET time_deleted = now() WHERE time_deleted IS NULL`);
  });

  test('exact and glob subscriptions filter', async () => {
    await createReceiver('all-pr', ['gh.pull_request.opened']);
    await createReceiver('big-pr', [
      { event_class: 'gh.pull_request.opened', filter: { path: 'pull_request.additions', gt: 100 } },
    ]);
    await createReceiver('octo-any', [
      { event_class: 'gh.**', filter: { path: 'repository.owner.login', eq: 'octocat' } },
    ]);
    await createReceiver('not-bots', [
      { event_class: 'gh.*.opened', filter: { not: { path: 'sender.type', eq: 'Bot' } } },
    ]);

    const small = { pull_request: { additions: 5 }, repository: { owner: { login: 'octocat' } }, sender: { type: 'User' } };
    const large = { pull_request: { additions: 500 }, repository: { owner: { login: 'hubot' } }, sender: { type: 'Bot' } };
    expect(await dispatchTo('gh.pull_request.opened', small)).toEqual(['all-pr', 'not-bots', 'octo-any']);
    expect(await dispatchTo('gh.pull_request.opened', large)).toEqual(['all-pr', 'big-pr']);
    expect(await dispatchTo('gh.push', { repository: { owner: { login: 'octocat' } } })).toEqual(['octo-any']);
    expect(await dispatchTo('gh.push', { repository: 'octocat' })).toEqual([]);
  });

  test('any matching subscription delivers once', async () => {
    await createReceiver('two-ways', [
      { event_class: 'shop.order.paid', filter: { path: 'total', gte: 100 } },
      { event_class: 'shop.*.paid', filter: { path: 'currency', in: ['EUR', 'CHF'] } },
      'shop.refund.*',
    ]);
    expect(await dispatchTo('shop.order.paid', { total: 150, currency: 'EUR' })).toEqual(['two-ways']);
    expect(await dispatchTo('shop.order.paid', { total: 150, currency: 'USD' })).toEqual(['two-ways']);
    expect(await dispatchTo('shop.order.paid', { total: 50, currency: 'CHF' })).toEqual(['two-ways']);
    expect(await dispatchTo('shop.order.paid', { total: 50, currency: 'USD' })).toEqual([]);
    expect(await dispatchTo('shop.invoice.paid', { total: 500, currency: 'USD' })).toEqual([]);
    expect(await dispatchTo('shop.refund.created', {})).toEqual(['two-ways']);
  });

  test('missing path and type rules apply', async () => {
    await createReceiver('has-login', [{ event_class: 'rules.ping', filter: { path: 'sender.login', exists: true } }]);
    await createReceiver('no-login', [{ event_class: 'rules.ping', filter: { path: 'sender.login', exists: false } }]);
    await createReceiver('level-gt-2', [{ event_class: 'rules.ping', filter: { path: 'level', gt: 2 } }]);
    await createReceiver('first-tag', [{ event_class: 'rules.ping', filter: { path: 'tags[0]', eq: 'urgent' } }]);
    await createReceiver('null-login', [{ event_class: 'rules.ping', filter: { path: 'sender.login', eq: null } }]);

    expect(await dispatchTo('rules.ping', { sender: { login: 'x' }, level: 3, tags: ['urgent'] })).toEqual([
      'first-tag',
      'has-login',
      'level-gt-2',
    ]);
    expect(await dispatchTo('rules.ping', { sender: { login: null }, level: '3', tags: ['later', 'urgent'] })).toEqual([
      'has-login',
      'null-login',
    ]);
    expect(await dispatchTo('rules.ping', { sender: 'x', level: [3], tags: 'urgent' })).toEqual(['no-login']);
    expect(await dispatchTo('rules.ping', [])).toEqual(['no-login']);
  });

  test('unreadable data matches no filter', async () => {
    await createReceiver('plain', ['odd.data']);
    await createReceiver('filter-true', [{ event_class: 'odd.data', filter: { not: { path: 'zzz', exists: true } } }]);
    // jsonb cannot hold U+0000 or an unpaired surrogate, so dispatch cannot
    // evaluate filters on such data; unfiltered receivers still get it.
    expect(await dispatchTo('odd.data', { text: 'nul\u0000byte' })).toEqual(['plain']);
    expect(await dispatchTo('odd.data', { text: 'lone \uD800' })).toEqual(['plain']);
    expect(await dispatchTo('odd.data', { text: 'escaped \\u0000 is text' })).toEqual(['filter-true', 'plain']);
  });

  test('changed filter applies at once', async () => {
    const id = await createReceiver('moving-filter', [{ event_class: 'move.it', filter: { path: 'n', eq: 1 } }]);
    expect(await dispatchTo('move.it', { n: 1 })).toEqual(['moving-filter']);
    await receivers.update(id, { subscriptions: [{ event_class: 'move.it', filter: { path: 'n', eq: 2 } }] });
    expect(await dispatchTo('move.it', { n: 1 })).toEqual([]);
    expect(await dispatchTo('move.it', { n: 2 })).toEqual(['moving-filter']);
    await receivers.update(id, { subscriptions: ['move.it'] });
    expect(await dispatchTo('move.it', { n: 3 })).toEqual(['moving-filter']);
  });

  test('deleted and disabled stay excluded', async () => {
    const filter = { path: 'ok', eq: true };
    const deleted = await createReceiver('gone', [{ event_class: 'skip.me', filter }]);
    const disabled = await createReceiver('paused', [{ event_class: 'skip.me', filter }]);
    await createReceiver('here', [{ event_class: 'skip.me', filter }]);
    await receivers.delete(deleted);
    await env.pool.query(
      `UPDATE webhook_rx SET time_disabled = now(), disabled_reason = 'test' WHERE id = $1`,
      [disabled],
    );
    expect(await dispatchTo('skip.me', { ok: true })).toEqual(['here']);
  });
});

describe('pipeline with payload filters', () => {
  let system: RunningSystem;
  let opened: ReceiverHarness;
  let everything: ReceiverHarness;

  beforeAll(async () => {
    system = await startSystem(env);
    opened = await new ReceiverHarness().start();
    everything = await new ReceiverHarness().start();
  });

  afterAll(async () => {
    await system?.stop();
    await opened?.stop();
    await everything?.stop();
  });

  test('delivers only matching events', async () => {
    const filtered = await system.request('POST', '/v1/receivers', {
      name: 'pipeline-opened',
      endpoint: opened.url(),
      subscriptions: [
        { event_class: 'pipe.issues.*', filter: { and: [{ path: 'action', in: ['opened', 'reopened'] }, { path: 'issue.comments', lt: 10 }] } },
      ],
    });
    expect(filtered.status).toBe(201);
    const plain = await system.request('POST', '/v1/receivers', {
      name: 'pipeline-all',
      endpoint: everything.url(),
      subscriptions: ['pipe.issues.*'],
    });
    expect(plain.status).toBe(201);

    const events = [
      { action: 'opened', issue: { comments: 0 } },
      { action: 'closed', issue: { comments: 0 } },
      { action: 'reopened', issue: { comments: 3 } },
      { action: 'opened', issue: { comments: 12 } },
      { action: 'opened' },
      { action: 'reopened', issue: { comments: 9.5 } },
    ];
    const ids: string[] = [];
    for (const data of events) {
      const published = await system.request('POST', '/v1/events', { event_class: 'pipe.issues.changed', data });
      expect(published.status).toBe(202);
      ids.push(published.body.id);
    }

    await waitFor(
      async () => {
        const { rows } = await env.pool.query(
          `SELECT count(*)::int AS n FROM webhook_event
           WHERE id = ANY($1::uuid[]) AND time_dispatched IS NOT NULL`,
          [ids],
        );
        return rows[0].n === ids.length && everything.requests.length === ids.length;
      },
      { message: 'every event to be dispatched and delivered to the unfiltered receiver' },
    );
    const expected = [ids[0], ids[2], ids[5]];
    await waitFor(() => opened.requests.length >= expected.length, {
      message: 'the filtered receiver to get its deliveries',
    });

    const eventIdsOf = (target: ReceiverHarness) =>
      target.requests.map((request) => JSON.parse(request.body.toString('utf8')).event_id as string).sort();
    expect(eventIdsOf(opened)).toEqual([...expected].sort());
    expect(eventIdsOf(everything)).toEqual([...ids].sort());

    // The requests arrive before their attempt rows are written.
    const states = await waitFor(
      async () => {
        const { rows } = await env.pool.query(
          `SELECT state::text, count(*)::int AS n FROM webhook_delivery
           WHERE rx_id = $1 GROUP BY state`,
          [filtered.body.id],
        );
        return rows.every((row) => row.state !== 'pending') ? rows : undefined;
      },
      { message: 'the filtered receiver\'s deliveries to finish' },
    );
    expect(states).toEqual([{ state: 'delivered', n: 3 }]);
  });
});
