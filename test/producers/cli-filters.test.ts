import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileFilter } from '../../shared/payload-filter.js';
import { apiErrorOf, runCliInProcess, spawnCli, type CliResult } from '../helpers/cli-runner.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const ENDPOINT = 'http://127.0.0.1:9/hooks';

let env: TestEnv;
let system: RunningSystem;
let workDir: string;

beforeAll(async () => {
  env = await createTestEnv();
  system = await startSystem(env, { dispatch: false, delivery: false });
  workDir = await mkdtemp(path.join(tmpdir(), 'webhooks-cli-filters-'));
});

afterAll(async () => {
  await system?.stop();
  await env?.dispose();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Runs the CLI in this process against the test's API, with `input` on stdin. */
function runCli(args: string[], input = ''): Promise<CliResult> {
  return runCliInProcess(args, { env: { WEBHOOKS_API_URL: system.api.url }, input });
}

async function runJson(args: string[], input = '') {
  const result = await runCli(args, input);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout);
}

async function countReceivers(): Promise<number> {
  const { rows } = await env.pool.query(`SELECT count(*)::int AS n FROM webhook_rx`);
  return rows[0].n;
}

const OPENED = { path: 'action', eq: 'opened' };

describe('receivers create --filter', () => {
  test('stores filter for its pattern', async () => {
    const output = await runJson([
      'receivers', 'create', '--name', 'cli-filtered', '--endpoint', ENDPOINT,
      '--subscribe', 'github.issues.*', '--subscribe', 'billing.**',
      '--filter', `github.issues.*=${JSON.stringify(OPENED)}`,
    ]);
    expect(output.subscriptions).toEqual(['billing.**', 'github.issues.*']);
    expect(output.filters).toEqual({ 'github.issues.*': OPENED });
    const { rows } = await env.pool.query(
      `SELECT event_class, filter, filter_jsonpath FROM webhook_rx_subscription
       WHERE rx_id = $1 ORDER BY event_class`,
      [output.id],
    );
    expect(rows).toEqual([
      { event_class: 'billing.**', filter: null, filter_jsonpath: null },
      { event_class: 'github.issues.*', filter: OPENED, filter_jsonpath: compileFilter(OPENED).jsonpath },
    ]);
  });

  test.each<[string, string[], string]>([
    [
      'pattern not subscribed',
      ['--subscribe', 'a.b', '--filter', 'c.d={"path": "x", "eq": 1}'],
      `error: --filter "c.d": names a pattern that no --subscribe gives; add --subscribe 'c.d'\n`,
    ],
    [
      'no separator',
      ['--subscribe', 'a.b', '--filter', '{"path": "x", "eq": 1}'],
      `error: --filter: must be PATTERN=JSON, such as github.*='{"path": "action", "eq": "opened"}', got "{\\"path\\": \\"x\\", \\"eq\\": 1}"\n`,
    ],
    [
      'two filters for one pattern',
      ['--subscribe', 'a.b', '--filter', 'a.b={"path": "x", "eq": 1}', '--filter', 'a.b={"path": "y", "eq": 2}'],
      'error: --filter "a.b": is given twice; join the two filters with {"or": [...]} or {"and": [...]} in one --filter\n',
    ],
  ])('rejects %s', async (_name, options, message) => {
    const before = await countReceivers();
    const result = await runCli(['receivers', 'create', '--name', 'cli-bad', '--endpoint', ENDPOINT, ...options]);
    expect(result.stderr).toBe(message);
    expect(result.status).toBe(2);
    expect(await countReceivers()).toBe(before);
  });

  test('rejects filter that the API rejects', async () => {
    const before = await countReceivers();
    const result = await runCli([
      'receivers', 'create', '--name', 'cli-bad', '--endpoint', ENDPOINT,
      '--subscribe', 'x.y', '--subscribe', 'a.b', '--filter', 'a.b={"and": [{"path": "n", "gt": {}}]}',
    ]);
    expect(result.status).toBe(2);
    expect(apiErrorOf(result).code).toBe('invalid_request');
    expect(apiErrorOf(result).message).toBe('subscriptions[1].filter.and[0].gt: must be a number or string, got {}');
    expect(await countReceivers()).toBe(before);
  });

  test('rejects filter that is not JSON', async () => {
    const result = await runCli([
      'receivers', 'create', '--name', 'cli-bad', '--endpoint', ENDPOINT,
      '--subscribe', 'a.b', '--filter', 'a.b={path: x}',
    ]);
    expect(result.stderr).toMatch(/^error: --filter "a\.b": is not valid JSON: /);
    expect(result.status).toBe(2);
  });
});

describe('receivers update --filter', () => {
  test('replaces subscriptions and filters', async () => {
    const created = await runJson([
      'receivers', 'create', '--name', 'cli-update', '--endpoint', ENDPOINT,
      '--subscribe', 'a.b', '--filter', `a.b=${JSON.stringify(OPENED)}`,
    ]);
    const changed = { path: 'n', gte: 3 };
    const updated = await runJson([
      'receivers', 'update', 'cli-update', '--subscribe', 'a.b', '--subscribe', 'c.*',
      '--filter', `c.*=${JSON.stringify(changed)}`,
    ]);
    expect(updated.id).toBe(created.id);
    expect(updated.subscriptions).toEqual(['a.b', 'c.*']);
    expect(updated.filters).toEqual({ 'c.*': changed });
  });

  test('needs --subscribe with --filter', async () => {
    const result = await runCli(['receivers', 'update', 'cli-update', '--filter', 'a.b={"path": "x", "eq": 1}']);
    expect(result.stderr).toBe(
      'error: --filter needs the --subscribe values that it filters, because the given subscriptions replace all current ones\n' +
        'Run "webhooks receivers update --help" for usage.\n',
    );
    expect(result.status).toBe(2);
  });
});

describe('filters test', () => {
  const filter = { and: [OPENED, { path: 'issue.labels[0]', in: ['bug', 'ui'] }] };

  test('reads data from stdin in a process', async () => {
    const result = await spawnCli(['filters', 'test', '--filter', JSON.stringify(OPENED)], {
      env: { WEBHOOKS_API_URL: system.api.url },
      input: '{"action": "opened"}',
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ matches: true, jsonpath: compileFilter(OPENED).jsonpath });
  });

  test('reads data from stdin', async () => {
    const hit = await runJson(
      ['filters', 'test', '--filter', JSON.stringify(filter)],
      '{"action": "opened", "issue": {"labels": ["ui", "bug"]}}',
    );
    expect(hit).toEqual({ matches: true, jsonpath: compileFilter(filter).jsonpath });
    const miss = await runJson(
      ['filters', 'test', '--filter', JSON.stringify(filter)],
      '{"action": "opened", "issue": {"labels": ["docs", "bug"]}}',
    );
    expect(miss.matches).toBe(false);
  });

  test('reads data from --file', async () => {
    const file = path.join(workDir, 'sample.json');
    await writeFile(file, JSON.stringify({ action: 'opened', issue: { labels: ['bug'] } }));
    expect(await runJson(['filters', 'test', '--filter', JSON.stringify(filter), '--file', file])).toMatchObject({
      matches: true,
    });
  });

  test('rejects invalid filter', async () => {
    const result = await runCli(['filters', 'test', '--filter', '{"path": "a", "exists": "yes"}'], '{}');
    expect(result.status).toBe(2);
    expect(apiErrorOf(result).code).toBe('invalid_request');
    expect(apiErrorOf(result).message).toBe('filter.exists: must be true or false, got "yes"');
  });
});
