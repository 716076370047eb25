import { DelayedError, type Job } from 'bullmq';

/**
 * Thrown by `deliver` when a delivery may not be sent yet (a receiver limit,
 * or an earlier event of an ordered receiver not dispatched yet). No request
 * was sent and the lease is given back. The worker moves the job to BullMQ's
 * delayed set for `delayMs`, which neither counts as a job attempt nor
 * writes an attempt row, and frees the worker slot meanwhile.
 */
export class DelayJobError extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = 'DelayJobError';
  }
}

/**
 * Moves a running job to the delayed set and throws BullMQ's DelayedError,
 * so that the worker leaves the moved job alone instead of failing it.
 * `Job.moveToDelayed` in BullMQ 6.7 passes `skipAttempt`, so `attemptsMade`
 * stays as it is. `token` is the one that the worker passed to the
 * processor.
 */
export async function moveJobToDelayed(
  job: Job,
  token: string | undefined,
  delayMs: number,
): Promise<never> {
  await job.moveToDelayed(Date.now() + delayMs, token);
  throw new DelayedError();
}
