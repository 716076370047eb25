import { ValidationError } from './errors.js';

/** Maximum nesting: a condition alone is 1 level, and each "and", "or" or "not" adds one. */
export const MAX_FILTER_DEPTH = 8;
/** Maximum number of conditions and "and", "or", "not" operators in one filter. */
export const MAX_FILTER_NODES = 64;
/** Maximum number of values in one "in" list. */
export const MAX_FILTER_IN_VALUES = 100;
/** Maximum length of a string value, a path string or a key, in UTF-16 code units. */
export const MAX_FILTER_STRING_LENGTH = 1024;
/** Maximum number of keys and indexes in one path. */
export const MAX_FILTER_PATH_STEPS = 32;
/** Largest array index, because PostgreSQL's jsonpath reads subscripts as 32-bit integers. */
export const MAX_FILTER_ARRAY_INDEX = 2_147_483_647;
/** Maximum size of a whole filter as JSON, in UTF-8 bytes. */
export const MAX_FILTER_JSON_BYTES = 16_384;

export type FilterScalar = string | number | boolean | null;

/**
 * Path of a condition into the event data: a dotted string such as
 * `pull_request.labels[0].name`, or an array of keys (strings) and array
 * indexes (numbers). The empty array is the data itself.
 */
export type FilterPath = string | readonly (string | number)[];

/** A payload filter as clients write it in JSON. */
export type PayloadFilter =
  | ({ path: FilterPath } & (
      | { eq: FilterScalar }
      | { in: readonly FilterScalar[] }
      | { gt: number | string }
      | { gte: number | string }
      | { lt: number | string }
      | { lte: number | string }
      | { exists: boolean }
    ))
  | { and: readonly PayloadFilter[] }
  | { or: readonly PayloadFilter[] }
  | { not: PayloadFilter };

/** One step of a path: an object key or an array index. */
export type PathStep = string | number;

export type CompareOperator = 'eq' | 'gt' | 'gte' | 'lt' | 'lte';

/** A checked filter, which the evaluator and the jsonpath compiler read. */
export type FilterNode =
  | { kind: 'compare'; path: PathStep[]; operator: CompareOperator; value: FilterScalar }
  | { kind: 'in'; path: PathStep[]; values: FilterScalar[] }
  | { kind: 'exists'; path: PathStep[]; exists: boolean }
  | { kind: 'and' | 'or'; children: FilterNode[] }
  | { kind: 'not'; child: FilterNode };

const OPERATORS = ['eq', 'in', 'gt', 'gte', 'lt', 'lte', 'exists'] as const;
const COMBINATORS = ['and', 'or', 'not'] as const;
const OPERATOR_LIST = '"eq", "in", "gt", "gte", "lt", "lte" or "exists"';
const FILTER_SHAPES =
  '{"path": "action", "eq": "opened"}, {"and": [...]}, {"or": [...]} or {"not": {...}}';

/**
 * Matches U+0000 and unpaired UTF-16 surrogates. PostgreSQL's jsonb and
 * jsonpath reject both, so filters may not contain them, and event data that
 * contains them matches no filter.
 */
export const UNSTORABLE_TEXT = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Shows a value in an error message as JSON, cut to 60 characters. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function checkString(value: string, field: string): string {
  if (value.length > MAX_FILTER_STRING_LENGTH) {
    throw new ValidationError(
      field,
      `must be at most ${MAX_FILTER_STRING_LENGTH} characters, got ${value.length}`,
    );
  }
  const bad = UNSTORABLE_TEXT.exec(value);
  if (bad) {
    const code = bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw new ValidationError(
      field,
      `must not contain U+${code} (at character ${bad.index + 1}): PostgreSQL cannot store U+0000 or unpaired surrogates in JSON`,
    );
  }
  return value;
}

function checkNumber(value: number, field: string): number {
  if (!Number.isFinite(value)) {
    throw new ValidationError(field, `must be a finite number, got ${value}`);
  }
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
    throw new ValidationError(
      field,
      `must be an integer from -${Number.MAX_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}, got ${value}`,
    );
  }
  return value;
}

