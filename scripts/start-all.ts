// Runs migrations, then the API (with Bull Board), a dispatch worker and a
// delivery worker in one process, for small installs. Each role still
// scales on its own with the other commands. The same as
// `node --import tsx scripts/start.ts all`.
import { migrateDatabase } from '../shared/db/migrate.js';
import { runService } from '../shared/lifecycle.js';
import { ALL_ROLES, startRoles } from './roles.js';

await runService('all', async (config, logger) => {
  await migrateDatabase(config.databaseUrl);
  return startRoles(ALL_ROLES, config, logger);
});
