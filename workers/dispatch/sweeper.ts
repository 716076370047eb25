import type { Queue } from 'bullmq';
import type { PrismaClient } from '../../shared/db/client.js';
import type { Logger } from '../../shared/logger.js';
import {
  DISPATCH_QUEUE,
  dispatchJobOptions,
  type DeliveryQueues,
  type DispatchJobData,
} from '../../shared/queues.js';
import { wakeJobId } from '../../shared/ordered-delivery.js';
import { enqueueDeliveries, type DeliveryRef } from './dispatch-event.js';
import { findIdsWithoutLiveJob } from './job-liveness.js';
import { readOrderedHeads } from './ordered-heads.js';
import { PeriodicTask } from './periodic-task.js';

export interface SweeperOptions {
  prisma: PrismaClient;
  dispatchQueue: Queue<DispatchJobData>;
  deliveryQueues: DeliveryQueues;
  logger: Logger;
  /** Age after which an unfinished row without a job is re-enqueued. */
  graceMs: number;
  leaseTimeoutMs: number;
  intervalMs: number;
  /** Rows examined per table and run. */
  batchSize?: number;
}

/**
 * A row's position in (time_created, id) order. The time stays in
 * PostgreSQL's text form because a JavaScript Date drops the microseconds.
 * A cursor rounded down to the millisecond would sort before its own row.
 * Rows that share one time_created, such as the deliveries of one event,
 * would then be read again on every run, and the rows after them never.
 */
interface CursorRow {
  id: string;
  time_created: string;
}

const START_CURSOR: CursorRow = {
  id: '00000000-0000-0000-0000-000000000000',
  time_created: '-infinity',
};

export interface SweepResult {
  events: number;
  deliveries: number;
}

/**
 * Finds work that PostgreSQL marks as unfinished but that has no live job in
 * Redis (a producer that could not reach Redis, a crash between a commit and
 * an enqueue, a flushed Redis, a job that ran out of attempts) and enqueues
 * it again. PostgreSQL is the truth; Redis only moves work fast. The
 * schedule is a timer in each dispatch process, not state in Redis, so a
 * Redis flush cannot stop it; a short Redis lock keeps two processes from
 * sweeping in the same period.
 */
export class Sweeper {
  private readonly task: PeriodicTask<SweepResult>;
  private eventCursor: CursorRow | null = null;
  private deliveryCursor: CursorRow | null = null;
  /** The ordered receiver after which the next run reads heads. */
  private headCursor: string | null = null;
  private readonly batchSize: number;

  constructor(private readonly options: SweeperOptions) {
    this.batchSize = options.batchSize ?? 1_000;
    this.task = new PeriodicTask({
      name: 'sweep',
      queue: options.dispatchQueue,
      lockName: 'sweeper-lock',
      intervalMs: options.intervalMs,
      logger: options.logger,
      run: () => this.sweepOnce(),
      // One line per run, also when it found nothing, so that the runs of
      // all processes can be counted and checked for overlap.
      report: (result) => {
        const found = result.events + result.deliveries > 0;
        options.logger.info(
          result,
          found ? 'sweep re-enqueued work' : 'sweep found nothing to re-enqueue',
        );
      },
    });
  }

