import { z } from 'zod';
import { CLASS_PATTERN, CLASS_RULE, MAX_EVENT_CLASS_LENGTH } from '../../../shared/event-class.js';
import { UUID_RULE } from '../../../shared/ids.js';

// Field schemas that several routes share. Their `error` options keep the
// messages of the checks in shared/, so the API names each rule the same way
// as the library and the CLI.

/** Builds the schema of a UUID in any letter case, lowercased as `assertUuid` does. */
export function uuid() {
  return z
    .guid({ error: (issue) => `${UUID_RULE}, got ${JSON.stringify(issue.input)}` })
    .toLowerCase();
}

/** A UUID in a response: always lowercase. */
export const uuidOutput = z.guid();

/** An ISO 8601 UTC timestamp with milliseconds, such as `2026-12-04T16:03:05.857Z`. */
export const timestamp = z.string().meta({ format: 'date-time', examples: ['2026-12-04T16:03:05.857Z'] });

/** An event class such as `github.push.created`; the rule of `assertEventClass`. */
export const eventClass = z
  .string({
    error: (issue) =>
      issue.input === undefined || issue.input === null
        ? `is missing; it ${CLASS_RULE}`
        : `${CLASS_RULE}, got ${typeof issue.input}`,
  })
  .max(MAX_EVENT_CLASS_LENGTH, {
    error: (issue) =>
      `must be at most ${MAX_EVENT_CLASS_LENGTH} characters, got ${String(issue.input).length}`,
  })
  .regex(CLASS_PATTERN, { error: (issue) => `${CLASS_RULE}, got "${String(issue.input)}"` })
  .meta({ examples: ['github.push.created'] });

export const MAX_PAGE_LIMIT = 1000;
export const DEFAULT_PAGE_LIMIT = 100;

const LIMIT_RULE = `must be a whole number from 1 to ${MAX_PAGE_LIMIT}`;

/**
 * The `limit` query parameter of a listing: a page size that defaults to
 * 100. Query values arrive as text, so digits are read as a number first.
 */
export const pageLimit = z
  .preprocess(
    (value: unknown) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value),
    z
      .int({ error: (issue) => `${LIMIT_RULE}, got "${String(issue.input)}"` })
      .min(1, { error: (issue) => `${LIMIT_RULE}, got "${String(issue.input)}"` })
      .max(MAX_PAGE_LIMIT, { error: (issue) => `${LIMIT_RULE}, got "${String(issue.input)}"` }),
  )
  .optional()
  .meta({ description: `Page size, ${DEFAULT_PAGE_LIMIT} when left out.` });

/** The `after` query parameter of a listing: the previous page's `next_after`. */
export const pageAfter = uuid()
  .optional()
  .meta({
    description:
      'Cursor: the `next_after` of the previous page. Leave it out for the first page.',
  });

/** The `next_after` field of a listing's response. */
export const nextAfter = uuidOutput.nullable().meta({
  description: 'Pass as `after` to read the next page; null on the last page.',
});
