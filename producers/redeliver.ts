import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { PrismaClient } from '../shared/db/client.js';
import { ConflictError, NotFoundError, ValidationError, WebhookError } from '../shared/errors.js';
import { assertUuid } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import { withTimeout, type DeliveryQueues } from '../shared/queues.js';
import { addResendPageJob } from '../shared/resend-jobs.js';
import { enqueueDeliveries } from '../workers/dispatch/dispatch-event.js';
import type { DeliveryView } from './api/read-events.js';
import { findReceiver, getDelivery, type ReceiverRef } from './deliveries-query.js';

/** Event class of the events that probes send. */
export const PROBE_EVENT_CLASS = 'webhook.probe';

export interface RedeliveryDependencies {
  prisma: PrismaClient;
  /** The dispatch queue, which carries the page jobs of bulk resends. */
  dispatchQueue: Queue;
  deliveryQueues: DeliveryQueues;
  logger: Logger;
  /** How long a probe waits for its attempt result, in ms (PROBE_TIMEOUT_MS). */
  probeTimeoutMs: number;
  /** How long to wait for Redis before leaving a job to the sweepers, in ms. */
  enqueueTimeoutMs?: number;
  /** How often a probe reads its delivery's state while it waits, in ms. */
  probePollMs?: number;
}

/** A bulk resend as the API shows it. */
export interface ResendBatchView {
  id: string;
  /** The receiver whose failed deliveries are resent; null for every live receiver. */
  rx_id: string | null;
  state: 'running' | 'completed' | 'failed';
  /** Inclusive start of the failed deliveries' time_created; null for no lower bound. */
  since: string | null;
  /** Exclusive end of the failed deliveries' time_created. */
  until: string;
  /** Failed deliveries found in the range so far. */
  num_matched: number;
  /** Resend deliveries created so far. */
  num_created: number;
  /** Matched deliveries that got no resend: the event already reached its receiver or is pending, or the receiver is deleted or disabled. */
  num_skipped: number;
  /** The states of the resend deliveries that this batch created. */
  deliveries: { pending: number; delivered: number; failed: number };
  error: string | null;
  time_created: string;
  time_modified: string;
  time_completed: string | null;
}

export interface BulkResendInput {
  /** Receiver id or name; absent for every live receiver. */
  receiver?: string;
  since?: Date;
  /** Defaults to now; a later time is cut to now. */
  until?: Date;
}

export interface ProbeResult {
  /** The probe delivery with its attempt. */
  probe: DeliveryView;
  /** The bulk resend that the probe started, when asked to and the probe succeeded. */
  resend_batch: ResendBatchView | null;
}

/** A probe whose attempt result did not arrive within PROBE_TIMEOUT_MS. */
export class ProbeTimeoutError extends WebhookError {
  constructor(deliveryId: string, timeoutMs: number) {
    super(
      'probe_timeout',
      `probe delivery "${deliveryId}" got no attempt result within ${timeoutMs} ms (PROBE_TIMEOUT_MS); check that a delivery worker is running, and read the result later with GET /v1/deliveries/${deliveryId}`,
      504,
    );
  }
}

/**
 * Rejects a resend to a receiver that cannot get one: a deleted receiver
 * never gets requests again, and a disabled one must be enabled first.
 */
function assertResendable(rx: ReceiverRef): void {
  if (rx.timeDeleted !== null) {
    throw new ConflictError(
      `receiver "${rx.name}" (${rx.id}) was deleted at ${rx.timeDeleted.toISOString()}; deliveries cannot be resent to a deleted receiver`,
    );
  }
  if (rx.timeDisabled !== null) {
    throw new ConflictError(
      `receiver "${rx.name}" is disabled since ${rx.timeDisabled.toISOString()} (${rx.disabledReason ?? 'no reason given'}); enable it before resending`,
    );
  }
}

/**
 * Resends deliveries, one or in bulk, and probes receivers. Every resend is
 * a new delivery row with triggered_by = 'resend' for the same event and
 * receiver, so the original keeps its attempts. As in dispatch, the rows are
 * committed first and the jobs added after. A delivery job that Redis does
 * not take is left to the sweeper, which enqueues jobless pending
 * deliveries, and a page job of a bulk resend to the resend sweeper.
 */
export class RedeliveryService {
  private readonly enqueueTimeoutMs: number;
  private readonly probePollMs: number;

  constructor(private readonly deps: RedeliveryDependencies) {
    this.enqueueTimeoutMs = deps.enqueueTimeoutMs ?? 2_000;
    this.probePollMs = deps.probePollMs ?? 100;
  }

