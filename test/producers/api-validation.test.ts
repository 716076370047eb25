import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sendRaw, type RawResponse } from '../helpers/raw-request.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { countRows } from '../helpers/row-counts.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

// A small limit keeps the oversized requests small: bodies up to
// 1024 + 4096 bytes reach the publisher, larger ones stop at Fastify.
const MAX_PAYLOAD_BYTES = 1024;
const BODY_LIMIT_BYTES = MAX_PAYLOAD_BYTES + 4096;

const CLASS_RULE =
  'must be dot-separated segments of letters, digits, "_" and "-", such as "github.push.created"';
const NAME_RULE =
  'must be 1 to 128 letters, digits, "_", "." or "-", starting with a letter or digit';
const SECRET_RULE =
  'must be "whsec_" followed by base64 of 24 to 64 bytes, without a "v1," prefix';
const UUID_RULE = 'must be a UUID such as "0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e"';

function patternRule(pattern: string, segment: string): string {
  return `"${pattern}" is not a valid pattern: each dot-separated segment must be "*", "**" or letters, digits, "_" and "-" (no empty segments, no "*" inside a word), got segment "${segment}"`;
}

let env: TestEnv;
let system: RunningSystem;
let harness: ReceiverHarness;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, {
    dispatch: false,
    delivery: false,
    overrides: { MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES) },
  });
  harness = await new ReceiverHarness().start();
});

afterAll(async () => {
  await system?.stop();
  await harness?.stop();
  await env?.dispose();
});

