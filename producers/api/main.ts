import { startRoles } from '../../scripts/roles.js';
import { runService } from '../../shared/lifecycle.js';

await runService('api', (config, logger) => startRoles(['api'], config, logger));
