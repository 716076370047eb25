// Payload filters: conditions on an event's data that a subscription may
// carry besides its event class pattern. The same filter is evaluated in
// two places that must agree: PostgreSQL evaluates its compiled jsonpath at
// dispatch, and the TypeScript evaluator checks it against sample data.
//
// Semantics, shared by both:
// - A path reaches at most one value: a key steps into an object, an index
//   into an array. A missing key, an index past the end or a step into the
//   wrong type makes the path missing. Arrays are never searched.
// - A condition on a missing path is false, except {"exists": false}.
// - "eq" and "in" match only a value of the same JSON type; null equals null.
//   "gt", "gte", "lt" and "lte" compare two numbers, or two strings by
//   Unicode code point, and are false for any other pair.
// - "and", "or" and "not" are plain two-valued logic.
// - Event data with U+0000 or an unpaired surrogate in a string or key
//   matches no filter, because PostgreSQL cannot read it as jsonb.
import { evaluateNode, isStorableAsJsonb } from './payload-filter-evaluate.js';
import { compileJsonpath } from './payload-filter-jsonpath.js';
import { parseFilter, type FilterNode, type PayloadFilter } from './payload-filter-parse.js';

export {
  MAX_FILTER_ARRAY_INDEX,
  MAX_FILTER_DEPTH,
  MAX_FILTER_IN_VALUES,
  MAX_FILTER_JSON_BYTES,
  MAX_FILTER_NODES,
  MAX_FILTER_PATH_STEPS,
  MAX_FILTER_STRING_LENGTH,
  parsePathString,
  type FilterPath,
  type FilterScalar,
  type PayloadFilter,
  type PathStep,
} from './payload-filter-parse.js';
export { compareCodePoints } from './payload-filter-evaluate.js';
export { quoteJsonpathString } from './payload-filter-jsonpath.js';

/** A checked payload filter with its jsonpath form. */
export class CompiledFilter {
  /** SQL/JSON path predicate in strict mode, for `jsonb @@ jsonpath`. */
  readonly jsonpath: string;

  constructor(
    /** The filter as given, which passed every check and so is valid JSON. */
    readonly filter: PayloadFilter,
    private readonly root: FilterNode,
  ) {
    this.jsonpath = compileJsonpath(root);
  }

  /**
   * Tells whether event data matches, with the result that dispatch gets
   * from PostgreSQL for the same data stored as JSON text.
   */
  matches(data: unknown): boolean {
    return isStorableAsJsonb(data) && evaluateNode(this.root, data);
  }
}

/**
 * Checks a payload filter against the language and its limits and compiles
 * it. A ValidationError names the part that breaks a rule, below `field`,
 * such as `subscriptions[1].filter.and[0].gt`.
 */
export function compileFilter(value: unknown, field = 'filter'): CompiledFilter {
  const root = parseFilter(value, field);
  return new CompiledFilter(value as PayloadFilter, root);
}
