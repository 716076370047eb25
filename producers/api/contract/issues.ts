import { z } from 'zod';

/**
 * Messages of the checks that the contract's schemas leave to zod. A schema
 * that passes its own `error` option overrides them, because zod prefers a
 * schema's error over the one given to `safeParse`.
 */
export const issueMessages: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = withArticle(typeName(issue.expected));
      if (issue.input === undefined) return `is missing; expected ${expected}`;
      return `must be ${expected}, got ${jsonType(issue.input)}`;
    }
    case 'unrecognized_keys': {
      const unknown = issue.keys.map((key) => `"${key}"`).join(', ');
      const shape = (issue.inst as z.ZodObject | undefined)?.shape;
      const allowed = shape
        ? `; allowed fields are ${Object.keys(shape)
            .map((key) => `"${key}"`)
            .join(', ')}`
        : '';
      return `has unknown field(s) ${unknown}${allowed}`;
    }
    case 'too_big':
      return `must ${sizeRule(issue.origin, 'at most', issue.maximum)}, got ${sizeOf(issue.input)}`;
    case 'too_small':
      return `must ${sizeRule(issue.origin, 'at least', issue.minimum)}, got ${sizeOf(issue.input)}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((value) => JSON.stringify(value)).join(', ')}, got ${JSON.stringify(issue.input)}`;
    default:
      return undefined;
  }
};

/**
 * Returns the first issue as `field: message`, where the field is the JSON
 * path that the client sent, such as `subscriptions[2]`, or `root` when the
 * issue is about the value as a whole.
 */
export function describeFirstIssue(
  error: z.ZodError,
  root: string,
): { field: string; message: string } {
  const issue = error.issues[0]!;
  const field =
    issue.path.length === 0
      ? root
      : issue.path
          .map((part, index) =>
            typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`,
          )
          .join('');
  return { field, message: issue.message };
}

function sizeRule(origin: string, bound: string, limit: number | bigint): string {
  if (origin === 'array' || origin === 'set') return `have ${bound} ${limit} entries`;
  if (origin === 'string') return `be ${bound} ${limit} characters`;
  return `be ${bound} ${limit}`;
}

function sizeOf(input: unknown): string {
  if (typeof input === 'string') return String(input.length);
  if (Array.isArray(input)) return String(input.length);
  return JSON.stringify(input) ?? String(input);
}

function typeName(expected: string): string {
  return expected === 'int' ? 'integer' : expected;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function withArticle(name: string): string {
  return `${/^[aeiou]/.test(name) ? 'an' : 'a'} ${name}`;
}
