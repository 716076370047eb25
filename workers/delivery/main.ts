import { runService } from '../../shared/lifecycle.js';
import { startDeliveryWorker } from './delivery-worker.js';

await runService('delivery', (config, logger) =>
  startDeliveryWorker(config, logger),
);
