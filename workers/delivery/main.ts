import { startRoles } from '../../scripts/roles.js';
import { runService } from '../../shared/lifecycle.js';

await runService('delivery', (config, logger) => startRoles(['delivery'], config, logger));
