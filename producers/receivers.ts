import { randomUUID } from 'node:crypto';
import { Prisma, type PrismaClient } from '../shared/db/client.js';
import { assertEndpoint } from '../shared/endpoint.js';
import {
  ConflictError,
  NotFoundError,
  ValidationError,
} from '../shared/errors.js';
import { assertUuid, isUuid } from '../shared/ids.js';
import type { NetworkGuard } from '../shared/network-guard.js';
import type { PayloadFilter } from '../shared/payload-filter.js';
import { decodeSecret, generateSecret } from '../shared/signing.js';
import {
  compileSubscription,
  filtersByPattern,
  subscriptionColumns,
  uniqueSubscriptions,
  type CompiledSubscription,
  type SubscriptionInput,
} from './subscription-input.js';

export const MAX_NAME_LENGTH = 128;
export const MAX_DESCRIPTION_LENGTH = 1024;
export const MAX_SUBSCRIPTIONS = 100;

export interface CreateReceiverInput {
  name: string;
  description?: string;
  endpoint: string;
  /** Patterns, each alone or with a payload filter. */
  subscriptions: (string | SubscriptionInput)[];
  /** A `whsec_` secret; one is generated when absent. */
  secret?: string;
  /** Send deliveries one at a time in event creation order. */
  ordered?: boolean;
  /** Requests per second over all delivery workers; null is no limit. */
  rate_limit_per_second?: number | null;
  /** Requests in flight at once over all delivery workers; null is no limit. */
  max_in_flight?: number | null;
}

export interface UpdateReceiverInput {
  name?: string;
  description?: string;
  endpoint?: string;
  /** Replaces every subscription when given. */
  subscriptions?: (string | SubscriptionInput)[];
  ordered?: boolean;
  rate_limit_per_second?: number | null;
  max_in_flight?: number | null;
}

/** A receiver as the API shows it; secret values are never part of it. */
export interface ReceiverView {
  id: string;
  name: string;
  description: string;
  endpoint: string;
  /** Every pattern, sorted, with or without a filter. */
  subscriptions: string[];
  /** The payload filter of each filtered pattern, keyed by pattern. */
  filters: Record<string, PayloadFilter>;
  secrets: { id: string; time_created: string }[];
  ordered: boolean;
  rate_limit_per_second: number | null;
  max_in_flight: number | null;
  /** Set while the receiver is disabled, with the reason. */
  time_disabled: string | null;
  disabled_reason: string | null;
  time_created: string;
  time_modified: string;
}

const receiverInclude = {
  subscriptions: { orderBy: { eventClass: 'asc' } },
  secrets: { where: { timeDeleted: null }, orderBy: { timeCreated: 'asc' } },
} satisfies Prisma.WebhookRxInclude;

type ReceiverRow = Prisma.WebhookRxGetPayload<{ include: typeof receiverInclude }>;

function toView(row: ReceiverRow): ReceiverView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    endpoint: row.endpoint,
    subscriptions: row.subscriptions.map((s) => s.eventClass),
    filters: filtersByPattern(row.subscriptions),
    secrets: row.secrets.map((s) => ({
      id: s.id,
      time_created: s.timeCreated.toISOString(),
    })),
    ordered: row.ordered,
    rate_limit_per_second: row.rateLimitPerSecond,
    max_in_flight: row.maxInFlight,
    time_disabled: row.timeDisabled?.toISOString() ?? null,
    disabled_reason: row.disabledReason,
    time_created: row.timeCreated.toISOString(),
    time_modified: row.timeModified.toISOString(),
  };
}

function assertName(value: unknown): string {
  if (
    typeof value !== 'string' ||
    !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(value) ||
    value.length > MAX_NAME_LENGTH
  ) {
    throw new ValidationError(
      'name',
      `must be 1 to ${MAX_NAME_LENGTH} letters, digits, "_", "." or "-", starting with a letter or digit, got ${JSON.stringify(value)}`,
    );
  }
  // Routes take a receiver id or name in one path segment, so a name in
  // UUID form would be read as an id.
  if (isUuid(value)) {
    throw new ValidationError('name', `must not be a UUID, got "${value}"`);
  }
  return value;
}