  /** Creates a new delivery of a delivery's event to its receiver, whatever the old one's state. */
  async resendDelivery(deliveryId: string): Promise<DeliveryView> {
    const id = assertUuid(deliveryId, 'id');
    const original = await this.deps.prisma.webhookDelivery.findUnique({
      where: { id },
      select: { eventId: true, rxId: true },
    });
    if (!original) throw new NotFoundError('delivery', id);
    const rx = await findReceiver(this.deps.prisma, original.rxId, 'receiver');
    const created = await this.createResend(original.eventId, rx);
    this.deps.logger.info(
      { deliveryId: created.id, eventId: original.eventId, rxId: rx.id, resentFrom: id },
      'delivery resent',
    );
    return created;
  }

  /**
   * Creates a delivery of an event to a receiver, also one that the event
   * was never dispatched to, such as a receiver created after the event.
   */
  async resendEvent(eventId: string, receiver: string): Promise<DeliveryView> {
    const id = assertUuid(eventId, 'id');
    const event = await this.deps.prisma.webhookEvent.findUnique({ where: { id }, select: { id: true } });
    if (!event) throw new NotFoundError('event', id);
    const rx = await findReceiver(this.deps.prisma, receiver, 'receiver');
    const created = await this.createResend(id, rx);
    this.deps.logger.info({ deliveryId: created.id, eventId: id, rxId: rx.id }, 'event resent');
    return created;
  }

  /**
   * Starts a bulk resend of the failed deliveries created in [since, until),
   * of one receiver or of every live one. A dispatch worker creates the new
   * deliveries page by page; GET /v1/resends/:id shows the progress.
   */
  async createBulkResend(input: BulkResendInput): Promise<ResendBatchView> {
    if (input.since !== undefined && input.until !== undefined && input.since >= input.until) {
      throw new ValidationError(
        'since',
        `must be before until, got since ${input.since.toISOString()} and until ${input.until.toISOString()}`,
      );
    }
    if (input.since !== undefined && input.since.getTime() > Date.now()) {
      throw new ValidationError('since', `must not be in the future, got ${input.since.toISOString()}`);
    }

    let rxId: string | null = null;
    if (input.receiver !== undefined) {
      const rx = await findReceiver(this.deps.prisma, input.receiver, 'receiver');
      assertResendable(rx);
      rxId = rx.id;
    }

    const id = randomUUID();
    // The range ends at the latest at the database's now(), so that the
    // deliveries that this batch creates, whose time_created is later, never
    // fall into its own range.
    await this.deps.prisma.$executeRaw`
      INSERT INTO webhook_resend_batch
        (id, rx_id, time_since, time_until, state, time_created, time_modified)
      SELECT ${id}::uuid, ${rxId}::uuid, CASE WHEN u.since IS NOT NULL THEN least(u.since, u.until) END,
        u.until, 'running', now(), now()
      FROM (
        SELECT ${input.since?.toISOString() ?? null}::timestamptz AS since,
          least(coalesce(${input.until?.toISOString() ?? null}::timestamptz, now()), now()) AS until
      ) u`;

    try {
      await withTimeout(
        addResendPageJob(this.deps.dispatchQueue, id, 0),
        this.enqueueTimeoutMs,
        'adding the first resend page job',
      );
    } catch (error) {
      this.deps.logger.warn(
        { resendBatchId: id, err: error },
        'resend batch stored but not enqueued; the resend sweeper will enqueue it',
      );
    }
    this.deps.logger.info({ resendBatchId: id, rxId }, 'resend batch created');
    return this.getBulkResend(id);
  }

  /** Reads a bulk resend with its counts and the states of its deliveries. */
  async getBulkResend(batchId: string): Promise<ResendBatchView> {
    const id = assertUuid(batchId, 'id');
    const row = await this.deps.prisma.webhookResendBatch.findUnique({ where: { id } });
    if (!row) throw new NotFoundError('resend batch', id);
    // Served by lookup_webhook_deliveries_by_resend_batch.
    const groups = await this.deps.prisma.webhookDelivery.groupBy({
      by: ['state'],
      where: { resendBatchId: id },
      _count: { _all: true },
    });
    const deliveries = { pending: 0, delivered: 0, failed: 0 };
    for (const group of groups) deliveries[group.state] = group._count._all;
    return {
      id: row.id,
      rx_id: row.rxId,
      state: row.state,
      since: row.timeSince?.toISOString() ?? null,
      until: row.timeUntil.toISOString(),
      num_matched: row.numMatched,
      num_created: row.numCreated,
      num_skipped: row.numMatched - row.numCreated,
      deliveries,
      error: row.error,
      time_created: row.timeCreated.toISOString(),
      time_modified: row.timeModified.toISOString(),
      time_completed: row.timeCompleted?.toISOString() ?? null,
    };
  }