  start(): void {
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  /** Runs one sweep and returns how many events and deliveries it enqueued. */
  async sweepOnce(): Promise<SweepResult> {
    const events = await this.sweepEvents();
    const deliveries = await this.sweepDeliveries();
    return { events, deliveries };
  }

  private async sweepEvents(): Promise<number> {
    const graceSeconds = this.options.graceMs / 1000;
    const cursor = this.eventCursor ?? START_CURSOR;
    // Served by lookup_undispatched_webhook_events. The cursor walks through
    // every undispatched event over successive runs, so that events past the
    // first batch are reached even when the first batch all have live jobs.
    const rows = await this.options.prisma.$queryRaw<CursorRow[]>`
      SELECT id::text, time_created::text AS time_created FROM webhook_event
      WHERE time_dispatched IS NULL
        AND (time_created, id) > (${cursor.time_created}::timestamptz, ${cursor.id}::uuid)
        AND time_created < now() - make_interval(secs => ${graceSeconds})
      -- Qualified, because a bare name would sort by the text output
      -- column, whose order depends on the collation.
      ORDER BY webhook_event.time_created, webhook_event.id
      LIMIT ${this.batchSize}`;
    this.eventCursor = this.nextCursor(rows);
    const missing = await findIdsWithoutLiveJob(
      this.options.dispatchQueue,
      rows.map((row) => row.id),
    );
    if (missing.length === 0) return 0;
    await this.options.dispatchQueue.addBulk(
      missing.map((eventId) => ({
        name: DISPATCH_QUEUE,
        data: { eventId },
        opts: dispatchJobOptions(eventId),
      })),
    );
    return missing.length;
  }

  private async sweepDeliveries(): Promise<number> {
    const graceSeconds = this.options.graceMs / 1000;
    const leaseSeconds = this.options.leaseTimeoutMs / 1000;
    const cursor = this.deliveryCursor ?? START_CURSOR;
    // Served by webhook_delivery_in_flight, with a cursor as in sweepEvents.
    // Ordered receivers need a job for their head only, which the second
    // query reads.
    const rows = await this.options.prisma.$queryRaw<(CursorRow & { rx_id: string })[]>`
      SELECT id::text, rx_id::text, time_created::text AS time_created FROM webhook_delivery
      WHERE time_completed IS NULL
        AND (time_created, id) > (${cursor.time_created}::timestamptz, ${cursor.id}::uuid)
        AND time_created < now() - make_interval(secs => ${graceSeconds})
        AND (time_leased IS NULL
             OR time_leased < now() - make_interval(secs => ${leaseSeconds}))
        AND (triggered_by = 'probe' OR NOT EXISTS (
          SELECT 1 FROM webhook_rx r WHERE r.id = webhook_delivery.rx_id AND r.ordered))
      ORDER BY webhook_delivery.time_created, webhook_delivery.id
      LIMIT ${this.batchSize}`;
    this.deliveryCursor = this.nextCursor(rows);
    const heads = await readOrderedHeads(
      this.options.prisma,
      graceSeconds,
      leaseSeconds,
      this.batchSize,
      this.headCursor ?? undefined,
    );
    // Like the delivery cursor: after a full page the next run goes on from
    // the last receiver, else it starts again from the first.
    const lastHead = heads[heads.length - 1];
    this.headCursor = heads.length < this.batchSize || !lastHead ? null : lastHead.rx_id;
    // One look-up per shard: on a Redis Cluster a pipeline must stay within
    // one hash slot, and each shard's queue has its own. An ordered head
    // also counts as having a job when its wake job is alive, which may be
    // waiting out the head's retry delay.
    const headIds = new Set(heads.map((head) => head.id));
    const byQueue = new Map<Queue, DeliveryRef[]>();
    for (const row of [...rows, ...heads]) {
      const queue = this.options.deliveryQueues.forReceiver(row.rx_id);
      const batch = byQueue.get(queue);
      const delivery = { id: row.id, rxId: row.rx_id };
      if (batch) batch.push(delivery);
      else byQueue.set(queue, [delivery]);
    }
    const missing: DeliveryRef[] = [];
    for (const [queue, batch] of byQueue) {
      const jobIds = batch.flatMap((delivery) =>
        headIds.has(delivery.id) ? [delivery.id, wakeJobId(delivery.id)] : [delivery.id],
      );
      const missingIds = new Set(await findIdsWithoutLiveJob(queue, jobIds));
      missing.push(
        ...batch.filter(
          (delivery) =>
            missingIds.has(delivery.id) &&
            (!headIds.has(delivery.id) || missingIds.has(wakeJobId(delivery.id))),
        ),
      );
    }
    await enqueueDeliveries(this.options.deliveryQueues, missing);
    return missing.length;
  }

  /** Returns where the next run continues: after a full batch, else the start. */
  private nextCursor(rows: readonly CursorRow[]): CursorRow | null {
    const last = rows[rows.length - 1];
    return rows.length < this.batchSize || !last ? null : last;
  }
}
