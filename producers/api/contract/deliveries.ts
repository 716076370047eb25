import { z } from 'zod';
import { delivery } from './events.js';
import { pageLimit, timestamp, uuid, uuidOutput } from './fields.js';
import { defineRoute } from './route.js';

// Timestamps in queries and bodies are checked by the services, which the
// CLI shares, so that both name the rule the same way.

const TIMESTAMP_INPUT_DOC = {
  format: 'date-time',
  examples: ['2026-12-01T00:00:00Z'],
};

const receiverReference = z.string().meta({ description: 'Receiver id or name.' });

export const deliveryState = z.enum(['pending', 'delivered', 'failed']);
export type DeliveryState = z.output<typeof deliveryState>;

export const deliverySummary = delivery
  .omit({ attempt_log: true })
  .meta({ id: 'DeliverySummary', description: 'A delivery without its attempts.' });

export const resendBatch = z
  .object({
    id: uuidOutput,
    rx_id: uuidOutput.nullable().meta({
      description: 'The receiver whose failed deliveries are resent; null for every live receiver.',
    }),
    state: z.enum(['running', 'completed', 'failed']),
    since: timestamp.nullable().meta({
      description: "Inclusive start of the failed deliveries' time_created; null for no lower bound.",
    }),
    until: timestamp.meta({
      description: "Exclusive end of the failed deliveries' time_created, at most the time the resend was created.",
    }),
    num_matched: z.int().meta({ description: 'Failed deliveries found in the range so far.' }),
    num_created: z.int().meta({ description: 'Resend deliveries created so far.' }),
    num_skipped: z.int().meta({
      description:
        'Matched deliveries that got no resend, because a delivery of the same event to the same receiver is delivered or pending, or because the receiver is deleted or disabled.',
    }),
    deliveries: z
      .object({ pending: z.int(), delivered: z.int(), failed: z.int() })
      .meta({ description: 'States of the resend deliveries created so far.' }),
    error: z.string().nullable().meta({ description: 'Why the resend stopped, when its state is failed.' }),
    time_created: timestamp,
    time_modified: timestamp,
    time_completed: timestamp.nullable(),
  })
  .meta({ id: 'ResendBatch', description: 'A bulk resend of failed deliveries.' });

const deliveryParams = z.object({ id: uuid().meta({ description: 'Delivery id.' }) });

export const listDeliveries = defineRoute({
  method: 'GET',
  path: '/v1/deliveries',
  operationId: 'listDeliveries',
  summary: 'List deliveries',
  description:
    'Deliveries newest first, filtered by receiver, state and time of creation in any combination, one page at a time. Follow `next_after` until it is null. Deliveries created while a client pages come before its position, so paging neither repeats nor skips rows.',
  tags: ['deliveries'],
  query: z
    .object({
      receiver: receiverReference.optional().meta({
        description: 'Receiver id or name; an id also finds a deleted receiver.',
      }),
      state: deliveryState.optional(),
      since: z
        .string()
        .optional()
        .meta({ ...TIMESTAMP_INPUT_DOC, description: 'Deliveries created at or after this time.' }),
      until: z
        .string()
        .optional()
        .meta({ ...TIMESTAMP_INPUT_DOC, description: 'Deliveries created before this time.' }),
      limit: pageLimit,
      after: z
        .string()
        .optional()
        .meta({ description: 'Cursor: the `next_after` of the previous page. Leave it out for the first page.' }),
    })
    .strict(),
  response: {
    status: 200,
    description: 'One page of deliveries.',
    schema: z.object({
      deliveries: z.array(deliverySummary),
      next_after: z.string().nullable().meta({
        description: 'Pass as `after` to read the next page; null on the last page.',
      }),
    }),
  },
  errors: [404],
});

export const getDelivery = defineRoute({
  method: 'GET',
  path: '/v1/deliveries/:id',
  operationId: 'getDelivery',
  summary: 'Read a delivery',
  description: 'The delivery with every attempt: result, HTTP status, duration and unreachable reason.',
  tags: ['deliveries'],
  params: deliveryParams,
  response: { status: 200, description: 'The delivery.', schema: delivery },
  errors: [404],
});

