import { z } from 'zod';
import { nextAfter, pageAfter, pageLimit, timestamp, uuid, uuidOutput } from './fields.js';
import { subscriptionFilters, subscriptionInput } from './payload-filters.js';
import { defineRoute } from './route.js';

// The rules of names, endpoints, patterns, secrets and limits are checked by
// ReceiverService, which the CLI shares, so these schemas check JSON types
// and document the rest with JSON Schema keywords. A test compares the
// documented bounds with the service's constants.

const NAME_DOC = {
  description:
    'Letters, digits, "_", "." and "-", starting with a letter or digit, and not in the form of a UUID. Unique among live receivers.',
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
  minLength: 1,
  maxLength: 128,
  examples: ['billing'],
};

const DESCRIPTION_DOC = { maxLength: 1024 };

const ENDPOINT_DOC = {
  description:
    'Absolute http or https URL without credentials. Loopback, private, link-local and reserved addresses are rejected unless ALLOWED_PRIVATE_NETWORKS opens them.',
  format: 'uri',
  examples: ['https://billing.example.com/hooks'],
};

const SUBSCRIPTIONS_DOC = {
  description:
    'Event classes or glob patterns. In a pattern, a `*` segment matches exactly one segment and `**` one or more, so `github.**` matches `github.push` but not `github`. An entry may also be an object {"event_class", "filter"} whose payload filter the event data must match. Duplicates are dropped; one pattern with two different filters is an error.',
  maxItems: 100,
  examples: [['github.push', 'billing.**']],
};

const SECRET_DOC = {
  description:
    'Signing secret: "whsec_" followed by base64 of 24 to 64 bytes. One is generated when left out.',
  pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$',
};

const ORDERED_DOC = {
  description: 'Send deliveries one at a time in event creation order.',
};

const RATE_LIMIT_DOC = {
  description: 'Requests per second over all delivery workers; null is no limit.',
  type: 'integer',
  minimum: 1,
  maximum: 10_000,
};

const MAX_IN_FLIGHT_DOC = {
  description: 'Requests in flight at once over all delivery workers; null is no limit.',
  type: 'integer',
  minimum: 1,
  maximum: 1_000,
};

/** Bounds that the schemas document, for the test that compares them with ReceiverService. */
export const DOCUMENTED_RECEIVER_BOUNDS = {
  maxNameLength: NAME_DOC.maxLength,
  maxDescriptionLength: DESCRIPTION_DOC.maxLength,
  maxSubscriptions: SUBSCRIPTIONS_DOC.maxItems,
  maxRateLimitPerSecond: RATE_LIMIT_DOC.maximum,
  maxInFlight: MAX_IN_FLIGHT_DOC.maximum,
};

const fields = {
  name: z.string().meta(NAME_DOC),
  description: z.string().meta(DESCRIPTION_DOC),
  endpoint: z.string().meta(ENDPOINT_DOC),
  subscriptions: z.array(subscriptionInput).meta(SUBSCRIPTIONS_DOC),
  secret: z.string().meta(SECRET_DOC),
  ordered: z.boolean().meta(ORDERED_DOC),
  rate_limit_per_second: z.number().nullable().meta(RATE_LIMIT_DOC),
  max_in_flight: z.number().nullable().meta(MAX_IN_FLIGHT_DOC),
};

export const createReceiverBody = z
  .object({
    name: fields.name,
    description: fields.description.optional(),
    endpoint: fields.endpoint,
    subscriptions: fields.subscriptions,
    secret: fields.secret.optional(),
    ordered: fields.ordered.optional(),
    rate_limit_per_second: fields.rate_limit_per_second.optional(),
    max_in_flight: fields.max_in_flight.optional(),
  })
  .strict();

export const updateReceiverBody = z
  .object({
    name: fields.name.optional(),
    description: fields.description.optional(),
    endpoint: fields.endpoint.optional(),
    subscriptions: fields.subscriptions
      .optional()
      .meta({ description: 'Replaces every subscription when given.' }),
    ordered: fields.ordered.optional(),
    rate_limit_per_second: fields.rate_limit_per_second.optional(),
    max_in_flight: fields.max_in_flight.optional(),
  })
  .strict();

export const secretSummary = z
  .object({ id: uuidOutput, time_created: timestamp })
  .meta({ id: 'SecretSummary', description: 'A live signing secret, without its value.' });

export const receiver = z
  .object({
    id: uuidOutput,
    name: z.string(),
    description: z.string(),
    endpoint: z.string(),
    subscriptions: z.array(z.string()).meta({ description: 'Patterns in sorted order.' }),
    filters: subscriptionFilters,
    secrets: z.array(secretSummary),
    ordered: z.boolean(),
    rate_limit_per_second: z.int().nullable(),
    max_in_flight: z.int().nullable(),
    time_disabled: timestamp.nullable().meta({
      description: 'Set while the receiver is disabled; it then gets no deliveries.',
    }),
    disabled_reason: z.string().nullable(),
    time_created: timestamp,
    time_modified: timestamp,
  })
  .meta({ id: 'Receiver', description: 'A receiver; secret values are never part of it.' });

