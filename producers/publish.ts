import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { PrismaClient } from '../shared/db/client.js';
import {
  ConflictError,
  ValidationError,
  WebhookError,
} from '../shared/errors.js';
import { assertEventClass } from '../shared/event-class.js';
import { assertUuid } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import { serializeEventData } from '../shared/payload.js';
import {
  DISPATCH_QUEUE,
  dispatchJobOptions,
  withTimeout,
  type DispatchJobData,
} from '../shared/queues.js';

/** An event as a producer hands it to us. */
export interface PublishEventInput {
  /** Dotted class such as `github.push.created`. */
  eventClass: string;
  /** Any JSON value; integers must fit in ±2^53-1. */
  data: unknown;
  /** Optional UUID; publishing one id twice stores one event. */
  id?: string;
}

/**
 * Event data whose JSON form is larger than MAX_PAYLOAD_BYTES. The HTTP API
 * responds with 413 to it, as it does to a request body over its size limit.
 */
export class PayloadTooLargeError extends WebhookError {
  constructor(
    readonly field: string,
    readonly limitBytes: number,
    readonly sizeBytes: number,
  ) {
    super(
      'payload_too_large',
      `${field}: must be at most ${limitBytes} bytes as JSON (MAX_PAYLOAD_BYTES), got ${sizeBytes} bytes`,
      413,
    );
  }
}

export interface PublishEventResult {
  id: string;
  eventClass: string;
  timeCreated: Date;
  /** False when an event with this id was already stored. */
  created: boolean;
  /** False when Redis could not take the dispatch job; the sweeper will. */
  enqueued: boolean;
}

export interface PublisherDependencies {
  prisma: PrismaClient;
  dispatchQueue: Queue<DispatchJobData>;
  logger: Logger;
  maxPayloadBytes: number;
  /** How long to wait for Redis before leaving the event to the sweeper. */
  enqueueTimeoutMs?: number;
}

interface StoredEvent {
  id: string;
  event_class: string;
  event: string;
  time_created: Date;
  inserted: boolean;
}

/**
 * Writes events and hands them to the dispatch queue. The committed row is
 * the promise to deliver: when Redis is down the call still succeeds, and the
 * sweeper enqueues the event once its grace period has passed.
 */
export class Publisher {
  constructor(private readonly deps: PublisherDependencies) {}

  async publishEvent(input: PublishEventInput): Promise<PublishEventResult> {
    if (typeof input !== 'object' || input === null) {
      throw new ValidationError('input', 'must be an object with eventClass and data');
    }
    const eventClass = assertEventClass(input.eventClass, 'eventClass');
    if (input.data === undefined) {
      throw new ValidationError('data', 'is missing; pass any JSON value');
    }
    // The size is checked here rather than by serializeEventData, so that
    // it raises PayloadTooLargeError instead of a plain ValidationError.
    const dataJson = serializeEventData(input.data, Number.POSITIVE_INFINITY, 'data');
    const sizeBytes = Buffer.byteLength(dataJson, 'utf8');
    if (sizeBytes > this.deps.maxPayloadBytes) {
      throw new PayloadTooLargeError('data', this.deps.maxPayloadBytes, sizeBytes);
    }
    const id = input.id === undefined ? randomUUID() : assertUuid(input.id, 'id');

    const stored = await this.insertOrFind(id, eventClass, dataJson);
    if (!stored.inserted) {
      if (stored.event_class !== eventClass || stored.event !== dataJson) {
        throw new ConflictError(
          `event "${id}" was already published with a different event class or data; use a new id`,
        );
      }
    }
    const enqueued = await this.enqueue(id);
    return {
      id,
      eventClass,
      timeCreated: stored.time_created,
      created: stored.inserted,
      enqueued,
    };
  }

  private async insertOrFind(id: string, eventClass: string, dataJson: string) {
    // One statement inserts the row, or returns the stored one when the id
    // exists, so that two concurrent publishes of one id agree.
    const rows = await this.deps.prisma.$queryRaw<StoredEvent[]>`
      WITH inserted AS (
        INSERT INTO webhook_event (id, event_class, event, time_created, time_modified)
        VALUES (${id}::uuid, ${eventClass}, ${dataJson}, now(), now())
        ON CONFLICT (id) DO NOTHING
        RETURNING id::text, event_class, event, time_created, true AS inserted
      )
      SELECT * FROM inserted
      UNION ALL
      SELECT id::text, event_class, event, time_created, false AS inserted
      FROM webhook_event
      WHERE id = ${id}::uuid AND NOT EXISTS (SELECT 1 FROM inserted)`;
    const row = rows[0];
    if (row) return row;
    // The conflicting row was inserted by a transaction that committed after
    // this statement's snapshot was taken; read it again.
    const again = await this.deps.prisma.$queryRaw<StoredEvent[]>`
      SELECT id::text, event_class, event, time_created, false AS inserted
      FROM webhook_event WHERE id = ${id}::uuid`;
    if (!again[0]) throw new Error(`event ${id} vanished while being published`);
    return again[0];
  }

  private async enqueue(eventId: string): Promise<boolean> {
    try {
      await withTimeout(
        this.deps.dispatchQueue.add(
          DISPATCH_QUEUE,
          { eventId },
          dispatchJobOptions(eventId),
        ),
        this.deps.enqueueTimeoutMs ?? 2_000,
        'adding the dispatch job',
      );
      return true;
    } catch (error) {
      this.deps.logger.warn(
        { eventId, err: error },
        'event stored but not enqueued; the sweeper will dispatch it',
      );
      return false;
    }
  }
}
