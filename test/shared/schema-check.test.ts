import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkSchemaReady, SchemaNotReadyError } from '../../shared/db/schema-check.js';
import { adminUrl, databaseUrlFor } from '../helpers/database-names.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';
import { unusedLoopbackPort } from '../helpers/unused-port.js';

const FIX = 'apply the schema with "npm run db:migrate" (it creates the database if needed)';

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

describe('checkSchemaReady', () => {
  let env: TestEnv;
  const emptyDatabase = `whk_test_empty_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    env = await createTestEnv();
    await admin((client) => client.query(`CREATE DATABASE "${emptyDatabase}"`));
  });

  afterAll(async () => {
    await env?.dispose();
    await admin((client) => client.query(`DROP DATABASE IF EXISTS "${emptyDatabase}" WITH (FORCE)`));
  });

  test('migrated database is ready', async () => {
    expect(await checkSchemaReady(env.databaseUrl)).toBe('ready');
  });

  test('missing database names the fix', async () => {
    const url = databaseUrlFor(`whk_test_missing_${randomBytes(4).toString('hex')}`);
    const name = new URL(url).pathname.slice(1);
    const error = await checkSchemaReady(url).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SchemaNotReadyError);
    expect((error as Error).message).toBe(
      `database "${name}" at ${new URL(url).host} in DATABASE_URL does not exist; ${FIX}`,
    );
  });

  test('empty database names the fix', async () => {
    const url = databaseUrlFor(emptyDatabase);
    const error = await checkSchemaReady(url).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SchemaNotReadyError);
    expect((error as Error).message).toBe(
      `database "${emptyDatabase}" at ${new URL(url).host} has no webhook tables; ${FIX}`,
    );
  });

  test('missing migration is listed', async () => {
    await env.pool.query(
      `UPDATE "_prisma_migrations" SET rolled_back_at = now()
       WHERE migration_name = '20261205000000_receiver_options'`,
    );
    const error = await checkSchemaReady(env.databaseUrl).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SchemaNotReadyError);
    expect((error as Error).message).toContain('lacks 1 migration(s) (20261205000000_receiver_options)');
    await env.pool.query(
      `UPDATE "_prisma_migrations" SET rolled_back_at = NULL
       WHERE migration_name = '20261205000000_receiver_options'`,
    );
  });

  test('unreachable server is not an error', async () => {
    const port = await unusedLoopbackPort();
    expect(await checkSchemaReady(`postgresql://root@127.0.0.1:${port}/whk`)).toBe('unreachable');
  });
});