function assertDescription(value: unknown): string {
  if (typeof value !== 'string' || value.length > MAX_DESCRIPTION_LENGTH) {
    throw new ValidationError(
      'description',
      `must be a string of at most ${MAX_DESCRIPTION_LENGTH} characters`,
    );
  }
  return value;
}

export const MAX_RATE_LIMIT_PER_SECOND = 10_000;
export const MAX_IN_FLIGHT = 1_000;

function assertOrdered(value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw new ValidationError('ordered', `must be true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Returns `value` as a positive whole-number limit, or null for none, and throws a ValidationError naming `field` otherwise. */
function assertLimit(value: unknown, field: string, max: number): number | null {
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ValidationError(
      field,
      `must be a whole number from 1 to ${max}, or null for no limit, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function deliveryOptions(input: {
  ordered?: unknown;
  rate_limit_per_second?: unknown;
  max_in_flight?: unknown;
}) {
  return {
    ordered: input.ordered === undefined ? undefined : assertOrdered(input.ordered),
    rateLimitPerSecond:
      input.rate_limit_per_second === undefined
        ? undefined
        : assertLimit(input.rate_limit_per_second, 'rate_limit_per_second', MAX_RATE_LIMIT_PER_SECOND),
    maxInFlight:
      input.max_in_flight === undefined
        ? undefined
        : assertLimit(input.max_in_flight, 'max_in_flight', MAX_IN_FLIGHT),
  };
}

/** Reason stored when an operator disables a receiver; their own text follows it. */
export const OPERATOR_DISABLED_REASON = 'disabled by an operator';
export const MAX_DISABLE_REASON_LENGTH = 500;

function assertDisableReason(value: unknown): string {
  const rule = `must be a non-empty string of at most ${MAX_DISABLE_REASON_LENGTH} characters`;
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ValidationError('reason', `${rule}, got ${JSON.stringify(value)}`);
  }
  if (value.length > MAX_DISABLE_REASON_LENGTH) {
    throw new ValidationError('reason', `${rule}, got ${value.length} characters`);
  }
  return value.trim();
}

function compileSubscriptions(value: unknown): CompiledSubscription[] {
  if (!Array.isArray(value)) {
    throw new ValidationError(
      'subscriptions',
      'must be an array of event classes or glob patterns such as ["github.push.*"]',
    );
  }
  if (value.length > MAX_SUBSCRIPTIONS) {
    throw new ValidationError(
      'subscriptions',
      `must have at most ${MAX_SUBSCRIPTIONS} entries, got ${value.length}`,
    );
  }
  const subscriptions = value.map((item, index) =>
    compileSubscription(item, `subscriptions[${index}]`),
  );
  return uniqueSubscriptions(subscriptions, 'subscriptions');
}

function isUniqueViolation(error: unknown): boolean {
  return (
    error instanceof Prisma.PrismaClientKnownRequestError &&
    error.code === 'P2002'
  );
}

/** Creates, changes and deletes receivers with their subscriptions and secrets. */
export class ReceiverService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly guard: NetworkGuard,
  ) {}

  /** Creates a receiver; the returned secret is shown this once only. */
  async create(input: CreateReceiverInput) {
    const name = assertName(input.name);
    const description = assertDescription(input.description ?? '');
    const endpoint = assertEndpoint(input.endpoint, this.guard);
    const patterns = compileSubscriptions(input.subscriptions);
    const options = deliveryOptions(input);
    const secret = input.secret ?? generateSecret();
    decodeSecret(secret, 'secret');

    const id = randomUUID();
    const now = new Date();
    try {
      const row = await this.prisma.webhookRx.create({
        data: {
          id,
          name,
          description,
          endpoint,
          ...options,
          timeCreated: now,
          timeModified: now,
          secrets: {
            create: {
              id: randomUUID(),
              secret,
              timeCreated: now,
              timeModified: now,
            },
          },
          subscriptions: {
            create: patterns.map((p) => subscriptionColumns(p, now)),
          },
        },
        include: receiverInclude,
      });
      return { receiver: toView(row), secret };
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new ConflictError(`a receiver named "${name}" already exists`);
      }
      throw error;
    }
  }

  /**
   * Lists live receivers in id order, at most `limit` of them after the id
   * `after`. `nextAfter` is the id to pass as `after` for the next page, or
   * null when this page is the last.
   */
  async list(options: { limit?: number; after?: string } = {}) {
    const limit = options.limit ?? 100;
    const rows = await this.prisma.webhookRx.findMany({
      where: {
        timeDeleted: null,
        ...(options.after !== undefined
          ? { id: { gt: assertUuid(options.after, 'after') } }
          : {}),
      },
      orderBy: { id: 'asc' },
      // One row more than the page tells whether another page follows.
      take: limit + 1,
      include: receiverInclude,
    });
    const page = rows.slice(0, limit).map(toView);
    const last = page[page.length - 1];
    return {
      receivers: page,
      nextAfter: rows.length > limit && last ? last.id : null,
    };
  }

  async get(idOrName: string): Promise<ReceiverView> {
    return toView(await this.findLive(idOrName));
  }

  async update(idOrName: string, input: UpdateReceiverInput) {
    const current = await this.findLive(idOrName);
    const name = input.name === undefined ? undefined : assertName(input.name);
    const description =
      input.description === undefined
        ? undefined
        : assertDescription(input.description);
    const endpoint =
      input.endpoint === undefined
        ? undefined
        : assertEndpoint(input.endpoint, this.guard);
    const patterns =
      input.subscriptions === undefined
        ? undefined
        : compileSubscriptions(input.subscriptions);
    const options = deliveryOptions(input);
    const now = new Date();
    try {
      const row = await this.prisma.$transaction(async (tx) => {
        // Locking the receiver row serializes concurrent updates. Two that
        // both replace the subscriptions would otherwise each delete the old
        // rows and insert the same new ones, and the second insert would
        // fail as a duplicate.
        await tx.$queryRaw`SELECT 1 FROM webhook_rx WHERE id = ${current.id}::uuid FOR UPDATE`;
        if (patterns !== undefined) {
          await tx.webhookRxSubscription.deleteMany({ where: { rxId: current.id } });
          await tx.webhookRxSubscription.createMany({
            data: patterns.map((p) => ({ rxId: current.id, ...subscriptionColumns(p, now) })),
          });
        }
        return tx.webhookRx.update({
          where: { id: current.id },
          data: {
            name,
            description,
            endpoint,
            ...options,
            timeModified: now,
            ...(patterns !== undefined
              ? { subscriptionGen: { increment: 1 } }
              : {}),
          },
          include: receiverInclude,
        });
      });
      return toView(row);
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new ConflictError(`a receiver named "${name}" already exists`);
      }
      throw error;
    }
  }

  /**
   * Soft-deletes a receiver: it gets no new deliveries, its pending ones end
   * without a request, and its delivery history stays readable.
   */
  async delete(idOrName: string): Promise<void> {
    const current = await this.findLive(idOrName);
    const now = new Date();
    await this.prisma.$transaction([
      this.prisma.webhookRx.update({
        where: { id: current.id },
        data: { timeDeleted: now, timeModified: now },
      }),
      this.prisma.webhookSecret.updateMany({
        where: { rxId: current.id, timeDeleted: null },
        data: { timeDeleted: now, timeModified: now },
      }),
    ]);
  }

  /** Adds a signing secret; every live secret signs every request. */
  async addSecret(idOrName: string, secret?: string) {
    const current = await this.findLive(idOrName);
    const value = secret ?? generateSecret();
    decodeSecret(value, 'secret');
    const now = new Date();
    const id = randomUUID();
    await this.prisma.$transaction([
      this.prisma.webhookSecret.create({
        data: { id, rxId: current.id, secret: value, timeCreated: now, timeModified: now },
      }),
      this.prisma.webhookRx.update({
        where: { id: current.id },
        data: { secretGen: { increment: 1 }, timeModified: now },
      }),
    ]);
    return { id, secret: value, time_created: now.toISOString() };
  }

  /** Deletes a secret unless it is the receiver's last live one. */
  async deleteSecret(idOrName: string, secretId: string): Promise<void> {
    const current = await this.findLive(idOrName);
    const id = assertUuid(secretId, 'secret_id');
    const now = new Date();
    await this.prisma.$transaction(async (tx) => {
      // Locking the receiver row serializes concurrent deletions, so two of
      // them cannot each see a second secret and remove both.
      await tx.$queryRaw`SELECT 1 FROM webhook_rx WHERE id = ${current.id}::uuid FOR UPDATE`;
      const live = await tx.webhookSecret.findMany({
        where: { rxId: current.id, timeDeleted: null },
        select: { id: true },
      });
      if (!live.some((s) => s.id === id)) throw new NotFoundError('secret', id);
      if (live.length === 1) {
        throw new ConflictError(
          `secret "${id}" is the last secret of receiver "${current.name}"; add a new secret before deleting it`,
        );
      }
      await tx.webhookSecret.update({
        where: { id },
        data: { timeDeleted: now, timeModified: now },
      });
      await tx.webhookRx.update({
        where: { id: current.id },
        data: { secretGen: { increment: 1 }, timeModified: now },
      });
    });
  }

  /**
   * Disables a receiver: it gets no new deliveries, and its pending ones end
   * without a request when a worker next picks them up. A receiver that is
   * already disabled keeps its time and reason, and `changed` is then false.
   */
  async disable(
    idOrName: string,
    reason?: string,
  ): Promise<{ receiver: ReceiverView; changed: boolean }> {
    const current = await this.findLive(idOrName);
    const text =
      reason === undefined
        ? OPERATOR_DISABLED_REASON
        : `${OPERATOR_DISABLED_REASON}: ${assertDisableReason(reason)}`;
    const now = new Date();
    const { count } = await this.prisma.webhookRx.updateMany({
      where: { id: current.id, timeDeleted: null, timeDisabled: null },
      data: { timeDisabled: now, disabledReason: text, timeModified: now },
    });
    return { receiver: await this.get(current.id), changed: count === 1 };
  }

  /**
   * Enables a disabled receiver and restarts its failure tracking. Deliveries
   * that ended while it was disabled stay failed.
   */
  async enable(idOrName: string): Promise<{ receiver: ReceiverView; changed: boolean }> {
    const current = await this.findLive(idOrName);
    const { count } = await this.prisma.webhookRx.updateMany({
      where: { id: current.id, timeDeleted: null, timeDisabled: { not: null } },
      data: {
        timeDisabled: null,
        disabledReason: null,
        timeFailingSince: null,
        timeModified: new Date(),
      },
    });
    return { receiver: await this.get(current.id), changed: count === 1 };
  }

  private async findLive(idOrName: string): Promise<ReceiverRow> {
    if (typeof idOrName !== 'string' || idOrName === '') {
      throw new ValidationError('receiver', 'must be a receiver id or name');
    }
    const byId = isUuid(idOrName);
    const row = await this.prisma.webhookRx.findFirst({
      where: byId
        ? { id: idOrName.toLowerCase(), timeDeleted: null }
        : { name: idOrName, timeDeleted: null },
      include: receiverInclude,
    });
    if (!row) throw new NotFoundError('receiver', idOrName);
    return row;
  }
}
