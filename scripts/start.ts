// Starts one or more roles in this process:
//   node --import tsx scripts/start.ts api
//   node --import tsx scripts/start.ts dispatch delivery
//   node --import tsx scripts/start.ts all      # migrations, then every role
// Roles: api, dispatch, delivery, dashboard. Each stops cleanly on SIGTERM
// or SIGINT, as described in the README.
import { migrateDatabase } from '../shared/db/migrate.js';
import { runService } from '../shared/lifecycle.js';
import { parseRoles, RoleError, ROLES, startRoles } from './roles.js';

const USAGE =
  `usage: node --import tsx scripts/start.ts <role...>\n` +
  `  roles: ${ROLES.join(', ')}, or all (applies migrations first, then runs every role)`;

const words = process.argv.slice(2);
if (words.includes('--help') || words.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
let roles;
try {
  roles = parseRoles(words);
} catch (error) {
  if (!(error instanceof RoleError)) throw error;
  console.error(`${error.message}\n${USAGE}`);
  process.exit(2);
}
const migrateFirst = words.includes('all');

await runService(migrateFirst ? 'all' : roles.join('+'), async (config, logger) => {
  if (migrateFirst) await migrateDatabase(config.databaseUrl);
  return startRoles(roles, config, logger);
});
