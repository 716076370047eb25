import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import {
  MAX_FILTER_DEPTH,
  MAX_FILTER_IN_VALUES,
  MAX_FILTER_JSON_BYTES,
  MAX_FILTER_NODES,
  MAX_FILTER_PATH_STEPS,
  MAX_FILTER_STRING_LENGTH,
  compareCodePoints,
  compileFilter,
  parsePathString,
  quoteJsonpathString,
} from '../../shared/payload-filter.js';

const FIELD = 'subscriptions[1].filter';

function errorOf(filter: unknown): string {
  try {
    compileFilter(filter, FIELD);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(filter)} to be rejected`);
}

function nested(depth: number): unknown {
  let filter: unknown = { path: 'a', eq: 1 };
  for (let level = 1; level < depth; level++) filter = { not: filter };
  return filter;
}

describe('filter paths', () => {
  test.each([
    ['a', ['a']],
    ['data.amount', ['data', 'amount']],
    ['labels[0].name', ['labels', 0, 'name']],
    ['[2]', [2]],
    ['matrix[1][0]', ['matrix', 1, 0]],
    ['a\\.b', ['a.b']],
    ['a\\\\b', ['a\\b']],
    ['x\\[0\\]', ['x[0]']],
    ['é.😀', ['é', '😀']],
    ['quo"te.sp ace', ['quo"te', 'sp ace']],
  ])('parses %j', (text, steps) => {
    expect(parsePathString(text, 'path')).toEqual(steps);
  });

  const RULE =
    'write keys separated by "." and array indexes as [0], and escape ".", "[", "]" and "\\" inside a key with "\\"';
  test.each([
    ['a..b', 'empty key at character 3'],
    ['.a', 'empty key at character 1'],
    ['a.', 'empty key at character 3'],
    ['a.[0]', 'empty key at character 3'],
    ['a[01]', 'an array index must be a whole number from 0 to 2147483647 in brackets at character 2'],
    ['a[-1]', 'an array index must be a whole number from 0 to 2147483647 in brackets at character 2'],
    ['a[2147483648]', 'an array index must be a whole number from 0 to 2147483647 in brackets at character 2'],
    ['a[0', 'an array index must be a whole number from 0 to 2147483647 in brackets at character 2'],
    ['a]', 'unescaped "]" at character 2'],
    ['a[0]b', 'expected "." or "[" after an array index at character 5'],
    ['a\\b', '"\\" must be followed by ".", "[", "]" or "\\" at character 2'],
    ['a\\', '"\\" must be followed by ".", "[", "]" or "\\" at character 2'],
  ])('rejects %j', (text, reason) => {
    expect(() => parsePathString(text, 'path')).toThrow(
      `path: ${JSON.stringify(text)} is not a valid path: ${reason}; ${RULE}`,
    );
  });

  test('array form allows any key', () => {
    const compiled = compileFilter({ path: ['', 'a.b', 0, '[x]'], exists: true });
    expect(compiled.jsonpath).toBe('strict exists($ ? (exists($.""."a.b"[0]."[x]")))');
    expect(compiled.matches({ '': { 'a.b': [{ '[x]': null }] } })).toBe(true);
  });

  test('empty array is the data itself', () => {
    const compiled = compileFilter({ path: [], eq: 'ping' });
    expect(compiled.jsonpath).toBe('strict exists($ ? ($ == "ping"))');
    expect(compiled.matches('ping')).toBe(true);
    expect(compiled.matches({ ping: 1 })).toBe(false);
  });
});

describe('filter validation', () => {
  test.each<[string, unknown, string]>([
    ['gt with an object', { and: [{ path: 'a', gt: {} }] }, `${FIELD}.and[0].gt: must be a number or string, got {}`],
    ['gt with a boolean', { path: 'a', gt: true }, `${FIELD}.gt: must be a number or string, got true`],
    ['lte with null', { path: 'a', lte: null }, `${FIELD}.lte: must be a number or string, got null`],
    ['eq with an array', { path: 'a', eq: [1] }, `${FIELD}.eq: must be a string, number, boolean or null, got [1]`],
    ['in with an object', { path: 'a', in: ['x', { y: 1 }] }, `${FIELD}.in[1]: must be a string, number, boolean or null, got {"y":1}`],
    ['in empty', { path: 'a', in: [] }, `${FIELD}.in: must be an array of 1 to ${MAX_FILTER_IN_VALUES} strings, numbers, booleans or nulls, got 0 values`],
    ['in not an array', { path: 'a', in: 'x' }, `${FIELD}.in: must be an array of 1 to ${MAX_FILTER_IN_VALUES} strings, numbers, booleans or nulls, got "x"`],
    ['exists with a string', { path: 'a', exists: 'yes' }, `${FIELD}.exists: must be true or false, got "yes"`],
    ['no operator', { path: 'a' }, `${FIELD}: has no operator; add one of "eq", "in", "gt", "gte", "lt", "lte" or "exists" next to "path"`],
    ['two operators', { path: 'a', gt: 1, lt: 5 }, `${FIELD}: has both "gt" and "lt"; give each its own condition inside "and"`],
    ['unknown field', { path: 'a', eq: 1, ne: 2 }, `${FIELD}: has unknown field "ne"; a condition has "path" and one of "eq", "in", "gt", "gte", "lt", "lte" or "exists"`],
    ['missing path', { eq: 1 }, `${FIELD}.path: is missing; a condition needs "path" and one operator`],
    ['empty path string', { path: '', eq: 1 }, `${FIELD}.path: must not be empty; use [] for the whole event data`],
    ['path number', { path: 5, eq: 1 }, `${FIELD}.path: must be a dotted string such as "repository.name" or an array of keys and indexes such as ["labels", 0, "name"], got 5`],
    ['path step negative', { path: ['a', -1], eq: 1 }, `${FIELD}.path[1]: must be an object key (a string) or an array index (a whole number from 0 to 2147483647), got -1`],
    ['path step fraction', { path: ['a', 1.5], eq: 1 }, `${FIELD}.path[1]: must be an object key (a string) or an array index (a whole number from 0 to 2147483647), got 1.5`],
    ['empty object', {}, `${FIELD}: must be a filter such as {"path": "action", "eq": "opened"}, {"and": [...]}, {"or": [...]} or {"not": {...}}, got {}`],
    ['not an object', 'action=opened', `${FIELD}: must be a filter such as {"path": "action", "eq": "opened"}, {"and": [...]}, {"or": [...]} or {"not": {...}}, got "action=opened"`],
    ['an array', [{ path: 'a', eq: 1 }], `${FIELD}: must be a filter such as {"path": "action", "eq": "opened"}, {"and": [...]}, {"or": [...]} or {"not": {...}}, got [{"path":"a","eq":1}]`],
    ['and empty', { and: [] }, `${FIELD}.and: must be a non-empty array of filters, got []`],
    ['or not an array', { or: { path: 'a', eq: 1 } }, `${FIELD}.or: must be a non-empty array of filters, got {"path":"a","eq":1}`],
    ['and next to path', { and: [{ path: 'a', eq: 1 }], path: 'b' }, `${FIELD}: has "and" next to "path"; an "and" filter has no other fields`],
    ['bad child of not', { not: { or: [{ path: 'a', eq: 1 }, null] } }, `${FIELD}.not.or[1]: must be a filter such as {"path": "action", "eq": "opened"}, {"and": [...]}, {"or": [...]} or {"not": {...}}, got null`],
    ['unsafe integer', { path: 'a', eq: 2 ** 53 }, `${FIELD}.eq: must be an integer from -9007199254740991 to 9007199254740991, got 9007199254740992`],
    ['infinite number', { path: 'a', gt: Infinity }, `${FIELD}.gt: must be a finite number, got Infinity`],
    ['U+0000 in a value', { path: 'a', eq: 'x\u0000' }, `${FIELD}.eq: must not contain U+0000 (at character 2): PostgreSQL cannot store U+0000 or unpaired surrogates in JSON`],
    ['unpaired surrogate in a key', { path: ['a', 'b\uD800'], exists: true }, `${FIELD}.path[1]: must not contain U+D800 (at character 2): PostgreSQL cannot store U+0000 or unpaired surrogates in JSON`],
    ['lone low surrogate', { path: 'a', eq: '\uDC00x' }, `${FIELD}.eq: must not contain U+DC00 (at character 1): PostgreSQL cannot store U+0000 or unpaired surrogates in JSON`],
    ['long value', { path: 'a', eq: 'x'.repeat(MAX_FILTER_STRING_LENGTH + 1) }, `${FIELD}.eq: must be at most ${MAX_FILTER_STRING_LENGTH} characters, got ${MAX_FILTER_STRING_LENGTH + 1}`],
    ['too many path steps', { path: Array(MAX_FILTER_PATH_STEPS + 1).fill('k'), exists: true }, `${FIELD}.path: must have at most ${MAX_FILTER_PATH_STEPS} keys and indexes, got ${MAX_FILTER_PATH_STEPS + 1}`],
    ['too deep', nested(MAX_FILTER_DEPTH + 1), `${FIELD}${'.not'.repeat(MAX_FILTER_DEPTH)}: nests deeper than ${MAX_FILTER_DEPTH} levels of "and", "or" and "not"`],
    ['too many nodes', { or: Array(MAX_FILTER_NODES).fill({ path: 'a', eq: 1 }) }, `${FIELD}: must have at most ${MAX_FILTER_NODES} conditions and "and", "or", "not" operators in all`],
    ['too many in values', { path: 'a', in: Array(MAX_FILTER_IN_VALUES + 1).fill(1) }, `${FIELD}.in: must be an array of 1 to ${MAX_FILTER_IN_VALUES} strings, numbers, booleans or nulls, got ${MAX_FILTER_IN_VALUES + 1} values`],
  ])('rejects %s', (_name, filter, message) => {
    expect(errorOf(filter)).toBe(message);
  });

  test('accepts filters at every limit', () => {
    expect(() => compileFilter(nested(MAX_FILTER_DEPTH))).not.toThrow();
    expect(() => compileFilter({ or: Array(MAX_FILTER_NODES - 1).fill({ path: 'a', eq: 1 }) })).not.toThrow();
    expect(() => compileFilter({ path: 'a', in: Array(MAX_FILTER_IN_VALUES).fill('v') })).not.toThrow();
    expect(() => compileFilter({ path: Array(MAX_FILTER_PATH_STEPS).fill('k'), exists: true })).not.toThrow();
    expect(() => compileFilter({ path: 'a', eq: 'x'.repeat(MAX_FILTER_STRING_LENGTH) })).not.toThrow();
  });

  test('rejects a filter over the byte limit', () => {
    // 20 lists of 100 values of 10 characters are about 26 KB of JSON, but
    // break no other limit.
    const filter = {
      or: Array.from({ length: 20 }, (_, index) => ({
        path: `k${index}`,
        in: Array.from({ length: 100 }, (_, value) => `value-${String(value).padStart(4, '0')}`),
      })),
    };
    const bytes = Buffer.byteLength(JSON.stringify(filter));
    expect(bytes).toBeGreaterThan(MAX_FILTER_JSON_BYTES);
    expect(errorOf(filter)).toBe(`${FIELD}: must be at most ${MAX_FILTER_JSON_BYTES} bytes as JSON, got ${bytes}`);
  });

  test('keeps the filter as given', () => {
    const filter = { and: [{ path: ['a', 0], in: ['x', 1, null, true] }, { not: { path: 'b.c', exists: false } }] };
    expect(compileFilter(filter).filter).toBe(filter);
  });
});

describe('filter jsonpath', () => {
  test.each<[unknown, string]>([
    [{ path: 'data.amount', gt: 100 }, 'strict exists($ ? ($."data"."amount" > 100))'],
    [{ path: 'repository.name', eq: 'x' }, 'strict exists($ ? ($."repository"."name" == "x"))'],
    [{ path: 'action', in: ['opened', 'closed'] }, 'strict exists($ ? ($."action" == "opened" || $."action" == "closed"))'],
    [{ path: 'sender.login', exists: true }, 'strict exists($ ? (exists($."sender"."login")))'],
    [{ path: 'sender.login', exists: false }, 'strict !(exists($ ? (exists($."sender"."login"))))'],
    [{ path: 'a', eq: null }, 'strict exists($ ? ($."a" == null))'],
    [{ path: 'a', lte: -0.5 }, 'strict exists($ ? ($."a" <= -0.5))'],
    [{ path: 'a', gte: 5e-7 }, 'strict exists($ ? ($."a" >= 5e-7))'],
    [{ path: 'a[3]', lt: 'm' }, 'strict exists($ ? ($."a"[3] < "m"))'],
    [
      { or: [{ path: 'a', eq: true }, { not: { and: [{ path: 'b', eq: false }, { path: 'c', eq: 1 }] } }] },
      'strict (exists($ ? ($."a" == true)) || !((exists($ ? ($."b" == false)) && exists($ ? ($."c" == 1)))))',
    ],
  ])('compiles %j', (filter, jsonpath) => {
    expect(compileFilter(filter).jsonpath).toBe(jsonpath);
  });

  test.each([
    ['plain', '"plain"'],
    ['quo"te', '"quo\\"te"'],
    ['back\\slash', '"back\\\\slash"'],
    ['tab\tnew\nline', '"tab\\u0009new\\u000aline"'],
    ['é', '"\\u00e9"'],
    ['😀', '"\\ud83d\\ude00"'],
    ['a.b[0]', '"a.b[0]"'],
    ['$."x"', '"$.\\"x\\""'],
  ])('quotes %j', (value, quoted) => {
    expect(quoteJsonpathString(value)).toBe(quoted);
  });
});

describe('filter evaluation', () => {
  const data = {
    action: 'opened',
    number: 42,
    ratio: 0.5,
    draft: false,
    merged_by: null,
    labels: [{ name: 'bug' }, { name: 'ui' }],
    tags: ['x', 'y'],
    nested: { 'a.b': { c: 'deep' } },
    zero: 0,
  };

  test.each<[string, unknown, boolean]>([
    ['eq string', { path: 'action', eq: 'opened' }, true],
    ['eq other string', { path: 'action', eq: 'closed' }, false],
    ['eq number', { path: 'number', eq: 42 }, true],
    ['eq number as string', { path: 'number', eq: '42' }, false],
    ['eq false', { path: 'draft', eq: false }, true],
    ['eq false on zero', { path: 'zero', eq: false }, false],
    ['eq null on null', { path: 'merged_by', eq: null }, true],
    ['eq null on missing', { path: 'nope', eq: null }, false],
    ['eq null on value', { path: 'action', eq: null }, false],
    ['in hit', { path: 'action', in: ['closed', 'opened'] }, true],
    ['in miss', { path: 'action', in: ['closed', 42] }, false],
    ['in mixed types', { path: 'number', in: ['42', 42] }, true],
    ['gt number', { path: 'number', gt: 41 }, true],
    ['gt equal number', { path: 'number', gt: 42 }, false],
    ['gte equal number', { path: 'number', gte: 42 }, true],
    ['lt fraction', { path: 'ratio', lt: 0.75 }, true],
    ['lte fraction', { path: 'ratio', lte: 0.25 }, false],
    ['gt string', { path: 'action', gt: 'open' }, true],
    ['lt string', { path: 'action', lt: 'opened' }, false],
    ['gt string on number', { path: 'number', gt: '1' }, false],
    ['gt number on string', { path: 'action', gt: 1 }, false],
    ['gt on null', { path: 'merged_by', gt: 0 }, false],
    ['index into array', { path: 'labels[1].name', eq: 'ui' }, true],
    ['index past end', { path: 'labels[2].name', exists: false }, true],
    ['array is not searched', { path: 'tags', eq: 'x' }, false],
    ['key through array', { path: 'labels.name', exists: true }, false],
    ['index into object', { path: 'nested[0]', exists: true }, false],
    ['escaped dot', { path: 'nested.a\\.b.c', eq: 'deep' }, true],
    ['exists on null', { path: 'merged_by', exists: true }, true],
    ['exists on missing', { path: 'nope', exists: true }, false],
    ['not exists on missing', { path: 'nope.deeper', exists: false }, true],
    ['missing under not', { not: { path: 'nope', eq: 1 } }, true],
    ['and', { and: [{ path: 'action', eq: 'opened' }, { path: 'number', lt: 100 }] }, true],
    ['and one false', { and: [{ path: 'action', eq: 'opened' }, { path: 'number', lt: 10 }] }, false],
    ['or', { or: [{ path: 'nope', exists: true }, { path: 'draft', eq: false }] }, true],
    ['not', { not: { path: 'draft', eq: false } }, false],
  ])('%s', (_name, filter, expected) => {
    expect(compileFilter(filter).matches(data)).toBe(expected);
  });

  test('own keys only', () => {
    expect(compileFilter({ path: 'toString', exists: true }).matches({})).toBe(false);
    expect(compileFilter({ path: '__proto__', eq: 1 }).matches(JSON.parse('{"__proto__": 1}'))).toBe(true);
  });

  test('unstorable data matches nothing', () => {
    const exists = compileFilter({ path: 'a', exists: true });
    const absent = compileFilter({ not: { path: 'zzz', exists: true } });
    expect(exists.matches({ a: 1, b: 'x\u0000' })).toBe(false);
    expect(absent.matches({ a: 1, b: 'x\u0000' })).toBe(false);
    expect(absent.matches({ a: [{ 'k\uDFFF': 1 }] })).toBe(false);
    expect(absent.matches({ a: 'paired \uD83D\uDE00' })).toBe(true);
  });

  test('strings compare by code point', () => {
    expect(compareCodePoints('\uFFFF', '😀')).toBeLessThan(0);
    expect('\uFFFF' < '😀').toBe(false);
    expect(compareCodePoints('a', 'b')).toBeLessThan(0);
    expect(compareCodePoints('ab', 'a')).toBeGreaterThan(0);
    expect(compareCodePoints('é', 'é')).toBe(0);
    expect(compileFilter({ path: 's', gt: '\uFFFF' }).matches({ s: '😀' })).toBe(true);
  });
});
