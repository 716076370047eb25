import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import {
  buildEnvelope,
  MAX_DATA_DEPTH,
  serializeEventData,
} from '../../shared/payload.js';

const LIMIT = 1_000_000;

function catchError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Runs serializeEventData and returns the ValidationError it throws. */
function rejection(data: unknown, maxBytes = LIMIT, field?: string): ValidationError {
  const error = catchError(() => serializeEventData(data, maxBytes, field));
  expect(error).toBeInstanceOf(ValidationError);
  return error as ValidationError;
}

function nestedArrays(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

describe('serializeEventData', () => {
  it('serializes nested plain JSON', () => {
    const data = {
      action: 'opened',
      number: 42,
      ratio: -0.125,
      draft: false,
      labels: [{ name: 'bug' }, { name: 'p1', color: null }],
      nested: { deeper: { deepest: [1, [2, [3]]] } },
    };
    const text = serializeEventData(data, LIMIT);
    expect(text).toBe(
      '{"action":"opened","number":42,"ratio":-0.125,"draft":false,' +
        '"labels":[{"name":"bug"},{"name":"p1","color":null}],' +
        '"nested":{"deeper":{"deepest":[1,[2,[3]]]}}}',
    );
    expect(JSON.parse(text)).toEqual(data);
  });

  it.each([
    ['null', null, 'null'],
    ['a string', 'text', '"text"'],
    ['a number', 1.5, '1.5'],
    ['a boolean', true, 'true'],
    ['an empty array', [], '[]'],
  ])('serializes %s at the top', (_label, data, expected) => {
    expect(serializeEventData(data, LIMIT)).toBe(expected);
  });

  it('keeps unicode unescaped', () => {
    const data = { text: 'Grüße, 東京 🚀 line\u2028break' };
    expect(serializeEventData(data, LIMIT)).toBe(
      '{"text":"Grüße, 東京 🚀 line\u2028break"}',
    );
  });

  it('accepts the safe integer limits', () => {
    const data = { max: Number.MAX_SAFE_INTEGER, min: Number.MIN_SAFE_INTEGER };
    expect(serializeEventData(data, LIMIT)).toBe(
      '{"max":9007199254740991,"min":-9007199254740991}',
    );
  });

  it('accepts null-prototype objects', () => {
    const data = Object.assign(Object.create(null) as object, { a: 1 });
    expect(serializeEventData(data, LIMIT)).toBe('{"a":1}');
  });

  it('accepts repeated non-circular references', () => {
    const shared = { id: 7 };
    expect(serializeEventData({ first: shared, second: [shared] }, LIMIT)).toBe(
      '{"first":{"id":7},"second":[{"id":7}]}',
    );
  });

  it('rejects a BigInt', () => {
    const error = rejection({ big: 10n });
    expect(error.field).toBe('data.big');
    expect(error.message).toBe(
      'data.big: is a BigInt, which JSON cannot carry exactly; send it as a string',
    );
  });

  it('rejects a rounded large integer', () => {
    const data: unknown = JSON.parse('{"big": 12345678901234567890}');
    const error = rejection(data);
    expect(error.field).toBe('data.big');
    expect(error.message).toBe(
      'data.big: must be an integer from -9007199254740991 to 9007199254740991 to be kept exactly (got a number that rounds to 12345678901234567000); send larger integers as strings',
    );
  });

  it.each([
    ['2^53', 2 ** 53],
    ['-(2^53)', -(2 ** 53)],
  ])('rejects the integer %s', (_label, value) => {
    expect(rejection({ n: value }).field).toBe('data.n');
  });

  it.each([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
  ])('rejects %s', (label, value) => {
    const error = rejection({ n: value });
    expect(error.field).toBe('data.n');
    expect(error.message).toBe(`data.n: must be a finite number, got ${label}`);
  });

  it('rejects a function', () => {
    const error = rejection({ handler: () => 1 });
    expect(error.field).toBe('data.handler');
    expect(error.message).toBe(
      'data.handler: must be a JSON value (object, array, string, number, boolean or null), got function',
    );
  });

  it('rejects a symbol', () => {
    expect(rejection({ tag: Symbol('tag') }).field).toBe('data.tag');
  });

  it('rejects undefined in an object', () => {
    const error = rejection({ present: 1, missing: undefined });
    expect(error.field).toBe('data.missing');
    expect(error.message).toContain('got undefined');
  });

  it('rejects undefined in an array', () => {
    expect(rejection({ list: [1, undefined] }).field).toBe('data.list[1]');
  });

  it('rejects a sparse array hole', () => {
    expect(rejection({ list: [, 1] }).field).toBe('data.list[0]');
  });

  it('rejects undefined at the top', () => {
    expect(rejection(undefined).field).toBe('data');
  });

  it.each([
    ['Date', new Date(0)],
    ['Map', new Map([['a', 1]])],
    ['Point', new Point(1, 2)],
    ['Uint8Array', new Uint8Array([1, 2])],
    ['String', new String('boxed')],
  ])('rejects an instance of %s', (className, value) => {
    const error = rejection({ value });
    expect(error.field).toBe('data.value');
    expect(error.message).toBe(
      `data.value: must be a plain object, got an instance of ${className}`,
    );
  });

  it('rejects a circular object', () => {
    const data: Record<string, unknown> = { name: 'loop' };
    data.self = data;
    const error = rejection(data);
    expect(error.field).toBe('data.self');
    expect(error.message).toBe('data.self: is a circular reference');
  });

  it('rejects a circular array', () => {
    const list: unknown[] = [1];
    list.push({ back: list });
    expect(rejection({ list }).field).toBe('data.list[1].back');
  });

  it('names nested paths', () => {
    expect(rejection({ a: [{ b: [0, 1n] }] }).field).toBe('data.a[0].b[1]');
  });

  it('uses the given field name', () => {
    expect(rejection({ x: NaN }, LIMIT, 'event.data').field).toBe('event.data.x');
  });

  it('rejects oversize data', () => {
    const error = rejection({ text: 'a'.repeat(20) }, 20);
    expect(error.field).toBe('data');
    expect(error.message).toBe('data: must be at most 20 bytes as JSON, got 31 bytes');
  });

  it('counts UTF-8 bytes', () => {
    // {"t":"🚀"} is 8 ASCII characters and a 4-byte emoji.
    expect(serializeEventData({ t: '🚀' }, 12)).toBe('{"t":"🚀"}');
    expect(rejection({ t: '🚀' }, 11).message).toBe(
      'data: must be at most 11 bytes as JSON, got 12 bytes',
    );
  });

  it('accepts the maximum depth', () => {
    const text = serializeEventData(nestedArrays(MAX_DATA_DEPTH), LIMIT);
    expect(text).toBe(`${'['.repeat(MAX_DATA_DEPTH)}1${']'.repeat(MAX_DATA_DEPTH)}`);
  });

  it('rejects one level deeper', () => {
    const error = rejection(nestedArrays(MAX_DATA_DEPTH + 1));
    expect(error.field).toBe('data');
    expect(error.message).toBe(
      `data: must nest objects and arrays at most ${MAX_DATA_DEPTH} levels deep`,
    );
  });

  it('rejects very deep data cleanly', () => {
    let data: unknown = {};
    for (let i = 0; i < 100_000; i++) data = { child: data };
    expect(rejection(data).field).toBe('data');
  });
});

describe('buildEnvelope', () => {
  const fields = {
    eventClass: 'github.push',
    eventId: '0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e',
    deliveryId: '6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
    timeCreated: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)),
    dataJson: '{"ref":"refs/heads/main","size":3}',
  };

  it('builds the exact body', () => {
    expect(buildEnvelope(fields)).toBe(
      '{"event_class":"github.push",' +
        '"event_id":"0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e",' +
        '"delivery_id":"6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",' +
        '"timestamp":"2024-01-02T03:04:05.678Z",' +
        '"data":{"ref":"refs/heads/main","size":3}}',
    );
  });

  it('returns the same bytes every time', () => {
    const copy = { ...fields, timeCreated: new Date(fields.timeCreated.getTime()) };
    expect(buildEnvelope(copy)).toBe(buildEnvelope(fields));
  });

  it('parses with the expected fields', () => {
    const parsed = JSON.parse(buildEnvelope(fields)) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual([
      'event_class',
      'event_id',
      'delivery_id',
      'timestamp',
      'data',
    ]);
    expect(parsed.event_class).toBe('github.push');
    expect(parsed.event_id).toBe(fields.eventId);
    expect(parsed.delivery_id).toBe(fields.deliveryId);
    expect(parsed.data).toEqual({ ref: 'refs/heads/main', size: 3 });
  });

  it('formats the timestamp as ISO UTC', () => {
    const parsed = JSON.parse(buildEnvelope(fields)) as { timestamp: string };
    expect(parsed.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(parsed.timestamp)).toBe(fields.timeCreated.getTime());
  });

  it('keeps the stored data text unchanged', () => {
    const dataJson = '{"b":1.0,"a":"x\\/y","u":"\\u00e9"}';
    const body = buildEnvelope({ ...fields, dataJson });
    expect(body.endsWith(`,"data":${dataJson}}`)).toBe(true);
    expect(JSON.parse(body).data).toEqual({ b: 1, a: 'x/y', u: 'é' });
  });

  it('escapes quotes in string fields', () => {
    const body = buildEnvelope({ ...fields, eventClass: 'a"b\\c' });
    expect(JSON.parse(body).event_class).toBe('a"b\\c');
  });
});
