import { Prisma, type PrismaClient } from '../shared/db/client.js';
import { NotFoundError, ValidationError } from '../shared/errors.js';
import { assertUuid, isUuid } from '../shared/ids.js';
import type { DeliveryState } from './api/contract/deliveries.js';
import { toDeliveryView, type DeliveryView } from './api/read-events.js';

/** A delivery in a list: the fields of DeliveryView without its attempts. */
export type DeliverySummaryView = Omit<DeliveryView, 'attempt_log'>;


/** Filters of a delivery list; every field is optional. */
export interface DeliveryFilter {
  rxId?: string;
  state?: DeliveryState;
  /** Inclusive lower bound of time_created. */
  since?: Date;
  /** Exclusive upper bound of time_created. */
  until?: Date;
}

/**
 * Position after the last delivery of a page, in (time_created, id) order.
 * The time stays in PostgreSQL's text form, because a JavaScript Date drops
 * the microseconds and the next page would then skip or repeat rows.
 */
export interface DeliveryCursor {
  timeCreated: string;
  id: string;
}

/** A receiver row as resends and delivery lists need it; deleted receivers included. */
export interface ReceiverRef {
  id: string;
  name: string;
  timeDeleted: Date | null;
  timeDisabled: Date | null;
  disabledReason: string | null;
}

/**
 * Finds a receiver by id, deleted ones included so that their history stays
 * reachable, or by name among live receivers, because only live names are
 * unique.
 */
export async function findReceiver(
  prisma: PrismaClient,
  idOrName: string,
  field: string,
): Promise<ReceiverRef> {
  if (typeof idOrName !== 'string' || idOrName === '') {
    throw new ValidationError(field, 'must be a receiver id or name');
  }
  const row = await prisma.webhookRx.findFirst({
    where: isUuid(idOrName)
      ? { id: idOrName.toLowerCase() }
      : { name: idOrName, timeDeleted: null },
    select: { id: true, name: true, timeDeleted: true, timeDisabled: true, disabledReason: true },
  });
  if (!row) throw new NotFoundError('receiver', idOrName);
  return row;
}

const TIMESTAMP_PATTERN =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * Reads an RFC 3339 timestamp with a time zone, such as
 * "2026-12-01T00:00:00Z". A timestamp without a zone is rejected, because
 * it would be read in the server's zone.
 */
export function parseTimestamp(value: unknown, field: string): Date {
  const date = typeof value === 'string' && TIMESTAMP_PATTERN.test(value) ? new Date(value) : null;
  if (date === null || Number.isNaN(date.getTime())) {
    throw new ValidationError(
      field,
      `must be a timestamp with a time zone such as "2026-12-01T00:00:00Z", got ${JSON.stringify(value)}`,
    );
  }
  return date;
}

/** Returns the opaque cursor text of a position: base64url of JSON. */
export function encodeCursor(cursor: DeliveryCursor): string {
  return Buffer.from(JSON.stringify({ t: cursor.timeCreated, i: cursor.id })).toString('base64url');
}

/** The form of time_created::text in a UTC session, such as "2026-12-06 10:00:00.123456+00". */
const CURSOR_TIME_PATTERN = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00$/;

/** Reads a cursor that encodeCursor made, or throws a ValidationError that names `field`. */
export function decodeCursor(value: unknown, field: string): DeliveryCursor {
  const invalid = () =>
    new ValidationError(
      field,
      'is not a cursor from this API; pass the "next_cursor" of the previous page unchanged',
    );
  if (typeof value !== 'string' || value.length > 200) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const { t, i } = (parsed ?? {}) as { t?: unknown; i?: unknown };
  if (typeof t !== 'string' || !CURSOR_TIME_PATTERN.test(t) || typeof i !== 'string' || !isUuid(i)) {
    throw invalid();
  }
  return { timeCreated: t, id: i.toLowerCase() };
}