function checkScalar(value: unknown, field: string): FilterScalar {
  if (typeof value === 'string') return checkString(value, field);
  if (typeof value === 'number') return checkNumber(value, field);
  if (typeof value === 'boolean' || value === null) return value;
  throw new ValidationError(
    field,
    `must be a string, number, boolean or null, got ${describeValue(value)}`,
  );
}

function checkOrdered(value: unknown, field: string): number | string {
  if (typeof value === 'string') return checkString(value, field);
  if (typeof value === 'number') return checkNumber(value, field);
  throw new ValidationError(field, `must be a number or string, got ${describeValue(value)}`);
}

const PATH_RULE =
  'write keys separated by "." and array indexes as [0], and escape ".", "[", "]" and "\\" inside a key with "\\"';

/**
 * Parses a dotted path such as `a.b[0].c`. A backslash makes the next ".",
 * "[", "]" or "\" part of the key, so `a\.b` is the one key "a.b".
 */
export function parsePathString(text: string, field: string): PathStep[] {
  const fail = (reason: string, index: number): never => {
    throw new ValidationError(
      field,
      `${describeValue(text)} is not a valid path: ${reason} at character ${index + 1}; ${PATH_RULE}`,
    );
  };
  const steps: PathStep[] = [];
  let index = 0;
  let afterDot = false;
  for (;;) {
    if (text[index] === '[' && !afterDot) {
      const close = text.indexOf(']', index);
      const digits = close === -1 ? text.slice(index + 1) : text.slice(index + 1, close);
      if (close === -1 || !/^(0|[1-9][0-9]*)$/.test(digits) || Number(digits) > MAX_FILTER_ARRAY_INDEX) {
        fail(`an array index must be a whole number from 0 to ${MAX_FILTER_ARRAY_INDEX} in brackets`, index);
      }
      steps.push(Number(digits));
      index = close + 1;
    } else {
      const start = index;
      let key = '';
      while (index < text.length && text[index] !== '.' && text[index] !== '[') {
        const char = text[index]!;
        if (char === ']') fail('unescaped "]"', index);
        if (char === '\\') {
          const next = text[index + 1];
          if (next === undefined || !'.[]\\'.includes(next)) {
            fail('"\\" must be followed by ".", "[", "]" or "\\"', index);
          }
          key += next;
          index += 2;
        } else {
          key += char;
          index += 1;
        }
      }
      if (key === '') fail('empty key', start);
      steps.push(key);
    }
    afterDot = false;
    if (index >= text.length) return steps;
    if (text[index] === '.') {
      afterDot = true;
      index += 1;
    } else if (text[index] !== '[') {
      fail('expected "." or "[" after an array index', index);
    }
  }
}

function checkPath(value: unknown, field: string): PathStep[] {
  let steps: PathStep[];
  if (typeof value === 'string') {
    if (value === '') {
      throw new ValidationError(
        field,
        'must not be empty; use [] for the whole event data',
      );
    }
    checkString(value, field);
    steps = parsePathString(value, field);
  } else if (Array.isArray(value)) {
    steps = value.map((step, index) => {
      const stepField = `${field}[${index}]`;
      if (typeof step === 'string') return checkString(step, stepField);
      if (Number.isInteger(step) && step >= 0 && step <= MAX_FILTER_ARRAY_INDEX) return step as number;
      throw new ValidationError(
        stepField,
        `must be an object key (a string) or an array index (a whole number from 0 to ${MAX_FILTER_ARRAY_INDEX}), got ${describeValue(step)}`,
      );
    });
  } else if (value === undefined) {
    throw new ValidationError(field, 'is missing; a condition needs "path" and one operator');
  } else {
    throw new ValidationError(
      field,
      `must be a dotted string such as "repository.name" or an array of keys and indexes such as ["labels", 0, "name"], got ${describeValue(value)}`,
    );
  }
  if (steps.length > MAX_FILTER_PATH_STEPS) {
    throw new ValidationError(
      field,
      `must have at most ${MAX_FILTER_PATH_STEPS} keys and indexes, got ${steps.length}`,
    );
  }
  return steps;
}

interface WalkState {
  nodes: number;
  readonly rootField: string;
}

