import { Prisma } from '../shared/db/client.js';
import { ValidationError } from '../shared/errors.js';
import { compilePattern, type CompiledPattern } from '../shared/event-class.js';
import {
  compileFilter,
  type CompiledFilter,
  type PayloadFilter,
} from '../shared/payload-filter.js';

/** A subscription with an optional payload filter. A plain string is a subscription without one. */
export interface SubscriptionInput {
  event_class: string;
  /**
   * A PayloadFilter, or null for none. It is typed unknown because API
   * bodies reach the service unchecked, and compileFilter checks it.
   */
  filter?: unknown;
}

/** A checked subscription: its pattern and, when it has one, its compiled filter. */
export interface CompiledSubscription {
  pattern: CompiledPattern;
  filter: CompiledFilter | null;
}

const SUBSCRIPTION_FIELDS = ['event_class', 'filter'];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** Checks one entry of a subscription list: a pattern string or `{event_class, filter}`. */
export function compileSubscription(item: unknown, field: string): CompiledSubscription {
  if (typeof item === 'string') return { pattern: compilePattern(item, field), filter: null };
  if (!isPlainObject(item)) {
    throw new ValidationError(
      field,
      `must be an event class or glob pattern such as "github.*", or an object such as {"event_class": "github.*", "filter": {"path": "action", "eq": "opened"}}, got ${jsonType(item)}`,
    );
  }
  const unknown = Object.keys(item).filter((key) => !SUBSCRIPTION_FIELDS.includes(key));
  if (unknown.length > 0) {
    throw new ValidationError(
      field,
      `has unknown field(s) ${unknown.map((key) => `"${key}"`).join(', ')}; allowed fields are "event_class", "filter"`,
    );
  }
  if (item.event_class === undefined) {
    throw new ValidationError(
      `${field}.event_class`,
      'is missing; give an event class or glob pattern such as "github.*"',
    );
  }
  const pattern = compilePattern(item.event_class, `${field}.event_class`);
  const filter =
    item.filter === undefined || item.filter === null
      ? null
      : compileFilter(item.filter, `${field}.filter`);
  return { pattern, filter };
}

/**
 * Drops repeated patterns, keeping the first. A pattern is one row per
 * receiver, so repeating it with a different filter is an error.
 */
export function uniqueSubscriptions(
  subscriptions: readonly CompiledSubscription[],
  field: string,
): CompiledSubscription[] {
  const firstIndex = new Map<string, number>();
  subscriptions.forEach((subscription, index) => {
    const pattern = subscription.pattern.pattern;
    const earlier = firstIndex.get(pattern);
    if (earlier === undefined) {
      firstIndex.set(pattern, index);
      return;
    }
    const jsonpath = subscription.filter?.jsonpath ?? null;
    if ((subscriptions[earlier]!.filter?.jsonpath ?? null) !== jsonpath) {
      throw new ValidationError(
        `${field}[${index}]`,
        `repeats "${pattern}" of ${field}[${earlier}] with a different filter; give each pattern once and join its filters with "or"`,
      );
    }
  });
  return [...firstIndex.values()].map((index) => subscriptions[index]!);
}

/** Builds the columns of a webhook_rx_subscription row, without rx_id. */
export function subscriptionColumns(subscription: CompiledSubscription, now: Date) {
  const { pattern, filter } = subscription;
  return {
    eventClass: pattern.pattern,
    isGlob: pattern.isGlob,
    eventClassRegex: pattern.regex,
    filter: filter === null ? Prisma.DbNull : (filter.filter as Prisma.InputJsonValue),
    filterJsonpath: filter?.jsonpath ?? null,
    timeCreated: now,
  };
}

/** Collects the filters of stored subscriptions by pattern, leaving out unfiltered patterns. */
export function filtersByPattern(
  rows: readonly { eventClass: string; filter: Prisma.JsonValue | null }[],
): Record<string, PayloadFilter> {
  // fromEntries defines own properties, so a pattern named "__proto__"
  // stays a key instead of replacing the object's prototype.
  return Object.fromEntries(
    rows
      .filter((row) => row.filter !== null)
      .map((row) => [row.eventClass, row.filter as PayloadFilter]),
  );
}