  /**
   * Sends a probe to a receiver and waits for its one attempt: an event of
   * class webhook.probe that goes to this receiver only, through the
   * delivery workers like any delivery. A disabled receiver may be probed,
   * so that an operator can check whether it works again. With `resend`, a
   * probe that succeeds starts a bulk resend of every failed delivery of the
   * receiver; that needs an enabled receiver.
   */
  async probe(receiver: string, options: { resend?: boolean } = {}): Promise<ProbeResult> {
    const rx = await findReceiver(this.deps.prisma, receiver, 'receiver');
    if (rx.timeDeleted !== null) {
      throw new ConflictError(
        `receiver "${rx.name}" (${rx.id}) was deleted at ${rx.timeDeleted.toISOString()}; a deleted receiver cannot be probed`,
      );
    }
    if (options.resend === true) assertResendable(rx);

    const deliveryId = randomUUID();
    // The event is marked dispatched as it is inserted, so dispatch and the
    // sweeper never send it to subscribers. Both rows are written only when
    // the receiver is still live.
    const inserted = await this.deps.prisma.$queryRaw<{ id: string; event_id: string }[]>`
      WITH rx AS (
        SELECT id FROM webhook_rx WHERE id = ${rx.id}::uuid AND time_deleted IS NULL
      ), ev AS (
        INSERT INTO webhook_event
          (id, event_class, event, time_created, time_modified, time_dispatched, num_dispatched)
        SELECT gen_random_uuid(), ${PROBE_EVENT_CLASS}, '{}', now(), now(), now(), 0 FROM rx
        RETURNING id
      )
      INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created)
      SELECT ${deliveryId}::uuid, ev.id, rx.id, 'probe', 'pending', 0, now() FROM ev, rx
      RETURNING id::text, event_id::text`;
    if (inserted.length === 0) throw new NotFoundError('receiver', receiver);
    const log = this.deps.logger.child({ deliveryId, eventId: inserted[0]!.event_id, rxId: rx.id });
    await this.enqueue(deliveryId, rx.id, log);

    const state = await this.waitForOutcome(deliveryId);
    const probe = await getDelivery(this.deps.prisma, deliveryId);
    log.info({ state }, 'probe finished');
    let resendBatch: ResendBatchView | null = null;
    if (options.resend === true && state === 'delivered') {
      resendBatch = await this.createBulkResend({ receiver: rx.id });
    }
    return { probe, resend_batch: resendBatch };
  }

  private async createResend(eventId: string, rx: ReceiverRef): Promise<DeliveryView> {
    assertResendable(rx);
    // The receiver is checked again in the statement, so that one deleted or
    // disabled since the read above gets no delivery.
    const rows = await this.deps.prisma.$queryRaw<{ id: string }[]>`
      INSERT INTO webhook_delivery (id, event_id, rx_id, triggered_by, state, attempts, time_created)
      SELECT gen_random_uuid(), ${eventId}::uuid, r.id, 'resend', 'pending', 0, now()
      FROM webhook_rx r
      WHERE r.id = ${rx.id}::uuid AND r.time_deleted IS NULL AND r.time_disabled IS NULL
      RETURNING id::text`;
    const created = rows[0];
    if (created === undefined) {
      assertResendable(await findReceiver(this.deps.prisma, rx.id, 'receiver'));
      throw new ConflictError(`receiver "${rx.name}" changed while the resend was created; try again`);
    }
    await this.enqueue(created.id, rx.id, this.deps.logger.child({ deliveryId: created.id, rxId: rx.id }));
    return getDelivery(this.deps.prisma, created.id);
  }

  private async enqueue(deliveryId: string, rxId: string, log: Logger): Promise<void> {
    try {
      await withTimeout(
        enqueueDeliveries(this.deps.deliveryQueues, [{ id: deliveryId, rxId }]),
        this.enqueueTimeoutMs,
        'adding the delivery job',
      );
    } catch (error) {
      log.warn({ err: error }, 'delivery stored but not enqueued; the sweeper will enqueue it');
    }
  }

  /** Polls the delivery until it is no longer pending, or throws ProbeTimeoutError. */
  private async waitForOutcome(deliveryId: string): Promise<'delivered' | 'failed'> {
    const deadline = Date.now() + this.deps.probeTimeoutMs;
    for (;;) {
      const row = await this.deps.prisma.webhookDelivery.findUnique({
        where: { id: deliveryId },
        select: { state: true },
      });
      if (row !== null && row.state !== 'pending') return row.state;
      if (Date.now() >= deadline) throw new ProbeTimeoutError(deliveryId, this.deps.probeTimeoutMs);
      await new Promise((resolve) => setTimeout(resolve, this.probePollMs));
    }
  }
}
