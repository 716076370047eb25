import { ValidationError } from './errors.js';

const SEGMENT = '[A-Za-z0-9_-]+';
const CLASS_PATTERN = new RegExp(`^${SEGMENT}(\\.${SEGMENT})*$`);
const SEGMENT_PATTERN = new RegExp(`^${SEGMENT}$`);

/** Maximum length of an event class or subscription pattern, in characters. */
export const MAX_EVENT_CLASS_LENGTH = 255;

const CLASS_RULE =
  'must be dot-separated segments of letters, digits, "_" and "-", such as "github.push.created"';

/** Throws a ValidationError unless `value` is a valid event class. */
export function assertEventClass(value: unknown, field = 'event_class'): string {
  if (typeof value !== 'string') {
    throw new ValidationError(field, `${CLASS_RULE}, got ${typeof value}`);
  }
  if (value.length > MAX_EVENT_CLASS_LENGTH) {
    throw new ValidationError(
      field,
      `must be at most ${MAX_EVENT_CLASS_LENGTH} characters, got ${value.length}`,
    );
  }
  if (!CLASS_PATTERN.test(value)) {
    throw new ValidationError(field, `${CLASS_RULE}, got "${value}"`);
  }
  return value;
}

/** A subscription pattern in stored form. */
export interface CompiledPattern {
  readonly pattern: string;
  readonly isGlob: boolean;
  /**
   * Anchored regular expression that both JavaScript and PostgreSQL's `~`
   * evaluate the same way; null for an exact class.
   */
  readonly regex: string | null;
}

/**
 * Checks and compiles a subscription pattern. A segment `*` matches exactly
 * one segment and `**` one or more, so `github.**` does not match `github`.
 */
export function compilePattern(
  value: unknown,
  field = 'subscriptions',
): CompiledPattern {
  if (typeof value !== 'string') {
    throw new ValidationError(
      field,
      `must be an event class or a glob pattern such as "github.*" or "github.**", got ${typeof value}`,
    );
  }
  if (value.length > MAX_EVENT_CLASS_LENGTH) {
    throw new ValidationError(
      field,
      `must be at most ${MAX_EVENT_CLASS_LENGTH} characters, got ${value.length}`,
    );
  }
  const segments = value.split('.');
  const parts: string[] = [];
  let isGlob = false;
  for (const segment of segments) {
    if (segment === '*') {
      parts.push(SEGMENT);
      isGlob = true;
    } else if (segment === '**') {
      parts.push(`${SEGMENT}(\\.${SEGMENT})*`);
      isGlob = true;
    } else if (SEGMENT_PATTERN.test(segment)) {
      parts.push(segment);
    } else {
      throw new ValidationError(
        field,
        `"${value}" is not a valid pattern: each dot-separated segment must be "*", "**" or letters, digits, "_" and "-" (no empty segments, no "*" inside a word), got segment "${segment}"`,
      );
    }
  }
  return {
    pattern: value,
    isGlob,
    regex: isGlob ? `^${parts.join('\\.')}$` : null,
  };
}

/** Tells whether an event class matches a subscription pattern. */
export function matchesPattern(pattern: CompiledPattern, eventClass: string) {
  if (pattern.regex === null) return pattern.pattern === eventClass;
  return new RegExp(pattern.regex).test(eventClass);
}