function postJson(path: string, body: unknown): Promise<RawResponse> {
  return sendRaw(system.api.url, 'POST', path, {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

function expectError(
  response: { status: number; body: any },
  status: number,
  code: string,
  message: string,
) {
  expect(response.status).toBe(status);
  expect(response.body.error.code).toBe(code);
  expect(response.body.error.message).toBe(message);
  expect(typeof response.body.error.request_id).toBe('string');
  expect(response.body.error.request_id).not.toBe('');
}

describe('POST /v1/events validation', () => {
  test.each([
    ['foo..bar', `event_class: ${CLASS_RULE}, got "foo..bar"`],
    ['foo bar', `event_class: ${CLASS_RULE}, got "foo bar"`],
    ['foo*', `event_class: ${CLASS_RULE}, got "foo*"`],
    [undefined, `event_class: is missing; it ${CLASS_RULE}`],
    [42, `event_class: ${CLASS_RULE}, got number`],
  ])('rejects event_class %j', async (eventClass, message) => {
    const before = await countRows(env.pool);
    const response = await postJson('/v1/events', {
      event_class: eventClass,
      data: { n: 1 },
    });
    expectError(response, 400, 'invalid_request', message);
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects unknown top-level field', async () => {
    const before = await countRows(env.pool);
    const response = await postJson('/v1/events', {
      event_class: 'test.a',
      data: {},
      priority: 'high',
    });
    expectError(
      response,
      400,
      'invalid_request',
      'body: has unknown field(s) "priority"; allowed fields are "event_class", "data", "id"',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects missing data', async () => {
    const before = await countRows(env.pool);
    const response = await postJson('/v1/events', { event_class: 'test.a' });
    expectError(
      response,
      400,
      'invalid_request',
      'data: is missing; send any JSON value, such as {}',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects body that is not JSON', async () => {
    const before = await countRows(env.pool);
    const response = await sendRaw(system.api.url, 'POST', '/v1/events', {
      headers: { 'content-type': 'application/json' },
      body: '{"event_class": "test.a", "data": ',
    });
    expectError(
      response,
      400,
      'invalid_request',
      'body: is not valid JSON; send a JSON object',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects JSON array body', async () => {
    const before = await countRows(env.pool);
    const response = await postJson('/v1/events', [{ event_class: 'test.a' }]);
    expectError(
      response,
      400,
      'invalid_request',
      'body: must be an object, got array',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects missing body', async () => {
    const before = await countRows(env.pool);
    const response = await sendRaw(system.api.url, 'POST', '/v1/events');
    expectError(
      response,
      400,
      'invalid_request',
      'body: is missing; send a JSON object',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects empty JSON body', async () => {
    const before = await countRows(env.pool);
    const response = await sendRaw(system.api.url, 'POST', '/v1/events', {
      headers: { 'content-type': 'application/json' },
      body: '',
    });
    expectError(
      response,
      400,
      'invalid_request',
      'body: is missing; send a JSON object',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects text/plain with 415', async () => {
    const before = await countRows(env.pool);
    const response = await sendRaw(system.api.url, 'POST', '/v1/events', {
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ event_class: 'test.a', data: {} }),
    });
    expectError(
      response,
      415,
      'unsupported_media_type',
      'Content-Type: must be application/json, got "text/plain"',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects data over MAX_PAYLOAD_BYTES', async () => {
    const before = await countRows(env.pool);
    // {"s":"xxx…"} is the 2,000 characters plus 8 bytes of JSON syntax.
    const response = await postJson('/v1/events', {
      event_class: 'test.a',
      data: { s: 'x'.repeat(2_000) },
    });
    expectError(
      response,
      413,
      'payload_too_large',
      `data: must be at most ${MAX_PAYLOAD_BYTES} bytes as JSON (MAX_PAYLOAD_BYTES), got 2008 bytes`,
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects body over body limit', async () => {
    const before = await countRows(env.pool);
    const response = await postJson('/v1/events', {
      event_class: 'test.a',
      data: { s: 'x'.repeat(BODY_LIMIT_BYTES) },
    });
    expectError(
      response,
      413,
      'payload_too_large',
      `body: must be at most ${BODY_LIMIT_BYTES} bytes, of which an event's data may take ${MAX_PAYLOAD_BYTES} bytes as JSON (MAX_PAYLOAD_BYTES) and the other fields 4096`,
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects integer past 2^53', async () => {
    const before = await countRows(env.pool);
    const response = await sendRaw(system.api.url, 'POST', '/v1/events', {
      headers: { 'content-type': 'application/json' },
      body: '{"event_class":"test.a","data":{"big":12345678901234567890}}',
    });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid_request');
    // The message starts with the field and states the limit. The number it
    // quotes is JSON.parse's rounding of the digits that were sent.
    expect(response.body.error.message).toMatch(/^data\.big: /);
    expect(response.body.error.message).toContain(String(Number.MAX_SAFE_INTEGER));
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects id that is not a UUID', async () => {
    const before = await countRows(env.pool);
    const response = await postJson('/v1/events', {
      event_class: 'test.a',
      data: {},
      id: 'not-a-uuid',
    });
    expectError(response, 400, 'invalid_request', `id: ${UUID_RULE}, got "not-a-uuid"`);
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects numeric id', async () => {
    const before = await countRows(env.pool);
    const response = await postJson('/v1/events', {
      event_class: 'test.a',
      data: {},
      id: 7,
    });
    expectError(response, 400, 'invalid_request', `id: ${UUID_RULE}, got 7`);
    expect(await countRows(env.pool)).toEqual(before);
  });
});

describe('GET /v1/events validation', () => {
  test('rejects event id not a UUID', async () => {
    const response = await system.request('GET', '/v1/events/not-a-uuid');
    expectError(response, 400, 'invalid_request', `id: ${UUID_RULE}, got "not-a-uuid"`);
  });

  test('returns 404 for unknown event', async () => {
    const id = randomUUID();
    const response = await system.request('GET', `/v1/events/${id}`);
    expectError(response, 404, 'not_found', `event "${id}" was not found`);
  });

  test('returns 404 for unknown event deliveries', async () => {
    const id = randomUUID();
    const response = await system.request('GET', `/v1/events/${id}/deliveries`);
    expectError(response, 404, 'not_found', `event "${id}" was not found`);
  });
});

describe('empty JSON body without a required body', () => {
  const jsonHeaders = { 'content-type': 'application/json' };

  test('POST secrets adds a secret', async () => {
    const created = await system.request('POST', '/v1/receivers', {
      name: 'empty-body-secrets',
      endpoint: harness.url(),
      subscriptions: ['test.*'],
    });
    expect(created.status).toBe(201);
    const response = await sendRaw(
      system.api.url,
      'POST',
      '/v1/receivers/empty-body-secrets/secrets',
      { headers: jsonHeaders, body: '' },
    );
    expect(response.status).toBe(201);
    expect(response.body.secret).toMatch(/^whsec_/);
  });

  test('DELETE receiver returns 204', async () => {
    const created = await system.request('POST', '/v1/receivers', {
      name: 'empty-body-delete',
      endpoint: harness.url(),
      subscriptions: ['test.*'],
    });
    expect(created.status).toBe(201);
    const response = await sendRaw(system.api.url, 'DELETE', '/v1/receivers/empty-body-delete', {
      headers: jsonHeaders,
      body: '',
    });
    expect(response.status).toBe(204);
  });
});

describe('POST /v1/receivers validation', () => {
  function receiver(fields: Record<string, unknown>) {
    return {
      name: 'valid-name',
      endpoint: harness.url(),
      subscriptions: ['test.*'],
      ...fields,
    };
  }

  test.each([
    ['bad name', `name: ${NAME_RULE}, got "bad name"`],
    ['-leading-dash', `name: ${NAME_RULE}, got "-leading-dash"`],
    ['', `name: ${NAME_RULE}, got ""`],
    ['x'.repeat(129), `name: ${NAME_RULE}, got "${'x'.repeat(129)}"`],
    [
      '0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e',
      'name: must not be a UUID, got "0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e"',
    ],
  ])('rejects name %j', async (name, message) => {
    const before = await countRows(env.pool);
    const response = await system.request('POST', '/v1/receivers', receiver({ name }));
    expectError(response, 400, 'invalid_request', message);
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects ftp endpoint', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ endpoint: 'ftp://127.0.0.1/hook' }),
    );
    expectError(response, 400, 'invalid_request', 'endpoint: must use http or https, got "ftp"');
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects endpoint with credentials', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ endpoint: 'http://u:p@127.0.0.1/' }),
    );
    expectError(
      response,
      400,
      'invalid_request',
      'endpoint: must not contain credentials; receivers authenticate requests by their signature',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects endpoint without scheme', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ endpoint: 'hook.example' }),
    );
    expectError(
      response,
      400,
      'invalid_request',
      'endpoint: must be an absolute http or https URL, got "hook.example"',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test.each([
    ['***', 'subscriptions[1]: ' + patternRule('***', '***')],
    ['a.*b', 'subscriptions[1]: ' + patternRule('a.*b', '*b')],
    ['', 'subscriptions[1]: ' + patternRule('', '')],
    ['a..b', 'subscriptions[1]: ' + patternRule('a..b', '')],
    [' a', 'subscriptions[1]: ' + patternRule(' a', ' a')],
  ])('rejects subscription %j', async (pattern, message) => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ subscriptions: ['test.ok', pattern] }),
    );
    expectError(response, 400, 'invalid_request', message);
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects subscriptions not an array', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ subscriptions: 'test.*' }),
    );
    expectError(response, 400, 'invalid_request', 'subscriptions: must be an array, got string');
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects subscription not a string', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ subscriptions: ['test.ok', 7] }),
    );
    expectError(
      response,
      400,
      'invalid_request',
      'subscriptions[1]: must be an event class or glob pattern, or an object with "event_class" and "filter", got number',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects missing endpoint', async () => {
    const before = await countRows(env.pool);
    const response = await system.request('POST', '/v1/receivers', {
      name: 'no-endpoint',
      subscriptions: [],
    });
    expectError(response, 400, 'invalid_request', 'endpoint: is missing; expected a string');
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects secret with v1 prefix', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ secret: 'v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }),
    );
    expectError(response, 400, 'invalid_request', `secret: ${SECRET_RULE}`);
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects secret of 8 bytes', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ secret: `whsec_${Buffer.alloc(8, 1).toString('base64')}` }),
    );
    expectError(response, 400, 'invalid_request', `secret: ${SECRET_RULE}, got 8 bytes`);
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects unknown receiver field', async () => {
    const before = await countRows(env.pool);
    const response = await system.request(
      'POST',
      '/v1/receivers',
      receiver({ url: harness.url() }),
    );
    expectError(
      response,
      400,
      'invalid_request',
      'body: has unknown field(s) "url"; allowed fields are "name", "description", "endpoint", "subscriptions", "secret", "ordered", "rate_limit_per_second", "max_in_flight"',
    );
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects duplicate name with 409', async () => {
    const first = await system.request('POST', '/v1/receivers', receiver({ name: 'taken' }));
    expect(first.status).toBe(201);
    const before = await countRows(env.pool);
    const second = await system.request('POST', '/v1/receivers', receiver({ name: 'taken' }));
    expectError(second, 409, 'conflict', 'a receiver named "taken" already exists');
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('rejects rename to taken name', async () => {
    const one = await system.request('POST', '/v1/receivers', receiver({ name: 'rename-a' }));
    const two = await system.request('POST', '/v1/receivers', receiver({ name: 'rename-b' }));
    expect(one.status).toBe(201);
    expect(two.status).toBe(201);
    const response = await system.request('PATCH', `/v1/receivers/${two.body.id}`, {
      name: 'rename-a',
    });
    expectError(response, 409, 'conflict', 'a receiver named "rename-a" already exists');
    const { rows } = await env.pool.query(`SELECT name FROM webhook_rx WHERE id = $1`, [
      two.body.id,
    ]);
    expect(rows[0].name).toBe('rename-b');
  });
});

describe('receiver lookups', () => {
  test.each([
    ['GET', ''],
    ['PATCH', ''],
    ['DELETE', ''],
    ['GET', '/secrets'],
    ['POST', '/secrets'],
  ])('%s unknown receiver%s returns 404', async (method, suffix) => {
    const id = randomUUID();
    const body = method === 'PATCH' ? { description: 'x' } : undefined;
    const response = await system.request(method, `/v1/receivers/${id}${suffix}`, body);
    expectError(response, 404, 'not_found', `receiver "${id}" was not found`);
  });

  test('UUID-length non-UUID returns 404', async () => {
    const dashes = '-'.repeat(36);
    const response = await system.request('GET', `/v1/receivers/${dashes}`);
    expectError(response, 404, 'not_found', `receiver "${dashes}" was not found`);
  });

  test('unknown receiver name returns 404', async () => {
    const response = await system.request('GET', '/v1/receivers/nobody-here');
    expectError(response, 404, 'not_found', 'receiver "nobody-here" was not found');
  });

  test('rejects limit of zero', async () => {
    const response = await system.request('GET', '/v1/receivers?limit=0');
    expectError(
      response,
      400,
      'invalid_request',
      'limit: must be a whole number from 1 to 1000, got "0"',
    );
  });

  test('rejects after not a UUID', async () => {
    const response = await system.request('GET', '/v1/receivers?after=abc');
    expectError(response, 400, 'invalid_request', `after: ${UUID_RULE}, got "abc"`);
  });
});

describe('receiver secrets validation', () => {
  test('keeps last secret on delete', async () => {
    const created = await system.request('POST', '/v1/receivers', {
      name: 'one-secret',
      endpoint: harness.url(),
      subscriptions: [],
    });
    expect(created.status).toBe(201);
    const secretId = created.body.secrets[0].id;
    const response = await system.request(
      'DELETE',
      `/v1/receivers/${created.body.id}/secrets/${secretId}`,
    );
    expectError(
      response,
      409,
      'conflict',
      `secret "${secretId}" is the last secret of receiver "one-secret"; add a new secret before deleting it`,
    );
    const listed = await system.request('GET', `/v1/receivers/${created.body.id}/secrets`);
    expect(listed.body.secrets.map((s: { id: string }) => s.id)).toEqual([secretId]);
    const { rows } = await env.pool.query(
      `SELECT time_deleted FROM webhook_secret WHERE id = $1`,
      [secretId],
    );
    expect(rows[0].time_deleted).toBeNull();
  });

  test('rejects malformed added secret', async () => {
    const created = await system.request('POST', '/v1/receivers', {
      name: 'add-bad-secret',
      endpoint: harness.url(),
      subscriptions: [],
    });
    const before = await countRows(env.pool);
    const response = await system.request('POST', `/v1/receivers/${created.body.id}/secrets`, {
      secret: 'v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    });
    expectError(response, 400, 'invalid_request', `secret: ${SECRET_RULE}`);
    expect(await countRows(env.pool)).toEqual(before);
  });

  test('unknown secret returns 404', async () => {
    const created = await system.request('POST', '/v1/receivers', {
      name: 'unknown-secret',
      endpoint: harness.url(),
      subscriptions: [],
    });
    const secretId = randomUUID();
    const response = await system.request(
      'DELETE',
      `/v1/receivers/${created.body.id}/secrets/${secretId}`,
    );
    expectError(response, 404, 'not_found', `secret "${secretId}" was not found`);
  });

  test('rejects secret id not a UUID', async () => {
    const created = await system.request('POST', '/v1/receivers', {
      name: 'bad-secret-id',
      endpoint: harness.url(),
      subscriptions: [],
    });
    const response = await system.request(
      'DELETE',
      `/v1/receivers/${created.body.id}/secrets/xyz`,
    );
    expectError(response, 400, 'invalid_request', `secret_id: ${UUID_RULE}, got "xyz"`);
  });
});

describe('private endpoint addresses', () => {
  let strict: RunningSystem;

  beforeAll(async () => {
    strict = await startSystem(env, {
      dispatch: false,
      delivery: false,
      overrides: { ALLOWED_PRIVATE_NETWORKS: '' },
    });
  });

  afterAll(async () => {
    await strict?.stop();
  });

  test.each([
    ['http://10.0.0.1/hook', '10.0.0.1'],
    ['http://127.0.0.1:8080/hook', '127.0.0.1'],
    ['http://[::1]/hook', '::1'],
    ['http://169.254.169.254/hook', '169.254.169.254'],
  ])('rejects endpoint %s', async (endpoint, address) => {
    const before = await countRows(env.pool);
    const response = await strict.request('POST', '/v1/receivers', {
      name: 'private',
      endpoint,
      subscriptions: [],
    });
    expectError(
      response,
      400,
      'invalid_request',
      `endpoint: address ${address} is loopback, private, link-local or reserved; add its network to ALLOWED_PRIVATE_NETWORKS to allow it`,
    );
    expect(await countRows(env.pool)).toEqual(before);
  });
});
