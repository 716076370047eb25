import pg from 'pg';
import { ConfigError, loadConfig } from '../shared/config.js';
import { migrateDatabase } from '../shared/db/migrate.js';

/** Creates the database named in `databaseUrl` when the server lacks it. */
async function ensureDatabase(databaseUrl: string): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({
    connectionString: admin.toString(),
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
      console.log(`created database ${name}`);
    }
  } finally {
    await client.end();
  }
}

try {
  const config = loadConfig();
  await ensureDatabase(config.databaseUrl);
  const applied = await migrateDatabase(config.databaseUrl);
  const target = new URL(config.databaseUrl);
  const where = `${target.host}${target.pathname}`;
  console.log(
    applied.length === 0
      ? `database ${where} is up to date`
      : `applied ${applied.join(', ')} to ${where}`,
  );
} catch (error) {
  const message =
    error instanceof ConfigError
      ? `invalid configuration: ${error.message}`
      : `migration failed: ${String(error)}`;
  console.error(message);
  process.exit(1);
}