function checkCondition(value: Record<string, unknown>, field: string): FilterNode {
  const keys = Object.keys(value);
  const unknown = keys.filter(
    (key) => key !== 'path' && !(OPERATORS as readonly string[]).includes(key),
  );
  if (unknown.length > 0) {
    throw new ValidationError(
      field,
      `has unknown field ${describeValue(unknown[0])}; a condition has "path" and one of ${OPERATOR_LIST}`,
    );
  }
  const operators = OPERATORS.filter((operator) => Object.hasOwn(value, operator));
  if (operators.length === 0) {
    if (keys.length === 0) {
      throw new ValidationError(field, `must be a filter such as ${FILTER_SHAPES}, got {}`);
    }
    throw new ValidationError(field, `has no operator; add one of ${OPERATOR_LIST} next to "path"`);
  }
  if (operators.length > 1) {
    throw new ValidationError(
      field,
      `has both "${operators[0]}" and "${operators[1]}"; give each its own condition inside "and"`,
    );
  }
  const path = checkPath(value.path, `${field}.path`);
  const operator = operators[0]!;
  const operand = value[operator];
  const operandField = `${field}.${operator}`;
  switch (operator) {
    case 'eq':
      return { kind: 'compare', path, operator, value: checkScalar(operand, operandField) };
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return { kind: 'compare', path, operator, value: checkOrdered(operand, operandField) };
    case 'exists':
      if (typeof operand !== 'boolean') {
        throw new ValidationError(operandField, `must be true or false, got ${describeValue(operand)}`);
      }
      return { kind: 'exists', path, exists: operand };
    case 'in':
      if (!Array.isArray(operand) || operand.length === 0 || operand.length > MAX_FILTER_IN_VALUES) {
        throw new ValidationError(
          operandField,
          `must be an array of 1 to ${MAX_FILTER_IN_VALUES} strings, numbers, booleans or nulls, got ${
            Array.isArray(operand) ? `${operand.length} values` : describeValue(operand)
          }`,
        );
      }
      return {
        kind: 'in',
        path,
        values: operand.map((item, index) => checkScalar(item, `${operandField}[${index}]`)),
      };
  }
}

function checkNode(value: unknown, field: string, depth: number, state: WalkState): FilterNode {
  state.nodes += 1;
  if (state.nodes > MAX_FILTER_NODES) {
    throw new ValidationError(
      state.rootField,
      `must have at most ${MAX_FILTER_NODES} conditions and "and", "or", "not" operators in all`,
    );
  }
  if (depth > MAX_FILTER_DEPTH) {
    throw new ValidationError(
      field,
      `nests deeper than ${MAX_FILTER_DEPTH} levels of "and", "or" and "not"`,
    );
  }
  if (!isPlainObject(value)) {
    throw new ValidationError(field, `must be a filter such as ${FILTER_SHAPES}, got ${describeValue(value)}`);
  }
  const combinator = COMBINATORS.find((name) => Object.hasOwn(value, name));
  if (combinator === undefined) return checkCondition(value, field);

  const keys = Object.keys(value);
  if (keys.length > 1) {
    const others = keys.filter((key) => key !== combinator).map((key) => `"${key}"`);
    throw new ValidationError(
      field,
      `has "${combinator}" next to ${others.join(', ')}; an "${combinator}" filter has no other fields`,
    );
  }
  const operand = value[combinator];
  const operandField = `${field}.${combinator}`;
  if (combinator === 'not') {
    return { kind: 'not', child: checkNode(operand, operandField, depth + 1, state) };
  }
  if (!Array.isArray(operand) || operand.length === 0) {
    throw new ValidationError(
      operandField,
      `must be a non-empty array of filters, got ${describeValue(operand)}`,
    );
  }
  return {
    kind: combinator,
    children: operand.map((child, index) =>
      checkNode(child, `${operandField}[${index}]`, depth + 1, state),
    ),
  };
}

/**
 * Checks a filter and returns its parsed form. Each ValidationError names
 * the part that breaks a rule, such as `filter.and[0].gt`.
 */
export function parseFilter(value: unknown, field: string): FilterNode {
  const node = checkNode(value, field, 1, { nodes: 0, rootField: field });
  // The walk above bounds the structure, so serializing it is cheap.
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > MAX_FILTER_JSON_BYTES) {
    throw new ValidationError(
      field,
      `must be at most ${MAX_FILTER_JSON_BYTES} bytes as JSON, got ${bytes}`,
    );
  }
  return node;
}
