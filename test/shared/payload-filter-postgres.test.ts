import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileFilter, type PathStep } from '../../shared/payload-filter.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

// The TypeScript evaluator and PostgreSQL's jsonpath must give the same
// result for every filter and every event data. These tests generate many
// pairs from a fixed seed, evaluate each in both, and compare.

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv();
});

afterAll(async () => {
  await env?.dispose();
});

/** Keys that jsonpath quoting and the dotted path syntax must survive. */
const KEYS = [
  'a', 'b', 'c', 'action', 'x.y', 'quo"te', "apo'strophe", 'back\\slash', 'br[0]', '[', ']', 'é', '😀',
  '\uFFFF', '日本', '', ' ', 'tab\t', 'line\n', '0', '1', '$', '@', '"', '\\', 'a\\.b', '\u2028',
  'null', 'true', 'strict', 'lax', '__proto__', 'last', 'exists',
];
const STRINGS = [
  '', 'a', 'b', 'A', 'ab', 'abc', 'opened', 'closed', 'é', 'e\u0301', '\uE000', '\uFFFF', '😀', '😁',
  '日本', 'x"y', 'back\\', '1', '42', 'true', 'null', ' ', '\n', '\u0001',
];
const NUMBERS = [
  0, 1, -1, 2, 42, -42, 0.5, -0.5, 0.1, 0.2, 0.3, 0.30000000000000004, 1e-7, 5e-324, 1.5, 100,
  123456789.125, 9007199254740991, -9007199254740991,
];
const UNSTORABLE = ['nul\u0000', 'lone \uD800 high', 'lone \uDC00 low'];

/** Returns a small deterministic PRNG (mulberry32), so that a failure can be replayed. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (below: number) => Math.floor(next() * below),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    chance: (probability: number) => next() < probability,
  };
}
type Random = ReturnType<typeof random>;

function randomScalar(rng: Random): string | number | boolean | null {
  switch (rng.int(4)) {
    case 0:
      return rng.pick(STRINGS);
    case 1:
      return rng.pick(NUMBERS);
    case 2:
      return rng.chance(0.5);
    default:
      return null;
  }
}

function randomValue(rng: Random, depth: number): unknown {
  const kind = depth >= 3 ? 0 : rng.int(10);
  if (kind < 6) return randomScalar(rng);
  if (kind < 8) return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
  // fromEntries defines own properties, so "__proto__" stays a plain key.
  return Object.fromEntries(
    Array.from({ length: rng.int(5) }, () => [rng.pick(KEYS), randomValue(rng, depth + 1)]),
  );
}

function randomData(rng: Random): unknown {
  if (rng.chance(0.05)) return randomValue(rng, 2);
  const data = randomValue(rng, 3 - 3) as unknown;
  const object = typeof data === 'object' && data !== null && !Array.isArray(data) ? data : { a: data };
  if (rng.chance(0.04)) return { ...object, [rng.pick(KEYS)]: rng.pick(UNSTORABLE) };
  return object;
}

/** Lists every path in the data with the value it reaches. */
function pathsOf(data: unknown, prefix: PathStep[] = [], found: [PathStep[], unknown][] = []) {
  found.push([prefix, data]);
  if (Array.isArray(data)) data.forEach((item, index) => pathsOf(item, [...prefix, index], found));
  else if (typeof data === 'object' && data !== null) {
    for (const [key, item] of Object.entries(data)) pathsOf(item, [...prefix, key], found);
  }
  return found;
}

/** Writes path steps in the dotted syntax, or returns undefined when a key is empty. */
function dottedPath(steps: readonly PathStep[]): string | undefined {
  let text = '';
  for (const [index, step] of steps.entries()) {
    if (typeof step === 'number') {
      text += `[${step}]`;
    } else {
      if (step === '') return undefined;
      text += `${index === 0 ? '' : '.'}${step.replace(/[\\.[\]]/g, (char) => `\\${char}`)}`;
    }
  }
  return text === '' ? undefined : text;
}

function randomFilter(rng: Random, data: unknown, depth = 0): unknown {
  if (depth < 3 && rng.chance(0.3)) {
    const combinator = rng.pick(['and', 'or', 'not'] as const);
    if (combinator === 'not') return { not: randomFilter(rng, data, depth + 1) };
    return { [combinator]: Array.from({ length: 1 + rng.int(3) }, () => randomFilter(rng, data, depth + 1)) };
  }
  const paths = pathsOf(data);
  let steps: PathStep[];
  let actual: unknown;
  if (rng.chance(0.7)) {
    [steps, actual] = rng.pick(paths);
  } else {
    steps = Array.from({ length: 1 + rng.int(3) }, () => (rng.chance(0.25) ? rng.int(3) : rng.pick(KEYS)));
    actual = undefined;
  }
  const dotted = dottedPath(steps);
  const path = dotted !== undefined && rng.chance(0.5) ? dotted : steps;
  const scalar = (allowActual: boolean) => {
    // Filters may not contain the strings that jsonb cannot hold.
    const usable =
      allowActual &&
      (actual === null || ['string', 'number', 'boolean'].includes(typeof actual)) &&
      !UNSTORABLE.includes(actual as string);
    return usable && rng.chance(0.6) ? actual : randomScalar(rng);
  };
  const ordered = () => {
    const value = scalar(true);
    if (typeof value === 'number' || typeof value === 'string') return value;
    return rng.chance(0.5) ? rng.pick(NUMBERS) : rng.pick(STRINGS);
  };
  switch (rng.pick(['eq', 'in', 'gt', 'gte', 'lt', 'lte', 'exists'] as const)) {
    case 'eq':
      return { path, eq: scalar(true) };
    case 'in':
      return { path, in: Array.from({ length: 1 + rng.int(4) }, () => scalar(true)) };
    case 'exists':
      return { path, exists: rng.chance(0.5) };
    case 'gt':
      return { path, gt: ordered() };
    case 'gte':
      return { path, gte: ordered() };
    case 'lt':
      return { path, lt: ordered() };
    case 'lte':
      return { path, lte: ordered() };
  }
}