export const resendDelivery = defineRoute({
  method: 'POST',
  path: '/v1/deliveries/:id/resend',
  operationId: 'resendDelivery',
  summary: 'Resend a delivery',
  description:
    "Creates a new delivery of the delivery's event to its receiver, with `triggered_by` set to `resend`, whatever the old delivery's state. The old delivery keeps its attempts. A deleted or disabled receiver gets no resend (409).",
  tags: ['deliveries'],
  params: deliveryParams,
  response: { status: 202, description: 'The new delivery, queued.', schema: delivery },
  errors: [404, 409],
});

export const resendEvent = defineRoute({
  method: 'POST',
  path: '/v1/events/:id/resend',
  operationId: 'resendEvent',
  summary: 'Resend an event to a receiver',
  description:
    'Creates a delivery of the event to the receiver, with `triggered_by` set to `resend`, also when the event was never dispatched to it, such as to a receiver created after the event. A deleted or disabled receiver gets no resend (409).',
  tags: ['deliveries'],
  params: z.object({ id: uuid().meta({ description: 'Event id.' }) }),
  body: z.object({ receiver: receiverReference }).strict(),
  response: { status: 202, description: 'The new delivery, queued.', schema: delivery },
  errors: [404, 409],
});

export const createResend = defineRoute({
  method: 'POST',
  path: '/v1/resends',
  operationId: 'createResend',
  summary: 'Resend failed deliveries in bulk',
  description:
    'Starts a background job that creates one resend delivery per failed delivery created in [`since`, `until`), of one receiver or of every live receiver, in pages of RESEND_PAGE_SIZE. An event is resent once, and not at all when a delivery of it to the same receiver is delivered or pending. Probe deliveries are not resent. Poll `GET /v1/resends/{id}` for the progress.',
  tags: ['deliveries'],
  body: z
    .object({
      receiver: receiverReference
        .optional()
        .meta({ description: 'Receiver id or name; leave it out to resend to every live receiver.' }),
      state: z
        .literal('failed', { error: (issue) => `must be "failed", got ${JSON.stringify(issue.input)}` })
        .optional()
        .meta({ description: 'State of the deliveries to resend; only `failed` is supported.' }),
      since: z
        .string()
        .optional()
        .meta({ ...TIMESTAMP_INPUT_DOC, description: 'Failed deliveries created at or after this time; no lower bound when left out.' }),
      until: z
        .string()
        .optional()
        .meta({ ...TIMESTAMP_INPUT_DOC, description: 'Failed deliveries created before this time; now when left out or later.' }),
    })
    .strict(),
  bodyRequired: false,
  response: { status: 202, description: 'The bulk resend, started.', schema: resendBatch },
  errors: [404, 409],
});

export const getResend = defineRoute({
  method: 'GET',
  path: '/v1/resends/:id',
  operationId: 'getResend',
  summary: 'Read a bulk resend',
  tags: ['deliveries'],
  params: z.object({ id: uuid().meta({ description: 'Resend id.' }) }),
  response: { status: 200, description: 'The bulk resend with its progress.', schema: resendBatch },
  errors: [404],
});

export const probeReceiver = defineRoute({
  method: 'POST',
  path: '/v1/receivers/:id/probe',
  operationId: 'probeReceiver',
  summary: 'Probe a receiver',
  description:
    'Sends an event of class `webhook.probe` with data `{}` to the receiver alone and waits up to PROBE_TIMEOUT_MS for its single attempt, which a delivery worker makes. A disabled receiver is probed all the same, so that an operator can check whether it works again. With `resend: true`, a probe that succeeds starts a bulk resend of every failed delivery of the receiver, which needs an enabled receiver (409 otherwise). A probe without a result in time is a 504 `probe_timeout`; its delivery stays readable.',
  tags: ['receivers'],
  params: z.object({ id: receiverReference }),
  body: z
    .object({
      resend: z.boolean().optional().meta({
        description: "Start a bulk resend of the receiver's failed deliveries when the probe succeeds.",
      }),
    })
    .strict(),
  bodyRequired: false,
  response: {
    status: 200,
    description: 'The probe delivery with its attempt, and the bulk resend that it started.',
    schema: z.object({
      probe: delivery,
      resend_batch: resendBatch.nullable(),
    }),
  },
  errors: [404, 409, 504],
});

export const deliveryRoutes = [
  listDeliveries,
  getDelivery,
  resendDelivery,
  resendEvent,
  createResend,
  getResend,
  probeReceiver,
] as const;
