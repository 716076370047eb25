import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import {
  assertEventClass,
  compilePattern,
  matchesPattern,
  MAX_EVENT_CLASS_LENGTH,
  type CompiledPattern,
} from '../../shared/event-class.js';
import { adminUrl } from '../helpers/database-names.js';

const SEGMENT = '[A-Za-z0-9_-]+';

/** A pattern that makes a backtracking regex engine take seconds. */
const MANY_DOUBLE_STARS = `${Array(12).fill('**').join('.')}.x`;
const LONG_CLASS = Array(28).fill('a').join('.');

/** [pattern, event class, expected match] */
const MATCH_TABLE: ReadonlyArray<[string, string, boolean]> = [
  ['github.push', 'github.push', true],
  ['github.push', 'github.push.created', false],
  ['github.push', 'github', false],
  ['github.push', 'GitHub.push', false],
  ['my-app.user_created', 'my-app.user_created', true],
  ['github.*', 'github.push', true],
  ['github.*', 'github', false],
  ['github.*', 'github.push.created', false],
  ['github.*', 'gitlab.push', false],
  ['github.*', 'GITHUB.push', false],
  ['github.**', 'github.push', true],
  ['github.**', 'github.push.created', true],
  ['github.**', 'github', false],
  ['github.**', 'githubx.push', false],
  ['github.**', 'xgithub.push', false],
  ['*', 'github', true],
  ['*', 'github.push', false],
  ['**', 'github', true],
  ['**', 'a.b.c.d', true],
  ['*.push', 'github.push', true],
  ['*.push', 'github.pull', false],
  ['*.push', 'a.b.push', false],
  ['*.push', 'push', false],
  ['**.created', 'github.push.created', true],
  ['**.created', 'created', false],
  ['github.*.created', 'github.push.created', true],
  ['github.*.created', 'github.push.x.created', false],
  ['github.*.created', 'github.created', false],
  ['github.**.created', 'github.push.x.created', true],
  ['github.**.created', 'github.created', false],
  ['*.*', 'a.b', true],
  ['*.*', 'a', false],
  ['*.*', 'a.b.c', false],
  ['**.**', 'a', false],
  ['**.**', 'a.b', true],
  ['**.**', 'a.b.c', true],
  ['*.**', 'a.b.c', true],
  ['**.*', 'a', false],
  ['a.**.b.**.c', 'a.x.b.y.c', true],
  ['a.**.b.**.c', 'a.b.b.b.c', true],
  ['a.**.b.**.c', 'a.b.c', false],
  ['a.**.b.**.c', 'a.x.y.b.c', false],
  // The dot is literal, never "any character".
  ['a.b.*', 'aXb.c', false],
  ['my-app.*', 'my-app.user_created', true],
  ['my-app.*', 'my_app.user_created', false],
  // Event classes that break the class rules never match a glob.
  ['github.*', 'github.pu sh', false],
  ['github.*', 'github.', false],
  ['github.**', 'github..push', false],
  ['github.*', 'github.push\n', false],
  ['github.*', 'github.pushé', false],
  ['github.*', 'github.Ａ', false],
  ['github.*', 'github.ǅ', false],
  ['*', '', false],
  [MANY_DOUBLE_STARS, LONG_CLASS, false],
  [MANY_DOUBLE_STARS, `${LONG_CLASS}.x`, true],
];

const INVALID_PATTERNS: readonly unknown[] = [
  'foo*',
  '*foo',
  'github.push*',
  'github.*push',
  '***',
  'github.***',
  'a..b',
  '.a',
  'a.',
  '.',
  '',
  ' ',
  'a b',
  ' github.push',
  'github.push ',
  '\tgithub',
  'github.push\n',
  'github/push',
  'github.pushé',
  'a'.repeat(MAX_EVENT_CLASS_LENGTH + 1),
  42,
  null,
  undefined,
  true,
  ['github.push'],
  { pattern: 'github.push' },
];

function expectValidationError(run: () => unknown, field: string) {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  const error = caught as ValidationError;
  expect(error.field).toBe(field);
  expect(error.message.startsWith(`${field}: `)).toBe(true);
  expect(error.code).toBe('invalid_request');
  expect(error.statusCode).toBe(400);
}

describe('compilePattern', () => {
  it('keeps exact classes as plain strings', () => {
    const compiled = compilePattern('github.push');
    expect(compiled).toEqual({
      pattern: 'github.push',
      isGlob: false,
      regex: null,
    });
  });

  it('compiles a single star', () => {
    const compiled = compilePattern('github.*');
    expect(compiled.isGlob).toBe(true);
    expect(compiled.regex).toBe(`^github\\.${SEGMENT}$`);
  });

  it('compiles a double star', () => {
    const compiled = compilePattern('github.**');
    expect(compiled.isGlob).toBe(true);
    expect(compiled.regex).toBe(`^github\\.${SEGMENT}(\\.${SEGMENT})*$`);
  });

  it('accepts the maximum length', () => {
    const pattern = 'a'.repeat(MAX_EVENT_CLASS_LENGTH);
    expect(compilePattern(pattern).pattern).toBe(pattern);
  });

  it.each(INVALID_PATTERNS.map((value) => [JSON.stringify(value) ?? 'undefined', value]))(
    'rejects %s',
    (_label, value) => {
      expectValidationError(
        () => compilePattern(value, 'subscriptions[3]'),
        'subscriptions[3]',
      );
    },
  );

  it('names the default field', () => {
    expectValidationError(() => compilePattern('foo*'), 'subscriptions');
  });

  it('names the bad segment', () => {
    expect(() => compilePattern('github.foo*')).toThrow(
      'got segment "foo*"',
    );
  });
});

