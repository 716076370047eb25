import type { JobsOptions, Queue } from 'bullmq';
import { JOB_OPTIONS } from './queues.js';

/**
 * Name of the dispatch-queue job that runs one page of a bulk resend. The
 * dispatch worker distinguishes these jobs from event dispatch jobs by it.
 */
export const RESEND_PAGE_JOB = 'resend-page';

/** Job data of a resend page; `step` is the number of pages committed before it. */
export interface ResendPageJobData {
  resendBatchId: string;
  step: number;
}

/**
 * Returns the job id of one page. Each page has its own id because a page's
 * job adds the next page's job while it is still running, and BullMQ
 * ignores an add whose job id already exists.
 */
export function resendPageJobId(resendBatchId: string, step: number): string {
  return `resend-${resendBatchId}-${step}`;
}

export function resendPageJobOptions(resendBatchId: string, step: number): JobsOptions {
  return {
    ...JOB_OPTIONS,
    jobId: resendPageJobId(resendBatchId, step),
    attempts: 5,
    backoff: { type: 'exponential', delay: 1_000 },
  };
}

/**
 * Adds the job of page `step` of a bulk resend to the dispatch queue. The
 * queue is typed for event jobs, so it is taken here as a plain Queue.
 */
export async function addResendPageJob(
  dispatchQueue: Queue,
  resendBatchId: string,
  step: number,
): Promise<void> {
  const data: ResendPageJobData = { resendBatchId, step };
  await dispatchQueue.add(RESEND_PAGE_JOB, data, resendPageJobOptions(resendBatchId, step));
}
