// Bull Board behind the API token. The page, its API and its actions need
// credentials (Bearer, or HTTP Basic with the token as password), and its
// static assets stay public. Every asset that the page names loads, also
// behind a reverse proxy that strips a path prefix.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Queue } from 'bullmq';
import { startApi, type ApiHandle } from '../../producers/api/start-api.js';
import { createLogger } from '../../shared/logger.js';
import { openQueues, workerConnection, type Queues, type RedisClient } from '../../shared/queues.js';
import { startRoles } from '../../scripts/roles.js';
import type { Service } from '../../shared/lifecycle.js';
import { PrefixProxy } from '../helpers/prefix-proxy.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { unusedLoopbackPort } from '../helpers/unused-port.js';

const TOKEN = 'board-test-token-0123456789';
const BOARD = '/admin/queues';
const BEARER = { authorization: `Bearer ${TOKEN}` };
const BASIC = { authorization: `Basic ${Buffer.from(`ops:${TOKEN}`).toString('base64')}` };

let env: TestEnv;
let system: RunningSystem;
let receiver: ReceiverHarness;
let redis: RedisClient;
let queues: Queues;
/** The id of a delivery job that waits in delayed for its retry. */
let delayedJobId: string;
/** The id of a dispatch job that waits because no dispatch worker runs. */
let waitingDispatchJobId: string;

beforeAll(async () => {
  env = await createTestEnv();
  receiver = await new ReceiverHarness(() => ({ status: 500, body: 'down' })).start();
  system = await startSystem(env, {
    // A long retry delay keeps the failed delivery's job in delayed.
    overrides: { API_TOKEN: TOKEN, RETRY_SCHEDULE_MS: '600000' },
  });
  const created = await fetch(`${system.api.url}/v1/receivers`, {
    method: 'POST',
    headers: { ...BEARER, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'always-500', endpoint: receiver.url(), subscriptions: ['board.*'] }),
  });
  expect(created.status).toBe(201);
  await publish('board.first');
  redis = workerConnection(system.config);
  queues = openQueues(redis, system.config);
  const delayed = await waitFor(async () => {
    const jobs = await queues.delivery.shards[0]!.getDelayed();
    return jobs.length > 0 ? jobs : undefined;
  }, { message: 'a delivery retry in delayed' });
  delayedJobId = delayed[0]!.id!;
  // With the dispatch worker stopped, the next event's job stays waiting.
  await system.dispatch!.close();
  waitingDispatchJobId = await publish('board.second');
});

afterAll(async () => {
  await queues?.dispatch.close();
  await queues?.delivery.close();
  redis?.disconnect();
  await system?.stop();
  await receiver?.stop();
  await env?.dispose();
});

async function publish(eventClass: string): Promise<string> {
  const response = await fetch(`${system.api.url}/v1/events`, {
    method: 'POST',
    headers: { ...BEARER, 'content-type': 'application/json' },
    body: JSON.stringify({ event_class: eventClass, data: {} }),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

/** Returns the URLs of every script and stylesheet that a page names, resolved against its base. */
function pageAssets(html: string, pageUrl: string): { base: string; assets: string[] } {
  const baseHref = /<base\s+href="([^"]*)"/.exec(html)?.[1];
  const base = new URL(baseHref ?? '', pageUrl).toString();
  const scripts = [...html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g)].map((match) => match[1]!);
  const styles = [...html.matchAll(/<link\b[^>]*>/g)]
    .map((match) => match[0])
    .filter((tag) => /\brel="stylesheet"/.test(tag))
    .map((tag) => /\bhref="([^"]+)"/.exec(tag)![1]!);
  return { base, assets: [...scripts, ...styles].map((href) => new URL(href, base).toString()) };
}

/**
 * Checks that a page names no asset on another host, then fetches every
 * asset and checks its status, type and body.
 */
async function expectAssetsLoad(assets: string[]) {
  expect(assets.filter((asset) => new URL(asset).hostname !== '127.0.0.1')).toEqual([]);
  expect(assets.length).toBeGreaterThanOrEqual(2);
  for (const asset of assets) {
    const response = await fetch(asset);
    expect(response.status, asset).toBe(200);
    expect(response.headers.get('content-type'), asset).toMatch(/javascript|text\/css/);
    expect((await response.arrayBuffer()).byteLength, asset).toBeGreaterThan(0);
  }
}

async function jobStates(): Promise<string[]> {
  return [
    await queues.delivery.shards[0]!.getJobState(delayedJobId),
    await queues.dispatch.getJobState(waitingDispatchJobId),
  ];
}

describe('without credentials', () => {
  test.each([`${BOARD}`, `${BOARD}/`, `${BOARD}/queue/delivery`, `${BOARD}/api/queues`])(
    'GET %s is 401 with a Basic challenge',
    async (path) => {
      const response = await fetch(`${system.api.url}${path}`);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Basic realm="webhooks", charset="UTF-8"');
      expect(((await response.json()) as any).error.code).toBe('unauthorized');
    },
  );

  test('wrong Basic password is 401', async () => {
    const wrong = `Basic ${Buffer.from(`ops:not-${TOKEN}`).toString('base64')}`;
    const response = await fetch(`${system.api.url}${BOARD}/api/queues`, { headers: { authorization: wrong } });
    expect(response.status).toBe(401);
  });

  test('job actions are 401 and change nothing', async () => {
    const before = await jobStates();
    expect(before).toEqual(['delayed', 'waiting']);
    const actions = [
      `/api/queues/delivery/${delayedJobId}/retry`,
      `/api/queues/delivery/${delayedJobId}/promote`,
      `/api/queues/delivery/${delayedJobId}/clean`,
      `/api/queues/dispatch/${waitingDispatchJobId}/clean`,
      '/api/queues/delivery/retry/failed',
      '/api/queues/delivery/clean/delayed',
      '/api/queues/dispatch/clean/wait',
    ];
    for (const action of actions) {
      const response = await fetch(`${system.api.url}${BOARD}${action}`, { method: 'PUT' });
      expect(response.status, action).toBe(401);
    }
    expect(await jobStates()).toEqual(before);
  });

  test('static assets stay public', async () => {
    const page = await fetch(`${system.api.url}${BOARD}`, { headers: BEARER });
    const { assets } = pageAssets(await page.text(), `${system.api.url}${BOARD}`);
    await expectAssetsLoad(assets);
  });
});

