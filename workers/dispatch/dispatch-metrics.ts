import type { Worker } from 'bullmq';
import { processMetrics } from '../../shared/ops/metrics.js';
import { DISPATCH_QUEUE } from '../../shared/queues.js';

/**
 * Counts finished dispatch jobs in `webhook_dispatch_jobs_total` by outcome:
 * dispatched, already_dispatched, not_found, or error for a failed try.
 * BullMQ emits its events once Redis has recorded the result, so a job
 * whose result Redis did not take counts when it runs again. Other jobs of
 * the dispatch queue are not counted here.
 */
export function countDispatchOutcomes(worker: Worker): void {
  const metrics = processMetrics();
  worker.on('completed', (job, result) => {
    if (job.name === DISPATCH_QUEUE && typeof result === 'string') {
      metrics.dispatchJobs.inc({ outcome: result });
    }
  });
  worker.on('failed', (job) => {
    if (job?.name === DISPATCH_QUEUE) metrics.dispatchJobs.inc({ outcome: 'error' });
  });
}
