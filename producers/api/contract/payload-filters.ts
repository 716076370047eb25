import { z } from 'zod';
import { defineRoute } from './route.js';

// Payload filters are checked by shared/payload-filter.ts, which the
// receiver service and the CLI share, so that every error names the part of
// the filter that breaks a rule. These schemas check the JSON types around a
// filter and document the language.

const FILTER_DOC = {
  description:
    'A condition on the event data: {"path", and one of "eq", "in", "gt", "gte", "lt", "lte", "exists"}, or {"and": [...]}, {"or": [...]}, {"not": {...}}. A path is a dotted string such as "pull_request.labels[0].name" or an array of keys and indexes. A condition on a missing path is false, except {"exists": false}. See the README section "Payload filters" for the rules and limits.',
  examples: [{ and: [{ path: 'action', in: ['opened', 'closed'] }, { path: 'pull_request.additions', gt: 100 }] }],
};

/**
 * A payload filter. The service checks it, so that an error names the part
 * of the filter that breaks a rule, and `type` only documents it.
 */
export const payloadFilter = z.unknown().meta({ type: 'object', ...FILTER_DOC });

const subscriptionObject = z
  .object({
    event_class: z.string().meta({
      description: 'Event class or glob pattern, as in a plain string entry.',
      examples: ['github.pull_request.*'],
    }),
    filter: payloadFilter.optional().meta({
      type: ['object', 'null'],
      description:
        'Payload filter: the subscription gets only the events whose data match it. Null or left out: no filter.',
    }),
  })
  .strict();

/**
 * One entry of a receiver's `subscriptions`: a pattern string, or an object
 * with a pattern and a payload filter.
 */
export const subscriptionInput = z.union([z.string(), subscriptionObject], {
  error: (issue) => (issue.code === 'invalid_union' ? describeUnionIssue(issue) : undefined),
});

/**
 * Names the problem of an entry that is neither a string nor a valid
 * object. For an object, that is the first problem of the object form.
 */
function describeUnionIssue(issue: z.core.$ZodRawIssue<z.core.$ZodIssueInvalidUnion>): string {
  const input = issue.input;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return `must be an event class or glob pattern, or an object with "event_class" and "filter", got ${jsonType(input)}`;
  }
  const objectIssue = issue.errors[1]?.[0];
  if (objectIssue === undefined) return 'must be an object with "event_class" and "filter"';
  const field = objectIssue.path.map(String).join('.');
  return field === '' ? objectIssue.message : `"${field}" ${objectIssue.message}`;
}

/** The `filters` field of a receiver: the filter of each filtered pattern. */
export const subscriptionFilters = z.record(z.string(), payloadFilter).meta({
  description:
    'The payload filter of each filtered subscription, keyed by its pattern. Patterns without a filter are left out.',
  examples: [{ 'github.pull_request.*': { path: 'action', eq: 'opened' } }],
});

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

export const testPayloadFilterBody = z
  .object({
    filter: payloadFilter.refine((value) => value !== undefined, {
      error: 'is missing; send a filter such as {"path": "action", "eq": "opened"}',
    }),
    data: z
      .unknown()
      .refine((value) => value !== undefined, { error: 'is missing; send any JSON value, such as {}' })
      .meta({ description: 'Sample event data, as `POST /v1/events` takes it.' }),
  })
  .strict();

export const testPayloadFilter = defineRoute({
  method: 'POST',
  path: '/v1/filters/test',
  operationId: 'testPayloadFilter',
  summary: 'Check a payload filter against sample data',
  description:
    'Checks the filter as a receiver save would and evaluates it against the data, with the result that dispatch would get. Nothing is stored.',
  tags: ['receivers'],
  body: testPayloadFilterBody,
  response: {
    status: 200,
    description: 'Whether the data matches, and the SQL/JSON path predicate that dispatch evaluates.',
    schema: z.object({
      matches: z.boolean(),
      jsonpath: z.string().meta({
        description: 'The filter compiled for PostgreSQL: `data::jsonb @@ jsonpath` gives `matches`.',
      }),
    }),
  },
  errors: [],
});

export const payloadFilterRoutes = [testPayloadFilter] as const;
