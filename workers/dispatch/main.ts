import { startRoles } from '../../scripts/roles.js';
import { runService } from '../../shared/lifecycle.js';

await runService('dispatch', (config, logger) => startRoles(['dispatch'], config, logger));
