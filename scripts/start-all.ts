// Runs the API, a dispatch worker and a delivery worker in one process, for
// small installs. Each role still scales on its own with the other commands.
import { migrateDatabase } from '../shared/db/migrate.js';
import { runService } from '../shared/lifecycle.js';
import { startApi } from '../producers/api/start-api.js';
import { startDispatchWorker } from '../workers/dispatch/dispatch-worker.js';
import { startDeliveryWorker } from '../workers/delivery/delivery-worker.js';

await runService('all', async (config, logger) => {
  await migrateDatabase(config.databaseUrl);
  const api = await startApi(config, logger.child({ component: 'api' }));
  const dispatch = startDispatchWorker(config, logger.child({ component: 'dispatch' }));
  const delivery = startDeliveryWorker(config, logger.child({ component: 'delivery' }));
  return {
    async close() {
      // The API stops first so that no new events arrive while workers drain.
      await api.close();
      await Promise.all([dispatch.close(), delivery.close()]);
    },
  };
});
