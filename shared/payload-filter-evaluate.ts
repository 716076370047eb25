import {
  UNSTORABLE_TEXT,
  type CompareOperator,
  type FilterNode,
  type FilterScalar,
  type PathStep,
} from './payload-filter-parse.js';

const MISSING = Symbol('missing');

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Follows a path, and returns MISSING when a key or index is absent or a step meets the wrong type. */
function resolve(data: unknown, path: readonly PathStep[]): unknown {
  let value = data;
  for (const step of path) {
    if (typeof step === 'number') {
      if (!Array.isArray(value) || step >= value.length) return MISSING;
      value = value[step];
    } else {
      if (!isObject(value) || !Object.hasOwn(value, step)) return MISSING;
      value = value[step];
    }
  }
  return value;
}

/**
 * Compares strings by Unicode code point, as PostgreSQL's jsonpath does in a
 * UTF-8 database. JavaScript's `<` compares UTF-16 code units instead, which
 * puts U+10000 and above before U+E000 to U+FFFF.
 */
export function compareCodePoints(left: string, right: string): number {
  const length = Math.min(left.length, right.length);
  for (let index = 0; index < length; index++) {
    const a = left.charCodeAt(index);
    const b = right.charCodeAt(index);
    if (a !== b) return codePointRank(a) - codePointRank(b);
  }
  return left.length - right.length;
}

/** Moves surrogates (U+D800 to U+DFFF) above U+E000 to U+FFFF, which gives code point order. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

function compare(operator: CompareOperator, value: unknown, expected: FilterScalar): boolean {
  if (operator === 'eq') {
    if (expected === null || value === null) return value === expected;
    return typeof value === typeof expected && value === expected;
  }
  let order: number;
  if (typeof value === 'number' && typeof expected === 'number') order = value - expected;
  else if (typeof value === 'string' && typeof expected === 'string') order = compareCodePoints(value, expected);
  else return false;
  switch (operator) {
    case 'gt':
      return order > 0;
    case 'gte':
      return order >= 0;
    case 'lt':
      return order < 0;
    case 'lte':
      return order <= 0;
  }
}

/** Evaluates a parsed filter against parsed event data. */
export function evaluateNode(node: FilterNode, data: unknown): boolean {
  switch (node.kind) {
    case 'compare': {
      const value = resolve(data, node.path);
      return value !== MISSING && compare(node.operator, value, node.value);
    }
    case 'in': {
      const value = resolve(data, node.path);
      return value !== MISSING && node.values.some((expected) => compare('eq', value, expected));
    }
    case 'exists':
      return (resolve(data, node.path) !== MISSING) === node.exists;
    case 'and':
      return node.children.every((child) => evaluateNode(child, data));
    case 'or':
      return node.children.some((child) => evaluateNode(child, data));
    case 'not':
      return !evaluateNode(node.child, data);
  }
}

/**
 * Tells whether PostgreSQL can read data as jsonb: no string or key may
 * contain U+0000 or an unpaired surrogate. Dispatch treats data that it
 * cannot read as matching no filter.
 */
export function isStorableAsJsonb(data: unknown): boolean {
  const pending: unknown[] = [data];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string') {
      if (UNSTORABLE_TEXT.test(value)) return false;
    } else if (Array.isArray(value)) {
      for (const item of value) pending.push(item);
    } else if (isObject(value)) {
      for (const [key, item] of Object.entries(value)) {
        if (UNSTORABLE_TEXT.test(key)) return false;
        pending.push(item);
      }
    }
  }
  return true;
}
