import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { apiErrorOf, runCliInProcess, spawnCli, type CliResult } from '../helpers/cli-runner.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { waitFor } from '../helpers/test-env.js';

describe('webhooks deliveries, resends and probes', () => {
  const fixture = useSystem();
  let harness: ReceiverHarness;
  let rxId: string;
  let failedIds: string[];
  let eventIds: string[];

  function cliEnv(): Record<string, string> {
    return { WEBHOOKS_API_URL: fixture.system.api.url };
  }

  /** Runs the CLI's main function in this process against the fixture's API. */
  function cli(args: string[]): Promise<CliResult> {
    return runCliInProcess(args, { env: cliEnv() });
  }

  async function cliJson(args: string[]) {
    const result = await cli(args);
    expect(result.stderr, args.join(' ')).toBe('');
    expect(result.status, args.join(' ')).toBe(0);
    return JSON.parse(result.stdout);
  }

  async function statesOf(ids: string[]): Promise<string[]> {
    const { rows } = await fixture.env.pool.query<{ state: string }>(
      `SELECT state::text FROM webhook_delivery WHERE id = ANY($1::uuid[]) ORDER BY id`,
      [ids],
    );
    return rows.map((row) => row.state);
  }

  beforeAll(async () => {
    harness = await new ReceiverHarness(() => ({ status: 500 })).start();
    const rx = await createReceiver(fixture.system, {
      name: 'cli-rx',
      endpoint: harness.url(),
      subscriptions: ['cli.*'],
    });
    rxId = rx.id;
    eventIds = [];
    for (let index = 0; index < 5; index++) {
      eventIds.push(await publishEvent(fixture.system, 'cli.created', { index }));
    }
    failedIds = await waitFor(
      async () => {
        const { rows } = await fixture.env.pool.query<{ id: string }>(
          `SELECT id::text FROM webhook_delivery WHERE rx_id = $1 AND state = 'failed'`,
          [rxId],
        );
        return rows.length === 5 ? rows.map((row) => row.id) : undefined;
      },
      { timeoutMs: 20_000, message: 'five failed deliveries' },
    );
  });

  afterAll(async () => {
    await harness?.stop();
  });

  test('help lists the commands', async () => {
    const root = await cli(['--help']);
    expect(root.stdout).toMatch(/^\s+deliveries\s+List deliveries/m);
    expect(root.stdout).toMatch(/^\s+resends\s+Start and follow bulk resends/m);
    const receivers = await cli(['receivers', '--help']);
    expect(receivers.stdout).toMatch(/^\s+probe\s+Send a test event to a receiver/m);
    const events = await cli(['events', '--help']);
    expect(events.stdout).toMatch(/^\s+resend\s+Send an event to one receiver again/m);
    const list = await cli(['deliveries', 'list', '--help']);
    expect(list.stdout).toContain('--state STATE');
    expect(list.stdout).toContain('--after CURSOR');
  });

  test('deliveries list filters and pages', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const args = ['deliveries', 'list', '--receiver', 'cli-rx', '--state', 'failed', '--limit', '2'];
      if (after !== null) args.push('--after', after);
      const output = await cliJson(args);
      seen.push(...output.deliveries.map((delivery: { id: string }) => delivery.id));
      after = output.next_after;
      if (after === null) break;
    }
    expect(after).toBeNull();
    expect([...seen].sort()).toEqual([...failedIds].sort());
    const none = await cliJson(['deliveries', 'list', '--receiver', rxId, '--state', 'delivered']);
    expect(none).toEqual({ deliveries: [], next_after: null });
  });

  test('deliveries show prints attempts', async () => {
    const output = await cliJson(['deliveries', 'show', failedIds[0]!]);
    expect(output.id).toBe(failedIds[0]);
    expect(output.state).toBe('failed');
    expect(output.attempt_log.map((attempt: { response_status: number }) => attempt.response_status)).toEqual([
      500, 500, 500,
    ]);
  });

  test('invalid options exit 2', async () => {
    const batches = await fixture.env.pool.query('SELECT count(*)::int AS n FROM webhook_resend_batch');
    const cases: [string[], RegExp][] = [
      [['deliveries', 'list', '--state', 'lost'], /^state: must be one of .*pending.*delivered.*failed/],
      [['deliveries', 'list', '--since', 'today'], /^since: must be a timestamp with a time zone/],
      [['deliveries', 'list', '--limit', '0'], /^limit: must be a whole number from 1 to 1000/],
      [['deliveries', 'list', '--after', 'xyz'], /^after: is not a cursor from this API/],
      [['deliveries', 'show', 'nope'], /^id: must be a UUID/],
      [['resends', 'create', '--until', '2026-01-01'], /^until: must be a timestamp with a time zone/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(apiErrorOf(result).code, args.join(' ')).toBe('invalid_request');
      expect(apiErrorOf(result).message, args.join(' ')).toMatch(message);
    }
    const missing = await cli(['events', 'resend', randomUUID()]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^error: missing required option --receiver/);
    const after = await fixture.env.pool.query('SELECT count(*)::int AS n FROM webhook_resend_batch');
    expect(after.rows[0].n).toBe(batches.rows[0].n);
  });

  test('unknown ids exit 1', async () => {
    const unknown = randomUUID();
    const cases: [string[], RegExp][] = [
      [['deliveries', 'show', unknown], /^delivery ".*" was not found/],
      [['deliveries', 'resend', unknown], /^delivery ".*" was not found/],
      [['events', 'resend', unknown, '--receiver', 'cli-rx'], /^event ".*" was not found/],
      [['resends', 'show', unknown], /^resend batch ".*" was not found/],
      [['receivers', 'probe', 'nobody'], /^receiver "nobody" was not found/],
      [['deliveries', 'list', '--receiver', 'nobody'], /^receiver "nobody" was not found/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args);
      expect(result.status, args.join(' ')).toBe(1);
      expect(apiErrorOf(result).code, args.join(' ')).toBe('not_found');
      expect(apiErrorOf(result).message, args.join(' ')).toMatch(message);
    }
  });

  test('deliveries resend sends again', async () => {
    harness.respondWith(() => ({ status: 200 }));
    const output = await cliJson(['deliveries', 'resend', failedIds[0]!]);
    expect(output.triggered_by).toBe('resend');
    expect(output.rx_id).toBe(rxId);
    await waitFor(async () => (await statesOf([output.id]))[0] === 'delivered', {
      message: 'the resend to be delivered',
    });
  });

  test('events resend sends to a receiver', async () => {
    const output = await cliJson(['events', 'resend', eventIds[1]!, '--receiver', 'cli-rx']);
    expect(output.event_id).toBe(eventIds[1]);
    expect(output.triggered_by).toBe('resend');
    await waitFor(async () => (await statesOf([output.id]))[0] === 'delivered', {
      message: 'the event resend to be delivered',
    });
  });

  test('resends create and show', async () => {
    const created = await cliJson(['resends', 'create', '--receiver', 'cli-rx']);
    expect(created.rx_id).toBe(rxId);
    const done = await waitFor(
      async () => {
        const batch = await cliJson(['resends', 'show', created.id]);
        return batch.state === 'completed' && batch.deliveries.delivered === batch.num_created ? batch : undefined;
      },
      { timeoutMs: 20_000, message: 'the bulk resend to finish' },
    );
    // Two of the five events were resent above and arrived.
    expect(done.num_matched).toBe(5);
    expect(done.num_created).toBe(3);
    expect(done.num_skipped).toBe(2);
  });

  test('receivers probe prints the result', async () => {
    const output = await cliJson(['receivers', 'probe', 'cli-rx']);
    expect(output.probe.triggered_by).toBe('probe');
    expect(output.probe.state).toBe('delivered');
    expect(output.probe.attempt_log).toHaveLength(1);
    expect(output.resend_batch).toBeNull();

    const withResend = await cliJson(['receivers', 'probe', 'cli-rx', '--resend']);
    expect(withResend.probe.state).toBe('delivered');
    expect(withResend.resend_batch.rx_id).toBe(rxId);
  });

  test('disabled receiver exits 1', async () => {
    await fixture.env.pool.query(
      `UPDATE webhook_rx SET time_disabled = now(), disabled_reason = 'cli test' WHERE id = $1`,
      [rxId],
    );
    try {
      const result = await cli(['deliveries', 'resend', failedIds[2]!]);
      expect(result.status).toBe(1);
      expect(apiErrorOf(result).code).toBe('conflict');
      expect(apiErrorOf(result).message).toMatch(/^receiver "cli-rx" is disabled since .* \(cli test\); enable it before resending$/);
    } finally {
      await fixture.env.pool.query(
        `UPDATE webhook_rx SET time_disabled = NULL, disabled_reason = NULL WHERE id = $1`,
        [rxId],
      );
    }
  });

  test('probe process exits by itself', async () => {
    const result = await spawnCli(['receivers', 'probe', 'cli-rx'], { env: cliEnv() });
    // A connection left open would print the exit watchdog's warning.
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout).probe.state).toBe('delivered');
  });
});
