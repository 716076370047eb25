import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli as runCliMain } from '../../producers/cli/run-cli.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const SHIM = fileURLToPath(new URL('../../bin/webhooks.mjs', import.meta.url));

/** Message that the CLI prints when a connection kept it alive after the command. */
const WATCHDOG_WARNING = 'connections still open';

let env: TestEnv;
let workDir: string;

beforeAll(async () => {
  env = await createTestEnv();
  workDir = await mkdtemp(path.join(tmpdir(), 'webhooks-cli-test-'));
});

afterAll(async () => {
  await env?.dispose();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/webhooks.mjs ...args` against the test database and Redis prefix. */
function runCli(
  args: string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SHIM, ...args], {
      cwd: workDir,
      env: {
        ...process.env,
        DATABASE_URL: env.databaseUrl,
        REDIS_URL: env.redisUrl,
        QUEUE_PREFIX: env.queuePrefix,
        ALLOWED_PRIVATE_NETWORKS: '127.0.0.0/8,::1/128',
        LOG_LEVEL: 'warn',
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Runs the CLI's main function in this process with collected output streams. */
async function runCliInProcess(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const collect = (append: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        append(chunk.toString('utf8'));
        callback();
      },
    });
  const status = await runCliMain(args, {
    stdin: Readable.from([]),
    stdout: collect((text) => (stdout += text)),
    stderr: collect((text) => (stderr += text)),
    env: {},
  });
  return { status, stdout, stderr };
}

/** Runs the CLI, expects exit status 0 and returns the parsed JSON output. */
async function runJson(args: string[], options: { input?: string } = {}) {
  const result = await runCli(args, options);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
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

/** Returns a loopback port whose listener was closed again, so connecting to it is refused. */
async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

describe('webhooks publish', () => {
  test('publishes data from stdin', async () => {
    const output = await runJson(['publish', 'cli.stdin.created'], {
      input: '{"ref": "main", "size": 3}',
    });
    expect(output.event_class).toBe('cli.stdin.created');
    expect(output.created).toBe(true);
    expect(output.enqueued).toBe(true);

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
    const output = await runJson(['publish', 'cli.file.created', '--file', file]);
    expect(output.created).toBe(true);
    const row = await storedEvent(output.id);
    expect(JSON.parse(row!.event)).toEqual({ items: [1, 2], ok: true });
  });

  test('same --id stores one event', async () => {
    const id = 'c3a1f0e2-7b4d-4e5f-8a9b-0c1d2e3f4a5b';
    const first = await runJson(['publish', 'cli.retry.sent', '--id', id], { input: '{"n": 1}' });
    const second = await runJson(['publish', 'cli.retry.sent', '--id', id], { input: '{"n": 1}' });
    expect(first.id).toBe(id);
    expect(first.created).toBe(true);
    expect(second.id).toBe(id);
    expect(second.created).toBe(false);
    expect(second.time_created).toBe(first.time_created);
    const { rows } = await env.pool.query('SELECT count(*)::int AS count FROM webhook_event WHERE id = $1', [id]);
    expect(rows[0].count).toBe(1);

    const changed = await runCli(['publish', 'cli.retry.sent', '--id', id], { input: '{"n": 2}' });
    expect(changed.status).toBe(1);
    expect(changed.stdout).toBe('');
    expect(changed.stderr).toMatch(/^error: .*already published/);
    expect(JSON.parse((await storedEvent(id))!.event)).toEqual({ n: 1 });
  });

  test('invalid class exits 2 and stores nothing', async () => {
    const before = await countRows('webhook_event');
    const result = await runCli(['publish', 'cli..bad'], { input: '{}' });
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^error: event-class: /);
    expect(await countRows('webhook_event')).toBe(before);
  });

  test('invalid input exits 2 and stores nothing', async () => {
    const before = await countRows('webhook_event');
    const cases: { args: string[]; input: string; message: RegExp }[] = [
      { args: ['publish', 'cli.bad.json'], input: '{"a": ', message: /data: stdin is not valid JSON/ },
      { args: ['publish', 'cli.bad.empty'], input: '', message: /data: stdin is empty/ },
      {
        args: ['publish', 'cli.bad.file', '--file', path.join(workDir, 'missing.json')],
        input: '',
        message: /--file: cannot read .*missing\.json/,
      },
      { args: ['publish', 'cli.bad.id', '--id', 'not-a-uuid'], input: '{}', message: /--id: must be a UUID/ },
      {
        args: ['publish', 'cli.bad.integer'],
        input: '{"big": 123456789012345678901}',
        message: /data\.big: must be an integer from .* to be kept exactly/,
      },
    ];
    for (const { args, input, message } of cases) {
      const result = await runCli(args, { input });
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
    expect(await countRows('webhook_event')).toBe(before);
  });

  test('Redis down still stores the event', async () => {
    const port = await closedLoopbackPort();
    const result = await runCli(['publish', 'cli.offline.created'], {
      input: '{"offline": true}',
      env: { REDIS_URL: `redis://127.0.0.1:${port}` },
    });
    expect(result.status).toBe(0);
    expect(result.stderr).not.toContain(WATCHDOG_WARNING);
    const output = JSON.parse(result.stdout);
    expect(output.created).toBe(true);
    expect(output.enqueued).toBe(false);
    expect(await storedEvent(output.id)).toBeDefined();
  });
});

