import type { FilterNode, FilterScalar, PathStep } from './payload-filter-parse.js';

const SQL_OPERATORS = { eq: '==', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

/**
 * Quotes a string as a jsonpath string literal. Everything outside printable
 * ASCII becomes a `\uXXXX` escape, so the result is plain ASCII whatever the
 * connection's encoding. PostgreSQL joins escaped surrogate pairs.
 */
export function quoteJsonpathString(value: string): string {
  let quoted = '"';
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code === 0x22) quoted += '\\"';
    else if (code === 0x5c) quoted += '\\\\';
    else if (code >= 0x20 && code <= 0x7e) quoted += value[index];
    else quoted += `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return `${quoted}"`;
}

function pathExpression(path: readonly PathStep[]): string {
  let expression = '$';
  for (const step of path) {
    expression += typeof step === 'number' ? `[${step}]` : `.${quoteJsonpathString(step)}`;
  }
  return expression;
}

function literal(value: FilterScalar): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return quoteJsonpathString(value);
  // JavaScript prints the shortest decimal that reads back as the same
  // double, such as 5e-7 or -0.5, and jsonpath reads that syntax as an
  // exact numeric. Event data is stored from JSON.stringify too, so both
  // sides of a comparison carry the same decimal digits.
  return String(value);
}

/**
 * Wraps a condition so that it is true or false, never unknown. In strict
 * mode a missing key, a step into the wrong type or a comparison between
 * different types makes a jsonpath predicate unknown, and `!unknown` is
 * unknown too. `$ ? (...)` keeps the root only when the predicate is true,
 * so `exists` over it turns unknown into false, and `not` then works as
 * plain negation.
 */
function condition(predicate: string): string {
  return `exists($ ? (${predicate}))`;
}

function compileNode(node: FilterNode): string {
  switch (node.kind) {
    case 'compare':
      return condition(`${pathExpression(node.path)} ${SQL_OPERATORS[node.operator]} ${literal(node.value)}`);
    case 'in': {
      const path = pathExpression(node.path);
      return condition(node.values.map((value) => `${path} == ${literal(value)}`).join(' || '));
    }
    case 'exists': {
      const found = condition(`exists(${pathExpression(node.path)})`);
      return node.exists ? found : `!(${found})`;
    }
    case 'and':
      return `(${node.children.map(compileNode).join(' && ')})`;
    case 'or':
      return `(${node.children.map(compileNode).join(' || ')})`;
    case 'not':
      return `!(${compileNode(node.child)})`;
  }
}

/**
 * Compiles a parsed filter to an SQL/JSON path predicate for PostgreSQL's
 * `jsonb @@ jsonpath`. Strict mode keeps arrays from being unwrapped, so a
 * path reaches at most one value, as in the TypeScript evaluator.
 */
export function compileJsonpath(node: FilterNode): string {
  return `strict ${compileNode(node)}`;
}