describe('with credentials', () => {
  test.each([
    ['Bearer', BEARER],
    ['Basic', BASIC],
  ])('page loads with %s', async (_scheme, headers) => {
    const response = await fetch(`${system.api.url}${BOARD}`, { headers });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    const { base, assets } = pageAssets(html, response.url);
    expect(new URL(base).pathname).toBe(`${BOARD}/`);
    await expectAssetsLoad(assets);
  });

  test('queue API counts match BullMQ', async () => {
    const response = await fetch(`${system.api.url}${BOARD}/api/queues`, { headers: BASIC });
    expect(response.status).toBe(200);
    const listed = ((await response.json()) as { queues: { name: string; counts: Record<string, number> }[] })
      .queues;
    expect(listed.map((queue) => queue.name).sort()).toEqual(['delivery', 'dispatch']);
    const byName = new Map<string, Queue>([
      ['dispatch', queues.dispatch],
      ['delivery', queues.delivery.shards[0]!],
    ]);
    for (const entry of listed) {
      expect(entry.counts, entry.name).toEqual(await byName.get(entry.name)!.getJobCounts());
    }
    expect(listed.find((queue) => queue.name === 'delivery')!.counts.delayed).toBe(1);
    expect(listed.find((queue) => queue.name === 'dispatch')!.counts.waiting).toBe(1);
  });

  test('cross-site action is 403', async () => {
    const response = await fetch(`${system.api.url}${BOARD}/api/queues/delivery/${delayedJobId}/promote`, {
      method: 'PUT',
      headers: { ...BASIC, 'sec-fetch-site': 'cross-site' },
    });
    expect(response.status).toBe(403);
    expect(await queues.delivery.shards[0]!.getJobState(delayedJobId)).toBe('delayed');
  });

  test('retry and clean actions run', async () => {
    const retried = await fetch(`${system.api.url}${BOARD}/api/queues/delivery/retry/failed`, {
      method: 'PUT',
      headers: { ...BEARER, 'sec-fetch-site': 'same-origin' },
    });
    expect(retried.status).toBe(200);
    const cleaned = await fetch(`${system.api.url}${BOARD}/api/queues/dispatch/${waitingDispatchJobId}/clean`, {
      method: 'PUT',
      headers: BASIC,
    });
    expect(cleaned.status).toBeLessThan(300);
    expect(await queues.dispatch.getJobState(waitingDispatchJobId)).toBe('unknown');
  });
});

describe('behind a prefix-stripping proxy', () => {
  let api: ApiHandle;
  let proxy: PrefixProxy;

  beforeAll(async () => {
    const config = env.config({
      API_TOKEN: TOKEN,
      BULL_BOARD_PUBLIC_PATH: `/ops${BOARD}`,
    });
    api = await startApi(config, createLogger('test', 'silent'));
    proxy = new PrefixProxy('/ops', api.url);
    await proxy.start();
  });

  afterAll(async () => {
    await proxy?.stop();
    await api?.close();
  });

  test('page base and assets use the public path', async () => {
    const pageUrl = `${proxy.url}/ops${BOARD}`;
    const response = await fetch(pageUrl, { headers: BASIC });
    expect(response.status).toBe(200);
    const { base, assets } = pageAssets(await response.text(), pageUrl);
    expect(base).toBe(`${proxy.url}/ops${BOARD}/`);
    for (const asset of assets) {
      expect(asset.startsWith(`${proxy.url}/ops${BOARD}/`), asset).toBe(true);
    }
    await expectAssetsLoad(assets);
  });

  test('queue API answers through the proxy', async () => {
    const response = await fetch(`${proxy.url}/ops${BOARD}/api/queues`, { headers: BEARER });
    expect(response.status).toBe(200);
    const names = ((await response.json()) as { queues: { name: string }[] }).queues.map((queue) => queue.name);
    expect(names.sort()).toEqual(['delivery', 'dispatch']);
  });

  test('proxy path without credentials is 401', async () => {
    const response = await fetch(`${proxy.url}/ops${BOARD}/api/queues`);
    expect(response.status).toBe(401);
  });
});

describe('dashboard role', () => {
  let dashboard: Service;
  let url: string;

  beforeAll(async () => {
    const port = await unusedLoopbackPort();
    const config = env.config({ API_TOKEN: TOKEN, API_PORT: String(port) });
    dashboard = await startRoles(['dashboard'], config, createLogger('test', 'silent'));
    url = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await dashboard?.close();
  });

  test('serves the board behind the token', async () => {
    expect((await fetch(`${url}${BOARD}/api/queues`)).status).toBe(401);
    const response = await fetch(`${url}${BOARD}/api/queues`, { headers: BASIC });
    expect(response.status).toBe(200);
  });

  test('serves health, liveness and metrics', async () => {
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ postgres: 'ok', redis: 'ok' });
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('webhook_redis_up');
  });

  test('serves no API route', async () => {
    const response = await fetch(`${url}/v1/receivers`, { headers: BEARER });
    expect(response.status).toBe(404);
  });
});
