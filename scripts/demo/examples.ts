import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { WebhookDefinition } from '@octokit/webhooks-examples';

/** One example payload that the demo publishes as an event. */
export interface DemoEvent {
  /** Event id that the demo supplies, so that it has every id before publishing. */
  readonly id: string;
  readonly eventClass: string;
  readonly data: unknown;
}

const SEGMENT_RULE = /^[A-Za-z0-9_-]+$/;

/** Replaces every character outside [A-Za-z0-9_-] so that `text` is one class segment. */
function toSegment(text: string): string {
  const segment = text.replace(/[^A-Za-z0-9_-]/g, '_');
  return segment === '' ? '_' : segment;
}

/**
 * Returns the event class of a GitHub webhook payload: `github.<event>.<action>`,
 * or `github.<event>` when the payload has no `action`.
 */
export function eventClassFor(eventName: string, payload: unknown): string {
  const action =
    typeof payload === 'object' && payload !== null && 'action' in payload
      ? (payload as { action: unknown }).action
      : undefined;
  const segments = ['github', toSegment(eventName)];
  if (typeof action === 'string' && action !== '') segments.push(toSegment(action));
  return segments.join('.');
}

/**
 * Loads every example payload of `@octokit/webhooks-examples` (the
 * api.github.com set, which is the package's main file: a JSON array of
 * `{ name, actions, examples }`) and gives each a fresh event id.
 */
export function loadExampleEvents(): DemoEvent[] {
  const require = createRequire(import.meta.url);
  const definitions = require('@octokit/webhooks-examples') as WebhookDefinition[];
  const events: DemoEvent[] = [];
  for (const definition of definitions) {
    for (const payload of definition.examples) {
      events.push({
        id: randomUUID(),
        eventClass: eventClassFor(definition.name, payload),
        data: payload,
      });
    }
  }
  return events;
}

/**
 * Tells whether `eventClass` matches a subscription. In a pattern `*` is
 * exactly one segment and `**` one or more, so `github.**` does not match
 * `github`. The demo computes its expected deliveries with this function
 * instead of the dispatcher's matcher, so that the two check each other.
 */
export function matchesSubscription(pattern: string, eventClass: string): boolean {
  return matchSegments(pattern.split('.'), eventClass.split('.'));
}

function matchSegments(pattern: readonly string[], segments: readonly string[]): boolean {
  if (pattern.length === 0) return segments.length === 0;
  const [head, ...rest] = pattern;
  if (segments.length === 0) return false;
  if (head === '**') {
    // `**` consumes one or more segments, so try every count.
    for (let taken = 1; taken <= segments.length; taken++) {
      if (matchSegments(rest, segments.slice(taken))) return true;
    }
    return false;
  }
  if (head !== '*' && head !== segments[0]) return false;
  if (head === '*' && !SEGMENT_RULE.test(segments[0]!)) return false;
  return matchSegments(rest, segments.slice(1));
}
