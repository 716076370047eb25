import { z } from 'zod';
import { eventClass, timestamp, uuid, uuidOutput } from './fields.js';
import { defineRoute } from './route.js';

/** Printable ASCII, 1 to 255 characters: the rule of `Idempotency-Key`. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

export const idempotencyKey = z
  .string()
  .regex(IDEMPOTENCY_KEY_PATTERN, {
    error: (issue) => `must be 1 to 255 printable ASCII characters, got ${describeKey(String(issue.input))}`,
  })
  .meta({
    description:
      'Any 1 to 255 printable ASCII characters, such as a UUID. A repeat with the same key and the same body within IDEMPOTENCY_KEY_TTL_MS (24 hours by default) gets the first response again, with `Idempotent-Replayed: true`, and publishes nothing. The same key with a different body gets 422 `idempotency_key_reused`. While the first request still runs, a repeat waits for it up to 5 seconds and then gets 409 `idempotency_key_in_progress`. Error responses are not kept, so a repeat of a failed request runs again.',
    examples: ['8e0f4c1a-order-1234'],
  });

function describeKey(value: string): string {
  if (value.length === 0) return 'an empty value';
  if (value.length > 255) return `${value.length} characters`;
  const index = [...value].findIndex((character) => !IDEMPOTENCY_KEY_PATTERN.test(character));
  const character = [...value][index] ?? '';
  const code = character.codePointAt(0)?.toString(16).toUpperCase().padStart(4, '0');
  return `character U+${code} at position ${index + 1}`;
}

export const publishEventBody = z
  .object({
    event_class: eventClass,
    data: z
      .unknown()
      .refine((value) => value !== undefined, {
        error: 'is missing; send any JSON value, such as {}',
      })
      .meta({
        description:
          'Any JSON value, at most MAX_PAYLOAD_BYTES (256 KiB by default) as JSON. Integers must fit in ±(2^53-1).',
      }),
    id: uuid()
      .optional()
      .meta({
        description:
          'Optional event id. Publishing one id twice stores one event; the second time with different data is a 409 conflict.',
      }),
  })
  .strict();

export const publishedEvent = z
  .object({
    id: uuidOutput,
    event_class: z.string(),
    time_created: timestamp,
    created: z.boolean().meta({
      description: 'False when an event with this id was already stored.',
    }),
  })
  .meta({ id: 'PublishedEvent' });

export const event = z
  .object({
    id: uuidOutput,
    event_class: z.string(),
    data: z.unknown().meta({ description: 'The JSON value that was published.' }),
    time_created: timestamp,
    time_dispatched: timestamp.nullable().meta({
      description: 'When the dispatch worker created the deliveries; null before.',
    }),
    num_dispatched: z.int().meta({ description: 'Number of deliveries created for the event.' }),
  })
  .meta({ id: 'Event' });

export const deliveryAttempt = z
  .object({
    attempt: z.int().meta({ description: 'Attempt number, from 1 without gaps.' }),
    result: z.enum(['succeeded', 'failed_http_error', 'failed_unreachable', 'failed_timeout']),
    response_status: z.int().nullable(),
    response_duration_ms: z.int().nullable(),
    response_body: z.string().nullable().meta({
      description: "The start of the receiver's response, up to RESPONSE_BODY_LIMIT_BYTES.",
    }),
    unreachable_reason: z.string().nullable(),
    time_created: timestamp,
  })
  .meta({ id: 'DeliveryAttempt' });

export const delivery = z
  .object({
    id: uuidOutput,
    event_id: uuidOutput,
    rx_id: uuidOutput,
    triggered_by: z.enum(['event', 'resend', 'probe']),
    state: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.int(),
    failure_reason: z.string().nullable(),
    time_created: timestamp,
    time_completed: timestamp.nullable(),
    attempt_log: z.array(deliveryAttempt),
  })
  .meta({ id: 'Delivery' });

const eventIdParams = z.object({ id: uuid().meta({ description: 'Event id.' }) });

export const publishEvent = defineRoute({
  method: 'POST',
  path: '/v1/events',
  operationId: 'publishEvent',
  summary: 'Publish an event',
  description:
    'Stores the event and queues it for dispatch to every receiver subscribed to its class. The stored row is the commit point: the event is delivered even when Redis is down at the time.',
  tags: ['events'],
  headers: z.object({ 'Idempotency-Key': idempotencyKey.optional() }),
  body: publishEventBody,
  response: {
    status: 202,
    description: 'Event stored and queued.',
    schema: publishedEvent,
    headers: {
      'Idempotent-Replayed': {
        description: 'Present and `true` when the response is the replay of an earlier request with the same Idempotency-Key.',
        schema: z.literal('true'),
      },
    },
  },
  errors: [409, 422],
});

export const getEvent = defineRoute({
  method: 'GET',
  path: '/v1/events/:id',
  operationId: 'getEvent',
  summary: 'Read an event',
  tags: ['events'],
  params: eventIdParams,
  response: { status: 200, description: 'The event.', schema: event },
  errors: [404],
});

export const listEventDeliveries = defineRoute({
  method: 'GET',
  path: '/v1/events/:id/deliveries',
  operationId: 'listEventDeliveries',
  summary: "List an event's deliveries",
  description: 'One delivery per receiver, oldest first, each with its attempts.',
  tags: ['events'],
  params: eventIdParams,
  response: {
    status: 200,
    description: "The event's deliveries.",
    schema: z.object({ deliveries: z.array(delivery) }),
  },
  errors: [404],
});

export const eventRoutes = [publishEvent, getEvent, listEventDeliveries] as const;
