import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { deliveryJobCounts } from '../helpers/queue-inspection.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT_DIR = 'test-results/screenshots';
const API_TOKEN = 'browser-test-token';
const hasChromium = existsSync(CHROMIUM_PATH);

if (!hasChromium) {
  console.warn(
    `browser test skipped: no Chromium at ${CHROMIUM_PATH}; install it with "apt-get install chromium" or set CHROMIUM_PATH`,
  );
}

/**
 * Collects the requests of a page that failed or returned 4xx/5xx. Requests
 * to any host but loopback are aborted before they leave the browser and
 * count as failures: the pages must work on a network with no way out.
 */
async function watchFailedRequests(page: Page): Promise<string[]> {
  const failed: string[] = [];
  await page.route(
    (url) => url.hostname !== '127.0.0.1',
    async (route) => {
      failed.push(`${route.request().method()} ${route.request().url()}: not a loopback address`);
      await route.abort('blockedbyclient');
    },
  );
  page.on('requestfailed', (request) => {
    if (new URL(request.url()).hostname !== '127.0.0.1') return;
    failed.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) {
      failed.push(`${response.request().method()} ${response.url()}: ${response.status()}`);
    }
  });
  return failed;
}

describe.skipIf(!hasChromium)('pages in a browser', () => {
  let env: TestEnv;
  let system: RunningSystem;
  let receiver: ReceiverHarness;
  let browser: Browser;

  beforeAll(async () => {
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    env = await createTestEnv();
    // The receiver always fails and the first retry waits a minute, so a
    // delivery job stays in the delayed list while the page is open.
    receiver = new ReceiverHarness(() => ({ status: 500, body: 'down' }));
    await receiver.start();
    system = await startSystem(env, {
      overrides: { API_TOKEN, RETRY_SCHEDULE_MS: '60000' },
    });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-dev-shm-usage',
        // Resolves no name but loopback, in case a request slips past the route filter.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await system?.stop();
    await receiver?.stop();
    await env?.dispose();
  });

  async function publishFailingDelivery() {
    const headers = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };
    const created = await fetch(`${system.api.url}/v1/receivers`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        name: 'browser-rx',
        endpoint: receiver.url(),
        subscriptions: ['browser.*'],
      }),
    });
    expect(created.status).toBe(201);
    const published = await fetch(`${system.api.url}/v1/events`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ event_class: 'browser.test', data: { n: 1 } }),
    });
    expect(published.status).toBe(202);
    await expect
      .poll(() => receiver.requests.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
    await expect
      .poll(async () => (await deliveryJobCounts(system.config)).delayed, { timeout: 15_000 }).toBe(1);

  }

  test('Bull Board shows both queues and a delayed job', async () => {
    await publishFailingDelivery();
    const context = await browser.newContext({
      extraHTTPHeaders: { authorization: `Bearer ${API_TOKEN}` },
    });
    const page = await context.newPage();
    const failed = await watchFailedRequests(page);
    const board = `${system.api.url}${system.config.bullBoardPath}`;

    await page.goto(board);
    await page.getByText('dispatch', { exact: true }).first().waitFor({ timeout: 15_000 });
    await page.getByText('delivery', { exact: true }).first().waitFor({ timeout: 15_000 });
    await page.screenshot({ path: `${SCREENSHOT_DIR}/bull-board-overview.png`, fullPage: true });

    await page.goto(`${board}/queue/delivery?status=delayed`);
    // Delivery jobs take their delivery's id as job id, which the job card shows.
    const { rows } = await env.pool.query<{ id: string }>('SELECT id::text FROM webhook_delivery');
    expect(rows).toHaveLength(1);
    await page.getByText(rows[0]!.id, { exact: true }).first().waitFor({ timeout: 15_000 });
    await page.screenshot({ path: `${SCREENSHOT_DIR}/bull-board-delayed.png`, fullPage: true });

    expect(failed).toEqual([]);
    await context.close();
  });

  test('API reference lists the event routes', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const failed = await watchFailedRequests(page);

    await page.goto(`${system.api.url}/docs`);
    const paths = page.locator('.opblock-summary-path');
    await paths.first().waitFor({ timeout: 15_000 });
    const pathTexts = await paths.allTextContents();
    // Swagger UI puts zero-width spaces into long paths, so drop them to compare.
    const routes = pathTexts.map((text) => text.replace(/\u200b/g, '').trim());
    expect(routes).toContain('/v1/events');
    expect(routes).toContain('/v1/events/{id}');
    expect(routes).toContain('/v1/events/{id}/deliveries');
    await page.screenshot({ path: `${SCREENSHOT_DIR}/api-reference.png`, fullPage: true });

    expect(failed).toEqual([]);
    await context.close();
  });
});
