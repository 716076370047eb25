import { runService } from '../../shared/lifecycle.js';
import { startDispatchWorker } from './dispatch-worker.js';

await runService('dispatch', startDispatchWorker);