interface Pair {
  filter: unknown;
  dataJson: string;
  jsonpath: string;
  expected: boolean;
}

function generatePairs(seed: number, count: number): Pair[] {
  const rng = random(seed);
  return Array.from({ length: count }, () => {
    const data = randomData(rng);
    const filter = randomFilter(rng, data);
    const compiled = compileFilter(filter);
    // The data goes through its stored form, as it does when published.
    const dataJson = JSON.stringify(data);
    return { filter, dataJson, jsonpath: compiled.jsonpath, expected: compiled.matches(JSON.parse(dataJson)) };
  });
}

/** Evaluates each pair in PostgreSQL the way dispatch does; NULL counts as no match. */
async function evaluateInPostgres(pairs: readonly Pair[], mode: 'strict' | 'lax' = 'strict'): Promise<boolean[]> {
  const jsonpaths = pairs.map((pair) =>
    mode === 'strict' ? pair.jsonpath : pair.jsonpath.replace(/^strict /, 'lax '),
  );
  const { rows } = await env.pool.query<{ matched: boolean | null }>(
    `SELECT webhook_event_data_jsonb(t.data) @@ t.path::jsonpath AS matched
     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(data, path, n)
     ORDER BY t.n`,
    [pairs.map((pair) => pair.dataJson), jsonpaths],
  );
  return rows.map((row) => row.matched === true);
}

describe('evaluator agrees with PostgreSQL', () => {
  test('on 5000 generated pairs', async () => {
    const pairs = generatePairs(20261206, 5000);
    const results = await evaluateInPostgres(pairs);
    const mismatches = pairs
      .map((pair, index) => ({ ...pair, postgres: results[index] }))
      .filter((pair) => pair.postgres !== pair.expected);
    expect(mismatches.slice(0, 5), `${mismatches.length} mismatches`).toEqual([]);

    // The corpus must exercise both outcomes, or the comparison proves little.
    const matched = pairs.filter((pair) => pair.expected).length;
    expect(matched).toBeGreaterThan(pairs.length * 0.2);
    expect(matched).toBeLessThan(pairs.length * 0.8);
    const unstorable = pairs.filter((pair) => /\\u0000|\\ud[89a-f]/.test(pair.dataJson)).length;
    expect(unstorable).toBeGreaterThan(50);
  });

  test('on each leaf operator both ways', async () => {
    const pairs = generatePairs(7, 4000).filter((pair) => {
      const filter = pair.filter as Record<string, unknown>;
      return 'path' in filter;
    });
    const results = await evaluateInPostgres(pairs);
    const outcomes = new Map<string, Set<boolean>>();
    pairs.forEach((pair, index) => {
      const operator = Object.keys(pair.filter as object).find((key) => key !== 'path')!;
      expect(results[index], `${pair.jsonpath} on ${pair.dataJson}`).toBe(pair.expected);
      const seen = outcomes.get(operator) ?? new Set<boolean>();
      seen.add(pair.expected);
      outcomes.set(operator, seen);
    });
    for (const operator of ['eq', 'in', 'gt', 'gte', 'lt', 'lte', 'exists']) {
      expect([...(outcomes.get(operator) ?? [])].sort(), operator).toEqual([false, true]);
    }
  });

  test('on keys that need quoting', async () => {
    const pairs: Pair[] = [];
    for (const key of KEYS) {
      const data = Object.fromEntries([[key, { [key]: 'value' }]]);
      const forms: unknown[] = [[key, key]];
      const dotted = dottedPath([key, key]);
      if (dotted !== undefined) forms.push(dotted);
      for (const path of forms) {
        for (const filter of [{ path, eq: 'value' }, { path, eq: 'other' }, { path, exists: true }]) {
          const compiled = compileFilter(filter);
          const dataJson = JSON.stringify(data);
          pairs.push({ filter, dataJson, jsonpath: compiled.jsonpath, expected: compiled.matches(JSON.parse(dataJson)) });
        }
      }
    }
    const results = await evaluateInPostgres(pairs);
    pairs.forEach((pair, index) => {
      expect(results[index], `${pair.jsonpath} on ${pair.dataJson}`).toBe(pair.expected);
    });
    expect(pairs.filter((pair) => pair.expected).length).toBe((pairs.length / 3) * 2);
  });

  test('on string order by code point', async () => {
    const pairs: Pair[] = [];
    for (const left of STRINGS) {
      for (const right of STRINGS) {
        const compiled = compileFilter({ path: 's', lt: right });
        const dataJson = JSON.stringify({ s: left });
        pairs.push({ filter: null, dataJson, jsonpath: compiled.jsonpath, expected: compiled.matches({ s: left }) });
      }
    }
    const results = await evaluateInPostgres(pairs);
    pairs.forEach((pair, index) => {
      expect(results[index], `${pair.jsonpath} on ${pair.dataJson}`).toBe(pair.expected);
    });
  });
});

