import { ConfigError, loadConfig } from '../shared/config.js';
import { migrateDatabase } from '../shared/db/migrate.js';

try {
  const config = loadConfig();
  const applied = await migrateDatabase(config.databaseUrl);
  const target = new URL(config.databaseUrl);
  target.password = '';
  console.log(
    applied.length === 0
      ? `database ${target.host}${target.pathname} is up to date`
      : `applied ${applied.join(', ')} to ${target.host}${target.pathname}`,
  );
} catch (error) {
  const message = error instanceof ConfigError ? `invalid configuration: ${error.message}` : String(error);
  console.error(message);
  process.exit(1);
}
