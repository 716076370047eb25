import type { z } from 'zod';
import { ValidationError } from '../../shared/errors.js';

/**
 * Checks a request body against a schema and turns the first problem into a
 * ValidationError that names the field, such as `subscriptions[2]`.
 */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === undefined || body === null) {
    throw new ValidationError('body', 'is missing; send a JSON object');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field =
    issue.path.length === 0
      ? 'body'
      : issue.path
          .map((part, index) =>
            typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`,
          )
          .join('');
  if (issue.code === 'unrecognized_keys') {
    throw new ValidationError(
      field,
      `has unknown field(s) ${issue.keys.map((key) => `"${key}"`).join(', ')}`,
    );
  }
  throw new ValidationError(field, issue.message);
}