/**
 * Builds the list statement: deliveries that match `filter`, newest first,
 * after `cursor`, at most `take` of them. Each filter combination has an
 * index whose columns end in (time_created, id), so PostgreSQL can read the
 * page from the index in order and stop after `take` rows. Receiver and
 * state use lookup_webhook_deliveries_by_rx_state, receiver alone
 * lookup_webhook_deliveries_by_rx, state alone
 * lookup_webhook_deliveries_by_state, and time alone or no filter
 * lookup_webhook_deliveries_by_time; test/producers/deliveries-list.test.ts
 * checks the plans. ORDER BY names the table's columns, because a bare `id`
 * would mean the text output column, whose order the index does not give.
 */
export function buildListQuery(
  filter: DeliveryFilter,
  cursor: DeliveryCursor | undefined,
  take: number,
): Prisma.Sql {
  const conditions: Prisma.Sql[] = [];
  if (filter.rxId !== undefined) conditions.push(Prisma.sql`rx_id = ${filter.rxId}::uuid`);
  if (filter.state !== undefined) {
    conditions.push(Prisma.sql`state = ${filter.state}::webhook_delivery_state`);
  }
  if (filter.since !== undefined) {
    conditions.push(Prisma.sql`time_created >= ${filter.since.toISOString()}::timestamptz`);
  }
  if (filter.until !== undefined) {
    conditions.push(Prisma.sql`time_created < ${filter.until.toISOString()}::timestamptz`);
  }
  if (cursor !== undefined) {
    conditions.push(
      Prisma.sql`(time_created, id) < (${cursor.timeCreated}::timestamptz, ${cursor.id}::uuid)`,
    );
  }
  const where =
    conditions.length === 0 ? Prisma.empty : Prisma.sql`WHERE ${Prisma.join(conditions, ' AND ')}`;
  return Prisma.sql`
    SELECT id::text, event_id::text, rx_id::text, triggered_by::text, state::text, attempts,
      failure_reason, time_created, time_completed, time_created::text AS cursor_time
    FROM webhook_delivery
    ${where}
    ORDER BY webhook_delivery.time_created DESC, webhook_delivery.id DESC
    LIMIT ${take}`;
}

interface ListRow {
  id: string;
  event_id: string;
  rx_id: string;
  // PostgreSQL enums; node-postgres returns their labels as strings.
  triggered_by: DeliveryView['triggered_by'];
  state: DeliveryView['state'];
  attempts: number;
  failure_reason: string | null;
  time_created: Date;
  time_completed: Date | null;
  cursor_time: string;
}

/**
 * Lists deliveries that match `filter`, newest first, `limit` per page.
 * `next_cursor` is the cursor of the next page, or null after the last one.
 * Deliveries created while a client pages sort before its cursor, so paging
 * neither repeats nor skips rows.
 */
export async function listDeliveries(
  prisma: PrismaClient,
  filter: DeliveryFilter,
  page: { limit: number; cursor?: DeliveryCursor },
): Promise<{ deliveries: DeliverySummaryView[]; next_cursor: string | null }> {
  // One row more than the page shows whether another page follows.
  const rows = await prisma.$queryRaw<ListRow[]>(buildListQuery(filter, page.cursor, page.limit + 1));
  const pageRows = rows.slice(0, page.limit);
  const last = pageRows[pageRows.length - 1];
  return {
    deliveries: pageRows.map((row) => ({
      id: row.id,
      event_id: row.event_id,
      rx_id: row.rx_id,
      triggered_by: row.triggered_by,
      state: row.state,
      attempts: row.attempts,
      failure_reason: row.failure_reason,
      time_created: row.time_created.toISOString(),
      time_completed: row.time_completed?.toISOString() ?? null,
    })),
    next_cursor:
      rows.length > page.limit && last
        ? encodeCursor({ timeCreated: last.cursor_time, id: last.id })
        : null,
  };
}

/** Reads one delivery with every attempt, oldest first. */
export async function getDelivery(prisma: PrismaClient, id: string): Promise<DeliveryView> {
  const deliveryId = assertUuid(id, 'id');
  const row = await prisma.webhookDelivery.findUnique({
    where: { id: deliveryId },
    include: { attemptRows: { orderBy: { attempt: 'asc' } } },
  });
  if (!row) throw new NotFoundError('delivery', deliveryId);
  return toDeliveryView(row);
}