export const createdReceiver = receiver
  .extend({
    secret: z.string().meta({
      description: 'The signing secret. This response is the only one that shows it.',
    }),
  })
  .meta({ id: 'CreatedReceiver' });

export const createdSecret = z
  .object({
    id: uuidOutput,
    secret: z.string().meta({ description: 'The secret. This response is the only one that shows it.' }),
    time_created: timestamp,
  })
  .meta({ id: 'CreatedSecret' });

const receiverParams = z.object({
  id: z.string().meta({ description: 'Receiver id or name.' }),
});

const secretParams = receiverParams.extend({
  secret_id: uuid().meta({ description: 'Secret id.' }),
});

export const createReceiver = defineRoute({
  method: 'POST',
  path: '/v1/receivers',
  operationId: 'createReceiver',
  summary: 'Create a receiver',
  tags: ['receivers'],
  body: createReceiverBody,
  response: {
    status: 201,
    description: 'The receiver, with its secret shown this once.',
    schema: createdReceiver,
  },
  errors: [409],
});

export const listReceivers = defineRoute({
  method: 'GET',
  path: '/v1/receivers',
  operationId: 'listReceivers',
  summary: 'List receivers',
  description:
    'Live receivers in id order, one page at a time. Follow `next_after` until it is null.',
  tags: ['receivers'],
  query: z.object({ limit: pageLimit, after: pageAfter }),
  response: {
    status: 200,
    description: 'One page of receivers.',
    schema: z.object({ receivers: z.array(receiver), next_after: nextAfter }),
  },
  errors: [],
});

export const getReceiver = defineRoute({
  method: 'GET',
  path: '/v1/receivers/:id',
  operationId: 'getReceiver',
  summary: 'Read a receiver',
  tags: ['receivers'],
  params: receiverParams,
  response: { status: 200, description: 'The receiver.', schema: receiver },
  errors: [404],
});

export const updateReceiver = defineRoute({
  method: 'PATCH',
  path: '/v1/receivers/:id',
  operationId: 'updateReceiver',
  summary: 'Change a receiver',
  description: 'Changes the given fields and keeps the others.',
  tags: ['receivers'],
  params: receiverParams,
  body: updateReceiverBody,
  response: { status: 200, description: 'The changed receiver.', schema: receiver },
  errors: [404, 409],
});

export const deleteReceiver = defineRoute({
  method: 'DELETE',
  path: '/v1/receivers/:id',
  operationId: 'deleteReceiver',
  summary: 'Delete a receiver',
  description:
    'The receiver gets no new deliveries, its pending ones end without a request, and its delivery history stays readable. Its name can be used again.',
  tags: ['receivers'],
  params: receiverParams,
  response: { status: 204, description: 'Deleted.' },
  errors: [404],
});

export const addReceiverSecret = defineRoute({
  method: 'POST',
  path: '/v1/receivers/:id/secrets',
  operationId: 'addReceiverSecret',
  summary: 'Add a signing secret',
  description:
    'Every live secret signs every request, so a receiver can switch to the new secret before the old one is deleted.',
  tags: ['receivers'],
  params: receiverParams,
  body: z.object({ secret: fields.secret.optional() }).strict(),
  bodyRequired: false,
  response: { status: 201, description: 'The new secret, shown this once.', schema: createdSecret },
  errors: [404],
});

export const listReceiverSecrets = defineRoute({
  method: 'GET',
  path: '/v1/receivers/:id/secrets',
  operationId: 'listReceiverSecrets',
  summary: "List a receiver's secrets",
  tags: ['receivers'],
  params: receiverParams,
  response: {
    status: 200,
    description: 'Live secrets, oldest first, without their values.',
    schema: z.object({ secrets: z.array(secretSummary) }),
  },
  errors: [404],
});

export const deleteReceiverSecret = defineRoute({
  method: 'DELETE',
  path: '/v1/receivers/:id/secrets/:secret_id',
  operationId: 'deleteReceiverSecret',
  summary: 'Delete a signing secret',
  description: "A receiver's last live secret cannot be deleted (409).",
  tags: ['receivers'],
  params: secretParams,
  response: { status: 204, description: 'Deleted.' },
  errors: [404, 409],
});

export const receiverRoutes = [
  createReceiver,
  listReceivers,
  getReceiver,
  updateReceiver,
  deleteReceiver,
  addReceiverSecret,
  listReceiverSecrets,
  deleteReceiverSecret,
] as const;