describe('assertEventClass', () => {
  it.each(['github', 'github.push.created', 'my-app.user_created', 'A-1._'])(
    'accepts %s',
    (value) => {
      expect(assertEventClass(value)).toBe(value);
    },
  );

  it.each(
    [...INVALID_PATTERNS, '*', '**', 'github.*', 'github.**'].map((value) => [
      JSON.stringify(value) ?? 'undefined',
      value,
    ]),
  )('rejects %s', (_label, value) => {
    expectValidationError(() => assertEventClass(value), 'event_class');
  });

  it('uses the given field name', () => {
    expectValidationError(() => assertEventClass('a..b', 'eventClass'), 'eventClass');
  });

  it('reports the maximum length', () => {
    const value = 'a'.repeat(MAX_EVENT_CLASS_LENGTH + 1);
    expect(() => assertEventClass(value)).toThrow(
      `event_class: must be at most ${MAX_EVENT_CLASS_LENGTH} characters, got ${MAX_EVENT_CLASS_LENGTH + 1}`,
    );
  });
});

describe('matchesPattern', () => {
  it.each(MATCH_TABLE)('%j against %j is %s', (pattern, eventClass, expected) => {
    expect(matchesPattern(compilePattern(pattern), eventClass)).toBe(expected);
  });

  it('many double stars match quickly', () => {
    // Used nowhere else in this file: V8 runs a regex's first match in its
    // interpreter (seconds on this input with backtracking), later ones in
    // compiled code (still hundreds of ms).
    const compiled = compilePattern(`${Array(13).fill('**').join('.')}.end`);
    const eventClass = Array(30).fill('a').join('.');
    const started = performance.now();
    expect(matchesPattern(compiled, eventClass)).toBe(false);
    expect(performance.now() - started).toBeLessThan(200);
  });
});

describe('compiled regex in PostgreSQL', () => {
  let client: pg.Client;

  beforeAll(async () => {
    client = new pg.Client({ connectionString: adminUrl() });
    await client.connect();
  });

  afterAll(async () => {
    await client.end();
  });

  /** Matches each pair as the dispatcher does: `=` for exact classes, `~` for globs. */
  async function matchInPostgres(
    pairs: ReadonlyArray<[CompiledPattern, string]>,
  ): Promise<boolean[]> {
    const result = await client.query<{ matched: boolean }>(
      `SELECT CASE WHEN t.regex IS NULL THEN t.event_class = t.pattern
                   ELSE t.event_class ~ t.regex END AS matched
       FROM unnest($1::text[], $2::text[], $3::text[])
            WITH ORDINALITY AS t(pattern, regex, event_class, position)
       ORDER BY t.position`,
      [
        pairs.map(([compiled]) => compiled.pattern),
        pairs.map(([compiled]) => compiled.regex),
        pairs.map(([, eventClass]) => eventClass),
      ],
    );
    return result.rows.map((row) => row.matched);
  }

  it('agrees with the match table', async () => {
    const pairs = MATCH_TABLE.map(
      ([pattern, eventClass]) => [compilePattern(pattern), eventClass] as [CompiledPattern, string],
    );
    const fromPostgres = await matchInPostgres(pairs);
    expect(fromPostgres).toHaveLength(MATCH_TABLE.length);
    MATCH_TABLE.forEach(([pattern, eventClass, expected], index) => {
      expect({ pattern, eventClass, matched: fromPostgres[index] }).toEqual({
        pattern,
        eventClass,
        matched: expected,
      });
    });
  });

  it('agrees on generated patterns', async () => {
    // A fixed linear congruential generator, so that a failure repeats.
    let state = 12345;
    const next = (bound: number) => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state % bound;
    };
    const pick = <T>(items: readonly T[]) => items[next(items.length)]!;
    const join = (items: readonly string[], length: number) =>
      Array.from({ length }, () => pick(items)).join('.');

    const pairs: Array<[CompiledPattern, string]> = [];
    for (let i = 0; i < 2000; i++) {
      const pattern = join(['a', 'b', '*', '**'], 1 + next(5));
      const eventClass = join(['a', 'b'], 1 + next(7));
      pairs.push([compilePattern(pattern), eventClass]);
    }
    const fromPostgres = await matchInPostgres(pairs);
    const fromJs = pairs.map(([compiled, eventClass]) =>
      matchesPattern(compiled, eventClass),
    );
    const disagreements = pairs
      .map(([compiled, eventClass], index) => ({
        pattern: compiled.pattern,
        eventClass,
        js: fromJs[index],
        postgres: fromPostgres[index],
      }))
      .filter((row) => row.js !== row.postgres);
    expect(disagreements).toEqual([]);
    // The generator must produce both outcomes, or the comparison proves little.
    expect(fromJs.filter(Boolean).length).toBeGreaterThan(100);
    expect(fromJs.filter((matched) => !matched).length).toBeGreaterThan(100);
  });
});
