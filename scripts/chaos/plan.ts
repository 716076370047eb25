import { randomUUID } from 'node:crypto';
import { matchesSubscription } from '../demo/examples.js';
import type { SeededRandom } from './random.js';
import type { WorkerRole } from './worker-process.js';

/** Response pattern of a chaos receiver to requests whose signature verifies. */
export type ReceiverBehaviour = 'ok' | 'flaky' | 'slow';

/** A receiver that the run registers, with its subscriptions and behaviour. */
export interface ReceiverPlan {
  name: string;
  behaviour: ReceiverBehaviour;
  subscriptions: string[];
}

/** An event that the run publishes; its id is chosen before publishing. */
export interface PlannedEvent {
  id: string;
  eventClass: string;
  data: { n: number; tag: string };
}

/** Something that the run does to its workers or to Redis. */
export type Disruption =
  | { kind: 'kill'; signal: 'SIGKILL' | 'SIGTERM'; role?: WorkerRole }
  | { kind: 'flush' };

/** A disruption and when it happens, in ms after publishing starts. */
export interface ScheduledDisruption {
  atMs: number;
  disruption: Disruption;
}

export const EVENT_CLASSES = [
  'shop.order.created',
  'shop.order.paid',
  'shop.order.refunded',
  'shop.customer.created',
  'shop.customer.deleted',
  'billing.invoice.paid',
  'billing.invoice.failed',
  'billing.card.expiring',
  'ops.alert',
  'ops.deploy.finished',
];

/**
 * Subscription lists that the receivers take in turn: exact classes, `*`
 * and `**` globs, overlapping patterns, and one list that matches nothing
 * published.
 */
const SUBSCRIPTION_SETS = [
  ['shop.order.*'],
  ['shop.**'],
  ['billing.invoice.paid', 'billing.invoice.failed'],
  ['billing.**', 'ops.alert'],
  ['shop.order.created', 'shop.*.created'],
  ['ops.**'],
  ['*.customer.*', 'shop.order.refunded'],
  ['audit.**'],
  ['shop.order.paid', 'billing.invoice.paid', 'ops.deploy.finished'],
  ['*.*.paid'],
];

/**
 * Plans `count` receivers: about 15% flaky (fail about 30% of requests with
 * 500 or 503), about 15% slow (respond after 1 to 3 s), the rest respond 200.
 */
export function planReceivers(count: number): ReceiverPlan[] {
  const flaky = Math.max(1, Math.round(count * 0.15));
  const slow = Math.max(1, Math.round(count * 0.15));
  return Array.from({ length: count }, (_, index) => {
    let behaviour: ReceiverBehaviour = 'ok';
    if (index < flaky) behaviour = 'flaky';
    else if (index < flaky + slow) behaviour = 'slow';
    return {
      name: `chaos-${behaviour}-${index}`,
      behaviour,
      subscriptions: SUBSCRIPTION_SETS[index % SUBSCRIPTION_SETS.length]!,
    };
  });
}

/** Plans `count` events over EVENT_CLASSES, each with a fresh id. */
export function planEvents(count: number, random: SeededRandom): PlannedEvent[] {
  return Array.from({ length: count }, (_, n) => ({
    id: randomUUID(),
    eventClass: random.pick(EVENT_CLASSES),
    data: { n, tag: random.next().toString(36).slice(2, 10) },
  }));
}

/**
 * Returns the indexes of the receivers that an event of `eventClass` must
 * reach. It uses the demo's own glob matcher, not the one that dispatch
 * uses, so that a fault in either shows up as a difference.
 */
export function expectedReceivers(eventClass: string, receivers: readonly ReceiverPlan[]): number[] {
  const matched: number[] = [];
  for (const [index, receiver] of receivers.entries()) {
    if (receiver.subscriptions.some((pattern) => matchesSubscription(pattern, eventClass))) {
      matched.push(index);
    }
  }
  return matched;
}

/**
 * Plans random kills, half SIGKILL and half SIGTERM, about every
 * `intervalMs` (±50%) from `intervalMs` until `durationMs`, and one Redis
 * flush half-way through.
 */
export function planDisruptions(
  durationMs: number,
  intervalMs: number,
  random: SeededRandom,
): ScheduledDisruption[] {
  const plan: ScheduledDisruption[] = [];
  for (let atMs = intervalMs; atMs < durationMs; ) {
    const signal = random.next() < 0.5 ? 'SIGKILL' : 'SIGTERM';
    plan.push({ atMs, disruption: { kind: 'kill', signal } });
    atMs += Math.round(intervalMs * (0.5 + random.next()));
  }
  plan.push({ atMs: Math.round(durationMs / 2), disruption: { kind: 'flush' } });
  return plan.sort((a, b) => a.atMs - b.atMs);
}
