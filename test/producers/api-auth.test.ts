import { afterAll, beforeAll, expect, test } from 'vitest';
import { sendRaw } from '../helpers/raw-request.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const TOKEN = 'test-token-0123456789';

let env: TestEnv;
let system: RunningSystem;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, {
    overrides: { API_TOKEN: TOKEN },
    dispatch: false,
    delivery: false,
  });
});

afterAll(async () => {
  await system?.stop();
  await env?.dispose();
});

test.each([
  '/v1/receivers',
  '/%761/receivers',
  '/%76%31/receivers',
  '/v1/%72eceivers',
])('GET %s without token is 401', async (path) => {
  const response = await sendRaw(system.api.url, 'GET', path);
  expect(response.status).toBe(401);
  expect(response.body?.error?.code).toBe('unauthorized');
});

test('encoded POST without token is 401', async () => {
  const response = await sendRaw(system.api.url, 'POST', '/%761/events', {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ event_class: 'auth.check', data: {} }),
  });
  expect(response.status).toBe(401);
});

test('encoded GET with token is 200', async () => {
  const response = await sendRaw(system.api.url, 'GET', '/%761/receivers', {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(response.status).toBe(200);
});

test('health needs no token', async () => {
  const response = await sendRaw(system.api.url, 'GET', '/health');
  expect(response.status).toBe(200);
});
