import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileFilter } from '../../shared/payload-filter.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

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

const OPENED = { path: 'action', eq: 'opened' };
const BIG = { and: [{ path: 'pull_request.additions', gt: 100 }, { path: ['labels', 0, 'name'], in: ['bug', 'ui'] }] };

async function createReceiver(name: string, subscriptions: unknown[]) {
  const response = await system.request('POST', '/v1/receivers', {
    name,
    endpoint: harness.url(),
    subscriptions,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body;
}

async function subscriptionRows(rxId: string) {
  const { rows } = await env.pool.query(
    `SELECT event_class, filter, filter_jsonpath FROM webhook_rx_subscription
     WHERE rx_id = $1 ORDER BY event_class`,
    [rxId],
  );
  return rows;
}

async function subscriptionGen(rxId: string): Promise<number> {
  const { rows } = await env.pool.query(
    `SELECT subscription_gen::int AS gen FROM webhook_rx WHERE id = $1`,
    [rxId],
  );
  return rows[0].gen;
}

async function receiverCount(): Promise<number> {
  const { rows } = await env.pool.query(`SELECT count(*)::int AS n FROM webhook_rx`);
  return rows[0].n;
}

describe('receiver filters', () => {
  test('create stores and returns filters', async () => {
    const created = await createReceiver('filtered', [
      'orders.*',
      { event_class: 'github.pull_request.*', filter: BIG },
      { event_class: 'github.issues.opened', filter: OPENED },
      { event_class: 'github.push', filter: null },
      { event_class: 'github.release' },
    ]);
    expect(created.subscriptions).toEqual([
      'github.issues.opened',
      'github.pull_request.*',
      'github.push',
      'github.release',
      'orders.*',
    ]);
    expect(created.filters).toEqual({ 'github.pull_request.*': BIG, 'github.issues.opened': OPENED });

    expect(await subscriptionRows(created.id)).toEqual([
      { event_class: 'github.issues.opened', filter: OPENED, filter_jsonpath: compileFilter(OPENED).jsonpath },
      { event_class: 'github.pull_request.*', filter: BIG, filter_jsonpath: compileFilter(BIG).jsonpath },
      { event_class: 'github.push', filter: null, filter_jsonpath: null },
      { event_class: 'github.release', filter: null, filter_jsonpath: null },
      { event_class: 'orders.*', filter: null, filter_jsonpath: null },
    ]);

    const fetched = await system.request('GET', `/v1/receivers/${created.id}`);
    expect(fetched.body.filters).toEqual(created.filters);
    const listed = await system.request('GET', '/v1/receivers?limit=1000');
    const inList = listed.body.receivers.find((receiver: { id: string }) => receiver.id === created.id);
    expect(inList.filters).toEqual(created.filters);
  });

  test('receiver without filters has empty map', async () => {
    const created = await createReceiver('unfiltered', ['orders.*']);
    expect(created.filters).toEqual({});
    expect((await system.request('GET', '/v1/receivers/unfiltered')).body.filters).toEqual({});
  });

  test('pattern named __proto__ stays a key', async () => {
    const created = await createReceiver('proto-pattern', [{ event_class: '__proto__', filter: OPENED }]);
    expect(Object.keys(created.filters)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(created.filters, '__proto__')?.value).toEqual(OPENED);
  });

  test('PATCH replaces filters and bumps gen', async () => {
    const created = await createReceiver('patch-filters', [
      { event_class: 'a.b', filter: OPENED },
      { event_class: 'c.*', filter: BIG },
    ]);
    expect(await subscriptionGen(created.id)).toBe(0);

    const changed = { path: 'action', in: ['closed'] };
    const patched = await system.request('PATCH', `/v1/receivers/${created.id}`, {
      subscriptions: ['c.*', { event_class: 'a.b', filter: changed }],
    });
    expect(patched.status).toBe(200);
    expect(patched.body.subscriptions).toEqual(['a.b', 'c.*']);
    expect(patched.body.filters).toEqual({ 'a.b': changed });
    expect(await subscriptionRows(created.id)).toEqual([
      { event_class: 'a.b', filter: changed, filter_jsonpath: compileFilter(changed).jsonpath },
      { event_class: 'c.*', filter: null, filter_jsonpath: null },
    ]);
    expect(await subscriptionGen(created.id)).toBe(1);

    const renamed = await system.request('PATCH', `/v1/receivers/${created.id}`, { description: 'x' });
    expect(renamed.body.filters).toEqual({ 'a.b': changed });
    expect(await subscriptionGen(created.id)).toBe(1);
  });

  test('identical repeats are merged', async () => {
    const created = await createReceiver('repeats', [
      { event_class: 'r.s', filter: { path: 'a.b', eq: 1 } },
      { event_class: 'r.s', filter: { path: ['a', 'b'], eq: 1 } },
      'plain.one',
      { event_class: 'plain.one' },
    ]);
    expect(created.subscriptions).toEqual(['plain.one', 'r.s']);
    expect(created.filters).toEqual({ 'r.s': { path: 'a.b', eq: 1 } });
  });
});

describe('receiver filter validation', () => {
  test.each<[string, unknown[], string]>([
    [
      'operand of the wrong type',
      ['x.y', { event_class: 'a.b', filter: { and: [{ path: 'n', gt: {} }] } }],
      'subscriptions[1].filter.and[0].gt: must be a number or string, got {}',
    ],
    [
      'bad path',
      [{ event_class: 'a.b', filter: { path: 'a..b', eq: 1 } }],
      'subscriptions[0].filter.path: "a..b" is not a valid path: empty key at character 3; write keys separated by "." and array indexes as [0], and escape ".", "[", "]" and "\\" inside a key with "\\"',
    ],
    [
      'filter not an object',
      [{ event_class: 'a.b', filter: 'action=opened' }],
      'subscriptions[0].filter: must be a filter such as {"path": "action", "eq": "opened"}, {"and": [...]}, {"or": [...]} or {"not": {...}}, got "action=opened"',
    ],
    [
      'unknown operator',
      [{ event_class: 'a.b', filter: { path: 'a', ne: 1 } }],
      'subscriptions[0].filter: has unknown field "ne"; a condition has "path" and one of "eq", "in", "gt", "gte", "lt", "lte" or "exists"',
    ],
    [
      'same pattern, other filter',
      [{ event_class: 'a.b', filter: OPENED }, 'c.d', 'a.b'],
      'subscriptions[2]: repeats "a.b" of subscriptions[0] with a different filter; give each pattern once and join its filters with "or"',
    ],
    [
      'bad pattern in object',
      [{ event_class: 'a..b', filter: OPENED }],
      'subscriptions[0].event_class: "a..b" is not a valid pattern: each dot-separated segment must be "*", "**" or letters, digits, "_" and "-" (no empty segments, no "*" inside a word), got segment ""',
    ],
    [
      'unknown subscription field',
      [{ event_class: 'a.b', filters: OPENED }],
      'subscriptions[0]: has unknown field(s) "filters"; allowed fields are "event_class", "filter"',
    ],
    [
      'missing event_class',
      [{ filter: OPENED }],
      'subscriptions[0]: "event_class" is missing; expected a string',
    ],
    [
      'entry of the wrong type',
      ['a.b', 7],
      'subscriptions[1]: must be an event class or glob pattern, or an object with "event_class" and "filter", got number',
    ],
  ])('rejects %s', async (_name, subscriptions, message) => {
    const before = await receiverCount();
    const response = await system.request('POST', '/v1/receivers', {
      name: 'invalid-filter',
      endpoint: harness.url(),
      subscriptions,
    });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid_request');
    expect(response.body.error.message).toBe(message);
    expect(await receiverCount()).toBe(before);
  });

  test('PATCH with a bad filter changes nothing', async () => {
    const created = await createReceiver('patch-invalid', [{ event_class: 'a.b', filter: OPENED }]);
    const response = await system.request('PATCH', `/v1/receivers/${created.id}`, {
      subscriptions: [{ event_class: 'a.b', filter: { path: 'x', in: [] } }],
    });
    expect(response.status).toBe(400);
    expect(response.body.error.message).toBe(
      'subscriptions[0].filter.in: must be an array of 1 to 100 strings, numbers, booleans or nulls, got 0 values',
    );
    expect((await system.request('GET', `/v1/receivers/${created.id}`)).body.filters).toEqual({ 'a.b': OPENED });
    expect(await subscriptionGen(created.id)).toBe(0);
  });
});

describe('POST /v1/filters/test', () => {
  test('returns matches and jsonpath', async () => {
    const filter = { and: [OPENED, { path: 'issue.number', lte: 10 }] };
    const hit = await system.request('POST', '/v1/filters/test', {
      filter,
      data: { action: 'opened', issue: { number: 7 } },
    });
    expect(hit.status).toBe(200);
    expect(hit.body).toEqual({ matches: true, jsonpath: compileFilter(filter).jsonpath });
    const miss = await system.request('POST', '/v1/filters/test', {
      filter,
      data: { action: 'opened', issue: { number: 11 } },
    });
    expect(miss.body.matches).toBe(false);
  });

  test('unreadable data does not match', async () => {
    const response = await system.request('POST', '/v1/filters/test', {
      filter: { not: { path: 'a', exists: true } },
      data: { b: 'nul\u0000' },
    });
    expect(response.body.matches).toBe(false);
  });

  test.each<[string, unknown, string]>([
    ['bad filter', { filter: { path: 'a', gt: [] }, data: {} }, 'filter.gt: must be a number or string, got []'],
    ['missing filter', { data: {} }, 'filter: is missing; send a filter such as {"path": "action", "eq": "opened"}'],
    ['missing data', { filter: OPENED }, 'data: is missing; send any JSON value, such as {}'],
    [
      'unsafe integer in data',
      { filter: OPENED, data: { n: 2 ** 60 } },
      `data.n: must be an integer from -9007199254740991 to 9007199254740991 to be kept exactly (got a number that rounds to ${2 ** 60}); send larger integers as strings`,
    ],
  ])('rejects %s', async (_name, body, message) => {
    const response = await system.request('POST', '/v1/filters/test', body);
    expect(response.status).toBe(400);
    expect(response.body.error.message).toBe(message);
  });
});
