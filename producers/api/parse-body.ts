import { z } from 'zod';
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
    const unknown = issue.keys.map((key) => `"${key}"`).join(', ');
    const allowed =
      issue.path.length === 0 && schema instanceof z.ZodObject
        ? `; allowed fields are ${Object.keys(schema.shape)
            .map((key) => `"${key}"`)
            .join(', ')}`
        : '';
    throw new ValidationError(field, `has unknown field(s) ${unknown}${allowed}`);
  }
  if (issue.code === 'invalid_type') {
    const value = valueAt(body, issue.path);
    if (value === undefined) {
      throw new ValidationError(field, `is missing; expected ${withArticle(issue.expected)}`);
    }
    throw new ValidationError(
      field,
      `must be ${withArticle(issue.expected)}, got ${jsonType(value)}`,
    );
  }
  throw new ValidationError(field, issue.message);
}

function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let value = body;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function withArticle(typeName: string): string {
  return `${/^[aeiou]/.test(typeName) ? 'an' : 'a'} ${typeName}`;
}
