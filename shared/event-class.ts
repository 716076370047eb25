import { ValidationError } from './errors.js';

const SEGMENT = '[A-Za-z0-9_-]+';
/** An event class: dot-separated segments of letters, digits, "_" and "-". */
export const CLASS_PATTERN = new RegExp(`^${SEGMENT}(\\.${SEGMENT})*$`);
const SEGMENT_PATTERN = new RegExp(`^${SEGMENT}$`);

/** Maximum length of an event class or subscription pattern, in characters. */
export const MAX_EVENT_CLASS_LENGTH = 255;

export const CLASS_RULE =
  'must be dot-separated segments of letters, digits, "_" and "-", such as "github.push.created"';

/** Throws a ValidationError unless `value` is a valid event class. */
export function assertEventClass(value: unknown, field = 'event_class'): string {
  if (value === undefined || value === null) {
    throw new ValidationError(field, `is missing; it ${CLASS_RULE}`);
  }
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

/**
 * Tells whether an event class matches a subscription pattern, with the same
 * result as PostgreSQL's `eventClass ~ pattern.regex`. It walks segments
 * instead of running the regex because JavaScript's backtracking engine
 * needs seconds for 13 `**` segments against a 30-segment class (Node 20).
 */
export function matchesPattern(
  pattern: CompiledPattern,
  eventClass: string,
): boolean {
  if (pattern.regex === null) return pattern.pattern === eventClass;
  if (!CLASS_PATTERN.test(eventClass)) return false;
  return matchSegments(pattern.pattern.split('.'), eventClass.split('.'));
}

/** Matches glob segments against class segments in O(pattern × class segments) steps. */
function matchSegments(
  patternSegments: readonly string[],
  classSegments: readonly string[],
): boolean {
  const count = classSegments.length;
  // matched[j] is true when the pattern segments seen so far consume exactly
  // the first j class segments.
  let matched = new Array<boolean>(count + 1).fill(false);
  matched[0] = true;
  for (const segment of patternSegments) {
    const next = new Array<boolean>(count + 1).fill(false);
    let matchedBefore = false;
    for (let j = 1; j <= count; j++) {
      if (segment === '**') {
        // `**` consumes one or more segments, so any earlier match reaches j.
        matchedBefore ||= matched[j - 1]!;
        next[j] = matchedBefore;
      } else {
        const fits = segment === '*' || segment === classSegments[j - 1];
        next[j] = matched[j - 1]! && fits;
      }
    }
    matched = next;
  }
  return matched[count]!;
}