describe('webhooks events', () => {
  test('get and deliveries of an event', async () => {
    const published = await runJson(['publish', 'cli.events.shown'], { input: '[1, "two"]' });
    const event = await runJson(['events', 'get', published.id]);
    expect(event.id).toBe(published.id);
    expect(event.event_class).toBe('cli.events.shown');
    expect(event.data).toEqual([1, 'two']);

    const deliveries = await runJson(['events', 'deliveries', published.id]);
    expect(deliveries).toEqual({ deliveries: [] });
  });

  test('unknown event exits 1', async () => {
    const result = await runCli(['events', 'get', '5d7e9f10-2a3b-4c5d-8e6f-7a8b9c0d1e2f']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^error: event "5d7e9f10-2a3b-4c5d-8e6f-7a8b9c0d1e2f" was not found/);
  });
});

describe('webhooks receivers', () => {
  test('create, list, get and delete', async () => {
    const created = await runJson([
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

    const listed = await runJson(['receivers', 'list']);
    expect(listed.receivers.map((r: { id: string }) => r.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(created.secret);

    const byName = await runJson(['receivers', 'get', 'cli-orders']);
    expect(byName.id).toBe(created.id);

    const deleted = await runJson(['receivers', 'delete', 'cli-orders']);
    expect(deleted).toEqual({ id: created.id, name: 'cli-orders', deleted: true });

    const after = await runJson(['receivers', 'list']);
    expect(after.receivers.map((r: { id: string }) => r.id)).not.toContain(created.id);
    const { rows } = await env.pool.query(
      'SELECT time_deleted FROM webhook_rx WHERE id = $1',
      [created.id],
    );
    expect(rows[0].time_deleted).not.toBeNull();

    const again = await runCli(['receivers', 'delete', 'cli-orders']);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^error: receiver "cli-orders" was not found/);
  });

  test('update replaces subscriptions', async () => {
    await runJson([
      'receivers', 'create', '--name', 'cli-update',
      '--endpoint', 'http://127.0.0.1:9/a', '--subscribe', 'old.*',
    ]);
    const updated = await runJson([
      'receivers', 'update', 'cli-update',
      '--endpoint', 'http://127.0.0.1:9/b',
      '--subscribe', 'new.*', '--subscribe', 'new.**',
    ]);
    expect(updated.endpoint).toBe('http://127.0.0.1:9/b');
    expect(updated.subscriptions).toEqual(['new.*', 'new.**']);

    const empty = await runCli(['receivers', 'update', 'cli-update']);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toMatch(/nothing to update/);
  });

  test('secrets add, list and delete', async () => {
    const created = await runJson([
      'receivers', 'create', '--name', 'cli-rotate',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'rotate.*',
    ]);
    const oldSecretId = created.secrets[0].id;

    const secretFile = path.join(workDir, 'secret.txt');
    const secretValue = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    await writeFile(secretFile, `${secretValue}\n`);
    const added = await runJson(['receivers', 'secrets', 'add', 'cli-rotate', '--secret-file', secretFile]);
    expect(added.secret).toBe(secretValue);

    const listed = await runJson(['receivers', 'secrets', 'list', 'cli-rotate']);
    expect(listed.secrets.map((s: { id: string }) => s.id)).toEqual([oldSecretId, added.id]);

    const deleted = await runJson(['receivers', 'secrets', 'delete', 'cli-rotate', oldSecretId]);
    expect(deleted).toEqual({ id: oldSecretId, deleted: true });

    const last = await runCli(['receivers', 'secrets', 'delete', 'cli-rotate', added.id]);
    expect(last.status).toBe(1);
    expect(last.stderr).toMatch(/is the last secret/);
  });

  test('bad endpoint exits 2 naming endpoint', async () => {
    const before = await countRows('webhook_rx');
    const result = await runCli([
      'receivers', 'create', '--name', 'cli-bad-endpoint',
      '--endpoint', 'ftp://127.0.0.1/hook', '--subscribe', 'a.b',
    ]);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^error: endpoint: /);
    expect(await countRows('webhook_rx')).toBe(before);
  });

  test('bad pattern exits 2 naming --subscribe', async () => {
    const before = await countRows('webhook_rx');
    const result = await runCli([
      'receivers', 'create', '--name', 'cli-bad-pattern',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'foo*',
    ]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^error: --subscribe: "foo\*" is not a valid pattern/);
    expect(await countRows('webhook_rx')).toBe(before);
  });

  test('duplicate name exits 1', async () => {
    const args = [
      'receivers', 'create', '--name', 'cli-twice',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'a.b',
    ];
    await runJson(args);
    const result = await runCli(args);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^error: a receiver named "cli-twice" already exists/);
  });
});

describe('webhooks usage', () => {
  test('unknown command exits 2', async () => {
    const result = await runCli(['frobnicate']);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/unknown command "frobnicate"/);
    expect(result.stderr).toMatch(/webhooks --help/);

    const nested = await runCli(['receivers', 'rename']);
    expect(nested.status).toBe(2);
    expect(nested.stderr).toMatch(/unknown command "rename" for "webhooks receivers"/);
  });

  test('unknown option exits 2', async () => {
    const before = await countRows('webhook_rx');
    const result = await runCli([
      'receivers', 'create', '--name', 'cli-unknown-option',
      '--endpoint', 'http://127.0.0.1:9/hook', '--subscribe', 'a.b', '--colour', 'red',
    ]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unknown option "--colour" for "webhooks receivers create"/);
    expect(await countRows('webhook_rx')).toBe(before);
  });

  test('missing required option exits 2', async () => {
    const result = await runCli(['receivers', 'create', '--name', 'cli-missing']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/missing required option --endpoint/);
  });

  test('help on every level', async () => {
    const topLevel = await runCli(['--help']);
    expect(topLevel.status).toBe(0);
    expect(topLevel.stderr).toBe('');
    expect(topLevel.stdout).toMatch(/^Usage: webhooks <command>/);

    // The other levels run in this process: a child process per level adds
    // seconds of start-up each on a loaded machine.
    const levels = [
      ['publish'],
      ['receivers'],
      ['receivers', 'create'],
      ['receivers', 'list'],
      ['receivers', 'get'],
      ['receivers', 'update'],
      ['receivers', 'delete'],
      ['receivers', 'secrets'],
      ['receivers', 'secrets', 'add'],
      ['receivers', 'secrets', 'list'],
      ['receivers', 'secrets', 'delete'],
      ['events'],
      ['events', 'get'],
      ['events', 'deliveries'],
    ];
    for (const level of levels) {
      const result = await runCliInProcess([...level, '--help']);
      const label = `webhooks ${level.join(' ')} --help`;
      expect(result.status, label).toBe(0);
      expect(result.stderr, label).toBe('');
      expect(result.stdout, label).toMatch(new RegExp(`^Usage: webhooks ${level.join(' ')} `));
      expect(result.stdout, label).toMatch(/-h, --help +Print this help and exit/);
    }
    const publishHelp = await runCliInProcess(['publish', '--help']);
    expect(publishHelp.stdout).toMatch(/--file FILE +Read the event data from FILE/);
    expect(publishHelp.stdout).toMatch(/--id UUID +Event id/);
  });

  test('invalid configuration exits 2', async () => {
    const result = await runCli(['receivers', 'list'], { env: { DATABASE_URL: 'mysql://x/y' } });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^error: invalid configuration: DATABASE_URL: /);
  });
});
