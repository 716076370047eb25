import { runService } from '../../shared/lifecycle.js';
import { startApi } from './start-api.js';

await runService('api', startApi);