describe('strict and lax jsonpath modes', () => {
  const cases: [string, unknown, unknown, boolean, boolean][] = [
    // name, filter, data, strict result (the documented one), lax result
    ['array value against a scalar', { path: 'tags', eq: 'x' }, { tags: ['x', 'y'] }, false, true],
    ['key through an array', { path: 'labels.name', eq: 'bug' }, { labels: [{ name: 'bug' }] }, false, true],
    ['index into a non-array', { path: 'a[0]', eq: 1 }, { a: 1 }, false, true],
    ['missing key', { path: 'nope', eq: 1 }, { a: 1 }, false, false],
    ['missing key under not', { not: { path: 'nope', eq: 1 } }, { a: 1 }, true, true],
    ['exists false on missing', { path: 'a.b', exists: false }, { a: 1 }, true, true],
    ['different types', { path: 'a', gt: 1 }, { a: '2' }, false, false],
  ];

  test.each(cases)('%s', async (_name, filter, data, strict, lax) => {
    const compiled = compileFilter(filter);
    const dataJson = JSON.stringify(data);
    const pair = { filter, dataJson, jsonpath: compiled.jsonpath, expected: compiled.matches(data) };
    expect(pair.expected, 'TypeScript evaluator').toBe(strict);
    expect(await evaluateInPostgres([pair], 'strict'), 'PostgreSQL, strict').toEqual([strict]);
    expect(await evaluateInPostgres([pair], 'lax'), 'PostgreSQL, lax').toEqual([lax]);
  });

  test('lax mode disagrees on the corpus', async () => {
    const pairs = generatePairs(20261206, 2000);
    const lax = await evaluateInPostgres(pairs, 'lax');
    const differing = pairs.filter((pair, index) => lax[index] !== pair.expected);
    expect(differing.length).toBeGreaterThan(0);
  });
});

describe('stored filter safeguards', () => {
  test('event data function rejects what jsonb cannot hold', async () => {
    const texts = [
      '{"a":"\\u0000"}',
      '{"a":"\\ud800"}',
      '{"\\udc00":1}',
      '{"a":"\\\\u0000"}',
      '{"a":"\\ud83d\\ude00"}',
      '{"a":"\\u0001"}',
      '[1,2]',
    ];
    const { rows } = await env.pool.query<{ data: unknown }>(
      `SELECT webhook_event_data_jsonb(t.text) AS data
       FROM unnest($1::text[]) WITH ORDINALITY AS t(text, n) ORDER BY t.n`,
      [texts],
    );
    expect(rows.map((row) => row.data)).toEqual([
      null,
      null,
      null,
      { a: '\\u0000' },
      { a: '😀' },
      { a: '\u0001' },
      [1, 2],
    ]);
  });

  test('jsonpath that does not parse is rejected', async () => {
    const rxId = randomUUID();
    await env.pool.query(
      `INSERT INTO webhook_rx (id, name, endpoint, time_created, time_modified)
       VALUES ($1, 'filter-check', 'http://127.0.0.1:9/hook', now(), now())`,
      [rxId],
    );
    const insert = (eventClass: string, filter: string | null, jsonpath: string | null) =>
      env.pool.query(
        `INSERT INTO webhook_rx_subscription (rx_id, event_class, filter, filter_jsonpath, time_created)
         VALUES ($1, $2, $3::jsonb, $4, now())`,
        [rxId, eventClass, filter, jsonpath],
      );
    await expect(insert('bad.path', '{}', 'strict $."a" ==')).rejects.toThrow(/syntax error/);
    await expect(insert('nul.path', '{}', 'strict $."\\u0000" == 1')).rejects.toThrow(
      /unsupported Unicode escape sequence/,
    );
    await expect(insert('half.set', '{}', null)).rejects.toThrow(
      /webhook_rx_subscription_filter_compiled/,
    );
    await insert('good.path', '{"path": "a", "eq": 1}', compileFilter({ path: 'a', eq: 1 }).jsonpath);
    await insert('no.filter', null, null);
    const { rows } = await env.pool.query(
      `SELECT event_class FROM webhook_rx_subscription WHERE rx_id = $1 ORDER BY event_class`,
      [rxId],
    );
    expect(rows.map((row) => row.event_class)).toEqual(['good.path', 'no.filter']);
  });
});
