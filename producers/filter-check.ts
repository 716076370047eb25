import { ValidationError } from '../shared/errors.js';
import { compileFilter } from '../shared/payload-filter.js';
import { serializeEventData } from '../shared/payload.js';

/** The result of checking a payload filter against sample event data. */
export interface FilterCheck {
  matches: boolean;
  /** The SQL/JSON path predicate that dispatch evaluates. */
  jsonpath: string;
}

/**
 * Checks a payload filter as a receiver save does and evaluates it against
 * sample data. The data is checked with the rules of publishing and read back
 * from its JSON text, so the result is the one that dispatch gets.
 */
export function checkFilter(filter: unknown, data: unknown, maxPayloadBytes: number): FilterCheck {
  const compiled = compileFilter(filter, 'filter');
  if (data === undefined) {
    throw new ValidationError('data', 'is missing; pass any JSON value');
  }
  const stored: unknown = JSON.parse(serializeEventData(data, maxPayloadBytes, 'data'));
  return { matches: compiled.matches(stored), jsonpath: compiled.jsonpath };
}
