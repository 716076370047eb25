import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AnyCommandSpec, GroupSpec } from '../../producers/cli/command-spec.js';
import { rootGroup } from '../../producers/cli/run-cli.js';
import {
  apiErrorOf,
  runCliInProcess,
  spawnCli,
  type CliResult,
} from '../helpers/cli-runner.js';
import { startSystem, type RunningSystem } from '../helpers/system.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';
import { unusedLoopbackPort } from '../helpers/unused-port.js';

const TOKEN = 'cli-test-token-0123456789';

/** Message that the CLI prints when a connection kept it alive after the command. */
const WATCHDOG_WARNING = 'connections still open';

let env: TestEnv;
let system: RunningSystem;
let workDir: string;

beforeAll(async () => {
  env = await createTestEnv();
  // No workers: dispatch jobs stay in Redis for the publish test to find.
  system = await startSystem(env, {
    overrides: { API_TOKEN: TOKEN },
    dispatch: false,
    delivery: false,
  });
  workDir = await mkdtemp(path.join(tmpdir(), 'webhooks-cli-test-'));
});

afterAll(async () => {
  await system?.stop();
  await env?.dispose();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

function apiEnv(): Record<string, string> {
  return { WEBHOOKS_API_URL: system.api.url, API_TOKEN: TOKEN };
}

/** Runs `node bin/webhooks.mjs ...args` against the test's API. */
function runCli(
  args: string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return spawnCli(args, { env: { ...apiEnv(), ...options.env }, input: options.input, cwd: workDir });
}

/** Runs the CLI in this process against the test's API. */
function cli(
  args: string[],
  options: { input?: string; env?: Record<string, string | undefined> } = {},
): Promise<CliResult> {
  return runCliInProcess(args, { env: { ...apiEnv(), ...options.env }, input: options.input });
}

/** Runs the CLI in this process, expects exit status 0 and returns the parsed JSON output. */
async function cliJson(args: string[], options: { input?: string } = {}) {
  const result = await cli(args, options);
  expect(result.stderr, args.join(' ')).toBe('');
  expect(result.status, args.join(' ')).toBe(0);
  return JSON.parse(result.stdout);
}

async function countRows(table: 'webhook_event' | 'webhook_rx'): Promise<number> {
  const { rows } = await env.pool.query(`SELECT count(*)::int AS count FROM ${table}`);
  return rows[0].count;
}

async function storedEvent(id: string) {
  const { rows } = await env.pool.query(
    'SELECT event_class, event FROM webhook_event WHERE id = $1',
    [id],
  );
  return rows[0] as { event_class: string; event: string } | undefined;
}

describe('webhooks publish', () => {
  test('publishes data from stdin', async () => {
    const result = await runCli(['publish', 'cli.stdin.created'], {
      input: '{"ref": "main", "size": 3}',
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const output = JSON.parse(result.stdout);
    expect(Object.keys(output).sort()).toEqual(['created', 'event_class', 'id', 'time_created']);
    expect(output.event_class).toBe('cli.stdin.created');
    expect(output.created).toBe(true);

    const row = await storedEvent(output.id);
    expect(row?.event_class).toBe('cli.stdin.created');
    expect(JSON.parse(row!.event)).toEqual({ ref: 'main', size: 3 });

    const redis = new Redis(env.redisUrl);
    try {
      expect(await redis.exists(`${env.queuePrefix}:dispatch:${output.id}`)).toBe(1);
    } finally {
      redis.disconnect();
    }
  });

  test('publishes data from a file', async () => {
    const file = path.join(workDir, 'event.json');
    // Pretty-printed with a byte order mark, as some editors save it.
    await writeFile(file, `\uFEFF${JSON.stringify({ items: [1, 2], ok: true }, null, 2)}\n`);
    const output = await cliJson(['publish', 'cli.file.created', '--file', file]);
    expect(output.created).toBe(true);
    const row = await storedEvent(output.id);
    expect(JSON.parse(row!.event)).toEqual({ items: [1, 2], ok: true });
  });

  test('same --id stores one event', async () => {
    const id = 'c3a1f0e2-7b4d-4e5f-8a9b-0c1d2e3f4a5b';
    const first = await cliJson(['publish', 'cli.retry.sent', '--id', id], { input: '{"n": 1}' });
    const second = await cliJson(['publish', 'cli.retry.sent', '--id', id], { input: '{"n": 1}' });
    expect(first.id).toBe(id);
    expect(first.created).toBe(true);
    expect(second.id).toBe(id);
    expect(second.created).toBe(false);
    expect(second.time_created).toBe(first.time_created);
    const { rows } = await env.pool.query('SELECT count(*)::int AS count FROM webhook_event WHERE id = $1', [id]);
    expect(rows[0].count).toBe(1);

    const changed = await cli(['publish', 'cli.retry.sent', '--id', id], { input: '{"n": 2}' });
    expect(changed.status).toBe(1);
    expect(changed.stdout).toBe('');
    const error = apiErrorOf(changed);
    expect(error.code).toBe('conflict');
    expect(error.message).toMatch(/already published/);
    expect(error.request_id).toMatch(/\S/);
    expect(JSON.parse((await storedEvent(id))!.event)).toEqual({ n: 1 });
  });

  test('invalid class exits 2 and stores nothing', async () => {
    const before = await countRows('webhook_event');
    const result = await cli(['publish', 'cli..bad'], { input: '{}' });
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    const error = apiErrorOf(result);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/^event_class: /);
    expect(await countRows('webhook_event')).toBe(before);
  });

  test('unreadable input exits 2 and stores nothing', async () => {
    const before = await countRows('webhook_event');
    const cases: { args: string[]; input: string; message: RegExp }[] = [
      { args: ['publish', 'cli.bad.json'], input: '{"a": ', message: /^error: data: stdin is not valid JSON/ },
      { args: ['publish', 'cli.bad.empty'], input: '', message: /^error: data: stdin is empty/ },
      {
        args: ['publish', 'cli.bad.file', '--file', path.join(workDir, 'missing.json')],
        input: '',
        message: /^error: --file: cannot read .*missing\.json/,
      },
    ];
    for (const { args, input, message } of cases) {
      const result = await cli(args, { input });
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
    expect(await countRows('webhook_event')).toBe(before);
  });

  test('input the API rejects exits 2', async () => {
    const before = await countRows('webhook_event');
    const cases: { args: string[]; input: string; message: RegExp }[] = [
      { args: ['publish', 'cli.bad.id', '--id', 'not-a-uuid'], input: '{}', message: /^id: must be a UUID/ },
      {
        args: ['publish', 'cli.bad.integer'],
        input: '{"big": 123456789012345678901}',
        message: /^data\.big: must be an integer from .* to be kept exactly/,
      },
    ];
    for (const { args, input, message } of cases) {
      const result = await cli(args, { input });
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stdout, args.join(' ')).toBe('');
      const error = apiErrorOf(result);
      expect(error.code, args.join(' ')).toBe('invalid_request');
      expect(error.message, args.join(' ')).toMatch(message);
    }
    expect(await countRows('webhook_event')).toBe(before);
  });
});

describe('webhooks events', () => {
  test('get and deliveries of an event', async () => {
    const published = await cliJson(['publish', 'cli.events.shown'], { input: '[1, "two"]' });
    const event = await cliJson(['events', 'get', published.id]);
    expect(event.id).toBe(published.id);
    expect(event.event_class).toBe('cli.events.shown');
    expect(event.data).toEqual([1, 'two']);

    const deliveries = await cliJson(['events', 'deliveries', published.id]);
    expect(deliveries).toEqual({ deliveries: [] });
  });

  test('unknown event exits 1', async () => {
    const result = await cli(['events', 'get', '5d7e9f10-2a3b-4c5d-8e6f-7a8b9c0d1e2f']);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(apiErrorOf(result)).toMatchObject({
      code: 'not_found',
      message: 'event "5d7e9f10-2a3b-4c5d-8e6f-7a8b9c0d1e2f" was not found',
    });
  });

  test('invalid event id exits 2', async () => {
    const result = await cli(['events', 'deliveries', 'nope']);
    expect(result.status).toBe(2);
    expect(apiErrorOf(result)).toMatchObject({ code: 'invalid_request' });
    expect(apiErrorOf(result).message).toMatch(/^id: must be a UUID/);
  });

  test('dot segment id exits 2 without a request', async () => {
    // "/v1/events/../deliveries" would resolve to "/v1/deliveries".
    const result = await cli(['events', 'deliveries', '..']);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('error: listEventDeliveries: params.id must not be "." or "..", got ".."\n');
  });
});

describe('webhooks receivers', () => {
  test('create, list, get and delete', async () => {
    const created = await cliJson([
      'receivers', 'create',
      '--name', 'cli-orders',
      '--endpoint', 'http://127.0.0.1:9/hook',
      '--subscribe', 'orders.**',
      '--subscribe', 'billing.invoice.paid',
      '--description', 'order service',
    ]);
    expect(created.name).toBe('cli-orders');
    expect(created.subscriptions).toEqual(['billing.invoice.paid', 'orders.**']);
    expect(created.description).toBe('order service');
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(created.secrets).toHaveLength(1);

    const listed = await cliJson(['receivers', 'list']);
    expect(listed.receivers.map((r: { id: string }) => r.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(created.secret);

    const byName = await cliJson(['receivers', 'get', 'cli-orders']);
    expect(byName.id).toBe(created.id);

    const deleted = await cliJson(['receivers', 'delete', 'cli-orders']);
    expect(deleted).toEqual({ receiver: 'cli-orders', deleted: true });

    const after = await cliJson(['receivers', 'list']);
    expect(after.receivers.map((r: { id: string }) => r.id)).not.toContain(created.id);
    const { rows } = await env.pool.query(
      'SELECT time_deleted FROM webhook_rx WHERE id = $1',
      [created.id],
    );
    expect(rows[0].time_deleted).not.toBeNull();

    const again = await cli(['receivers', 'delete', 'cli-orders']);
    expect(again.status).toBe(1);
    expect(apiErrorOf(again)).toMatchObject({
      code: 'not_found',
      message: 'receiver "cli-orders" was not found',
    });
  });

  test('list pages with --limit and --after', async () => {
    for (const name of ['cli-page-a', 'cli-page-b', 'cli-page-c']) {
      await cliJson([
        'receivers', 'create', '--name', name,
        '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'page.*',
      ]);
    }
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 20; page++) {
      const args = ['receivers', 'list', '--limit', '1'];
      if (after !== null) args.push('--after', after);
      const output = await cliJson(args);
      expect(output.receivers.length).toBeLessThanOrEqual(1);
      seen.push(...output.receivers.map((r: { name: string }) => r.name));
      after = output.next_after;
      if (after === null) break;
    }
    expect(after).toBeNull();
    expect(seen).toEqual(expect.arrayContaining(['cli-page-a', 'cli-page-b', 'cli-page-c']));

    const invalid = await cli(['receivers', 'list', '--limit', '0']);
    expect(invalid.status).toBe(2);
    expect(apiErrorOf(invalid).message).toMatch(/^limit: must be a whole number from 1 to 1000/);
  });

  test('update replaces subscriptions', async () => {
    await cliJson([
      'receivers', 'create', '--name', 'cli-update',
      '--endpoint', 'http://127.0.0.1:9/a', '--subscribe', 'old.*',
    ]);
    const updated = await cliJson([
      'receivers', 'update', 'cli-update',
      '--endpoint', 'http://127.0.0.1:9/b',
      '--subscribe', 'new.*', '--subscribe', 'new.**',
    ]);
    expect(updated.endpoint).toBe('http://127.0.0.1:9/b');
    expect(updated.subscriptions).toEqual(['new.*', 'new.**']);

    const empty = await cli(['receivers', 'update', 'cli-update']);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toMatch(/nothing to update/);
  });

  test('ordering and limits set and cleared', async () => {
    const created = await cliJson([
      'receivers', 'create', '--name', 'cli-limits',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'limits.*',
      '--ordered', 'true', '--rate-limit', '20', '--max-in-flight', '2',
    ]);
    expect(created).toMatchObject({ ordered: true, rate_limit_per_second: 20, max_in_flight: 2 });

    const updated = await cliJson([
      'receivers', 'update', 'cli-limits', '--ordered', 'false', '--rate-limit', 'none',
    ]);
    expect(updated).toMatchObject({ ordered: false, rate_limit_per_second: null, max_in_flight: 2 });

    const invalid = await cli(['receivers', 'update', 'cli-limits', '--max-in-flight', 'many']);
    expect(invalid.status).toBe(2);
    expect(invalid.stderr).toMatch(/--max-in-flight: must be a whole number or "none", got "many"/);
    const zero = await cli(['receivers', 'update', 'cli-limits', '--rate-limit', '0']);
    expect(zero.status).toBe(2);
    expect(apiErrorOf(zero).message).toMatch(/rate_limit_per_second/);
    const stored = await cliJson(['receivers', 'get', 'cli-limits']);
    expect(stored).toMatchObject({ ordered: false, rate_limit_per_second: null, max_in_flight: 2 });
  });

  test('secrets add, list and delete', async () => {
    const created = await cliJson([
      'receivers', 'create', '--name', 'cli-rotate',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'rotate.*',
    ]);
    const oldSecretId = created.secrets[0].id;

    const secretFile = path.join(workDir, 'secret.txt');
    const secretValue = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    await writeFile(secretFile, `${secretValue}\n`);
    const added = await cliJson(['receivers', 'secrets', 'add', 'cli-rotate', '--secret-file', secretFile]);
    expect(added.secret).toBe(secretValue);

    const generated = await cliJson(['receivers', 'secrets', 'add', 'cli-rotate']);
    expect(generated.secret).toMatch(/^whsec_/);

    const listed = await cliJson(['receivers', 'secrets', 'list', 'cli-rotate']);
    expect(listed.secrets.map((s: { id: string }) => s.id)).toEqual([oldSecretId, added.id, generated.id]);

    const deleted = await cliJson(['receivers', 'secrets', 'delete', 'cli-rotate', oldSecretId]);
    expect(deleted).toEqual({ id: oldSecretId, deleted: true });
    await cliJson(['receivers', 'secrets', 'delete', 'cli-rotate', generated.id]);

    const last = await cli(['receivers', 'secrets', 'delete', 'cli-rotate', added.id]);
    expect(last.status).toBe(1);
    expect(apiErrorOf(last).code).toBe('conflict');
    expect(apiErrorOf(last).message).toMatch(/is the last secret/);
  });

  test('bad endpoint exits 2 naming endpoint', async () => {
    const before = await countRows('webhook_rx');
    const result = await cli([
      'receivers', 'create', '--name', 'cli-bad-endpoint',
      '--endpoint', 'ftp://127.0.0.1/hook', '--subscribe', 'a.b',
    ]);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(apiErrorOf(result).message).toMatch(/^endpoint: /);
    expect(await countRows('webhook_rx')).toBe(before);
  });

  test('bad pattern exits 2 naming subscriptions', async () => {
    const before = await countRows('webhook_rx');
    const result = await cli([
      'receivers', 'create', '--name', 'cli-bad-pattern',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'a.b', '--subscribe', 'foo*',
    ]);
    expect(result.status).toBe(2);
    expect(apiErrorOf(result).message).toMatch(/^subscriptions\[1\]: .*"foo\*"/);
    expect(await countRows('webhook_rx')).toBe(before);
  });

  test('duplicate name exits 1', async () => {
    const args = [
      'receivers', 'create', '--name', 'cli-twice',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'a.b',
    ];
    await cliJson(args);
    const result = await cli(args);
    expect(result.status).toBe(1);
    expect(apiErrorOf(result)).toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/^a receiver named "cli-twice" already exists/),
    });
  });
});

describe('webhooks connection settings', () => {
  test('unreachable API names the URL', async () => {
    const port = await unusedLoopbackPort();
    const url = `http://127.0.0.1:${port}`;
    const result = await runCli(['receivers', 'list'], { env: { WEBHOOKS_API_URL: url } });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `error: cannot connect to the API at ${url} (from WEBHOOKS_API_URL): connection refused; ` +
        'start the API (npm run start:api) or set the URL with --api-url or WEBHOOKS_API_URL\n',
    );
  });

  test('silent API times out', async () => {
    // A loopback server that accepts connections and never responds.
    const sockets: Socket[] = [];
    const server: TcpServer = createTcpServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const result = await cli(['receivers', 'list'], {
        env: { WEBHOOKS_API_URL: `http://127.0.0.1:${port}`, WEBHOOKS_TIMEOUT_MS: '300' },
      });
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(
        `error: the API at http://127.0.0.1:${port} (from WEBHOOKS_API_URL) sent no response within 300 ms; ` +
          "raise WEBHOOKS_TIMEOUT_MS or check the API's log\n",
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('error without error object exits 1', async () => {
    // A loopback stand-in for a proxy that responds with 502 and a text body.
    const server: HttpServer = createHttpServer((_request, response) => {
      response.writeHead(502, { 'content-type': 'text/plain' }).end('Bad Gateway');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const result = await cli(['receivers', 'list'], { env: { WEBHOOKS_API_URL: `http://127.0.0.1:${port}` } });
      expect(result.status).toBe(1);
      const error = apiErrorOf(result);
      expect(error.code).toBe('http_error');
      expect(error.message).toMatch(/HTTP 502 without an error object: "?Bad Gateway/);
      expect(error.request_id).toBeNull();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('process exits by itself after a request', async () => {
    const result = await runCli(['receivers', 'list']);
    expect(result.stderr).not.toContain(WATCHDOG_WARNING);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toHaveProperty('receivers');
  });

  test('wrong token exits 2 and writes nothing', async () => {
    const before = await countRows('webhook_rx');
    const result = await cli(
      ['receivers', 'create', '--name', 'cli-no-token', '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'a.b'],
      { env: { API_TOKEN: 'wrong-token' } },
    );
    expect(result.status).toBe(2);
    expect(apiErrorOf(result).code).toBe('unauthorized');
    const missing = await cli(['receivers', 'list'], { env: { API_TOKEN: undefined } });
    expect(missing.status).toBe(2);
    expect(apiErrorOf(missing).code).toBe('unauthorized');
    expect(await countRows('webhook_rx')).toBe(before);
  });

  test('flags override the environment', async () => {
    const port = await unusedLoopbackPort();
    const wrong = { WEBHOOKS_API_URL: `http://127.0.0.1:${port}`, API_TOKEN: 'wrong-token' };
    const before = await cli(['--api-url', system.api.url, '--token', TOKEN, 'receivers', 'list'], { env: wrong });
    expect(before.stderr).toBe('');
    expect(before.status).toBe(0);
    const after = await cli(['receivers', 'list', `--api-url=${system.api.url}`, `--token=${TOKEN}`], { env: wrong });
    expect(after.stderr).toBe('');
    expect(after.status).toBe(0);

    const twice = await cli(['--token', TOKEN, 'receivers', 'list', '--token', TOKEN]);
    expect(twice.status).toBe(2);
    expect(twice.stderr).toMatch(/^error: option --token was given more than once/);
  });

  test('API URL with a path prefix', async () => {
    // The client keeps the prefix, so a URL without a proxy in front gets 404.
    const result = await cli(['receivers', 'list'], { env: { WEBHOOKS_API_URL: `${system.api.url}/prefix` } });
    expect(result.status).toBe(1);
    expect(apiErrorOf(result).code).toBe('not_found');
  });

  test('invalid settings exit 2', async () => {
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{ WEBHOOKS_API_URL: 'not a url' }, [], /^error: invalid configuration: WEBHOOKS_API_URL: must be an http or https URL/],
      [{}, ['--api-url', 'ftp://127.0.0.1/'], /^error: invalid configuration: --api-url: must be an http or https URL/],
      [{}, ['--api-url', 'http://user:pw@127.0.0.1:3000'], /^error: invalid configuration: --api-url: must not contain credentials/],
      [{ WEBHOOKS_TIMEOUT_MS: '0' }, [], /^error: invalid configuration: WEBHOOKS_TIMEOUT_MS: must be a whole number/],
    ];
    for (const [settings, flags, message] of cases) {
      const result = await cli([...flags, 'receivers', 'list'], { env: settings });
      const label = JSON.stringify({ settings, flags });
      expect(result.status, label).toBe(2);
      expect(result.stdout, label).toBe('');
      expect(result.stderr, label).toMatch(message);
    }
  });
});

describe('webhooks usage', () => {
  test('unknown command exits 2', async () => {
    const result = await runCli(['frobnicate']);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/unknown command "frobnicate"/);
    expect(result.stderr).toMatch(/webhooks --help/);

    const nested = await cli(['receivers', 'rename']);
    expect(nested.status).toBe(2);
    expect(nested.stderr).toMatch(/unknown command "rename" for "webhooks receivers"/);
  });

  test('unknown option exits 2', async () => {
    const before = await countRows('webhook_rx');
    const result = await cli([
      'receivers', 'create', '--name', 'cli-unknown-option',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'a.b', '--colour', 'red',
    ]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unknown option "--colour" for "webhooks receivers create"/);
    expect(await countRows('webhook_rx')).toBe(before);
  });

  test('missing required option exits 2', async () => {
    const result = await cli(['receivers', 'create', '--name', 'cli-missing']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/missing required option --endpoint/);
  });

  test('empty argument exits 2', async () => {
    const result = await cli(['receivers', 'get', '']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^error: argument <receiver> is empty/);
  });

  test('help on every level', async () => {
    const topLevel = await runCli(['--help']);
    expect(topLevel.status).toBe(0);
    expect(topLevel.stderr).toBe('');
    expect(topLevel.stdout).toMatch(/^Usage: webhooks <command>/);
    expect(topLevel.stdout).toMatch(/WEBHOOKS_API_URL +Base URL of the API/);
    expect(topLevel.stdout).toMatch(/--api-url URL +Base URL of the API/);

    // Every group and command of the tree, walked from the root. They run in
    // this process: a child process per level adds seconds each on a loaded
    // machine.
    const levels: { path: string[]; node: AnyCommandSpec | GroupSpec }[] = [];
    const walk = (group: GroupSpec, prefix: string[]) => {
      for (const child of group.children) {
        levels.push({ path: [...prefix, child.name], node: child });
        if (child.kind === 'group') walk(child, [...prefix, child.name]);
      }
    };
    walk(rootGroup, []);
    expect(levels.length).toBeGreaterThan(20);
    for (const { path: level, node } of levels) {
      const result = await cli([...level, '--help']);
      const label = `webhooks ${level.join(' ')} --help`;
      expect(result.status, label).toBe(0);
      expect(result.stderr, label).toBe('');
      expect(result.stdout, label).toMatch(new RegExp(`^Usage: webhooks ${level.join(' ')} `));
      expect(result.stdout, label).toMatch(/-h, --help +Print this help and exit/);
      if (node.kind === 'command') {
        expect(result.stdout, label).toMatch(new RegExp(`^Calls: [A-Z]+ /v1/\\S* \\(${node.operationId}\\)$`, 'm'));
        expect(result.stdout, label).toMatch(/--token TOKEN +Bearer token/);
      }
    }
    const publishHelp = await cli(['publish', '--help']);
    expect(publishHelp.stdout).toMatch(/--file FILE +Read the event data from FILE/);
    expect(publishHelp.stdout).toMatch(/--id UUID +Event id/);
  });

  test('openapi prints the document', async () => {
    const document = await cliJson(['openapi']);
    expect(document.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(document.paths)).toContain('/v1/receivers');
  });
});
