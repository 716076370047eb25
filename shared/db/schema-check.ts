import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { isConnectionError } from './connection-errors.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

/** Thrown when the database of DATABASE_URL is missing or lacks migrations. */
export class SchemaNotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaNotReadyError';
  }
}

/** Names `databaseUrl` without its password, for messages. */
function describeDatabase(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  return `"${decodeURIComponent(url.pathname.slice(1))}" at ${url.host}`;
}

/**
 * Checks that the database of `databaseUrl` exists and has every migration
 * under prisma/migrations applied, so that a process started before
 * `npm run db:migrate` fails at once with the fix instead of returning 500
 * to every request. Returns 'unreachable' without throwing when PostgreSQL
 * cannot be reached: the roles start anyway and reconnect, as they do when
 * PostgreSQL goes away later.
 */
export async function checkSchemaReady(databaseUrl: string): Promise<'ready' | 'unreachable'> {
  const where = describeDatabase(databaseUrl);
  const fix = 'apply the schema with "npm run db:migrate" (it creates the database if needed)';
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  // An error after connect (the server going away) must not crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    if ((error as { code?: string }).code === '3D000') {
      throw new SchemaNotReadyError(`database ${where} in DATABASE_URL does not exist; ${fix}`);
    }
    if (isConnectionError(error)) return 'unreachable';
    throw error;
  }
  try {
    const table = await client.query<{ name: string | null }>(
      `SELECT to_regclass('_prisma_migrations')::text AS name`,
    );
    if (table.rows[0]?.name == null) {
      throw new SchemaNotReadyError(`database ${where} has no webhook tables; ${fix}`);
    }
    const applied = await client.query<{ migration_name: string }>(
      `SELECT migration_name FROM "_prisma_migrations"
       WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const done = new Set(applied.rows.map((row) => row.migration_name));
    const entries = await readdir(MIGRATIONS_DIR, { withFileTypes: true });
    const pending = entries
      .filter((entry) => entry.isDirectory() && !done.has(entry.name))
      .map((entry) => entry.name)
      .sort();
    if (pending.length > 0) {
      throw new SchemaNotReadyError(
        `database ${where} lacks ${pending.length} migration(s) (${pending.join(', ')}); ${fix}`,
      );
    }
    return 'ready';
  } catch (error) {
    if (isConnectionError(error)) return 'unreachable';
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}
