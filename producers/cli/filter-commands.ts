import { ValidationError } from '../../shared/errors.js';
import {
  UsageError,
  defineCommand,
  listOption,
  stringOption,
  type CommandInput,
  type GroupSpec,
  type OptionSpec,
  type RequestOf,
} from './command-spec.js';
import { MAX_DATA_INPUT_BYTES, readJsonInput } from './input.js';

/** One entry of a receiver's `subscriptions`: a pattern, or a pattern with its filter. */
type SubscriptionEntry = RequestOf<'createReceiver'>['body']['subscriptions'][number];

/** The --filter option of `receivers create` and `receivers update`. */
export const FILTER_OPTION: OptionSpec = {
  type: 'string',
  multiple: true,
  valueName: 'PATTERN=JSON',
  description:
    'Payload filter for the --subscribe PATTERN, as JSON: that subscription gets only the events ' +
    'whose data match it, such as github.*=\'{"path": "action", "eq": "opened"}\'. ' +
    'At most one per pattern; see the README section "Payload filters"',
};

/**
 * Pairs the --filter values with their --subscribe patterns. The API checks
 * the patterns and filters, and names the entry of `subscriptions` in its
 * error.
 */
export function subscriptionsWithFilters(
  patterns: readonly string[],
  filterValues: readonly string[] | undefined,
): SubscriptionEntry[] {
  const filters = new Map<string, unknown>();
  for (const value of filterValues ?? []) {
    const separator = value.indexOf('=');
    if (separator === -1) {
      throw new ValidationError(
        '--filter',
        `must be PATTERN=JSON, such as github.*='{"path": "action", "eq": "opened"}', got ${JSON.stringify(value)}`,
      );
    }
    const pattern = value.slice(0, separator);
    const field = `--filter ${JSON.stringify(pattern)}`;
    if (!patterns.includes(pattern)) {
      throw new ValidationError(
        field,
        `names a pattern that no --subscribe gives; add --subscribe '${pattern}'`,
      );
    }
    if (filters.has(pattern)) {
      throw new ValidationError(
        field,
        'is given twice; join the two filters with {"or": [...]} or {"and": [...]} in one --filter',
      );
    }
    let filter: unknown;
    try {
      filter = JSON.parse(value.slice(separator + 1));
    } catch (error) {
      throw new ValidationError(field, `is not valid JSON: ${(error as Error).message}`);
    }
    filters.set(pattern, filter);
  }
  return patterns.map((pattern) =>
    filters.has(pattern) ? { event_class: pattern, filter: filters.get(pattern) } : pattern,
  );
}

/** Reads --filter for `receivers update`, where it needs --subscribe. */
export function updatedSubscriptions(
  input: CommandInput,
  patterns: string[] | undefined,
): SubscriptionEntry[] | undefined {
  const filterValues = listOption(input, 'filter');
  if (patterns === undefined) {
    if (filterValues !== undefined) {
      throw new UsageError(
        '--filter needs the --subscribe values that it filters, because the given subscriptions replace all current ones',
        'receivers update',
      );
    }
    return undefined;
  }
  return subscriptionsWithFilters(patterns, filterValues);
}

const testCommand = defineCommand({
  kind: 'command',
  name: 'test',
  operationId: 'testPayloadFilter',
  summary: 'Check a payload filter against sample event data',
  description: [
    'Checks the --filter JSON as a receiver save would and evaluates it against',
    'the event data read from --file or stdin, with the result that dispatch',
    'would get. Prints {"matches", "jsonpath"}, where "jsonpath" is the SQL/JSON',
    'path predicate that PostgreSQL evaluates. Nothing is stored.',
  ].join('\n'),
  arguments: [],
  options: {
    filter: {
      type: 'string',
      required: true,
      valueName: 'JSON',
      description: 'Payload filter, such as \'{"path": "action", "in": ["opened", "closed"]}\'',
    },
    file: {
      type: 'string',
      short: 'f',
      valueName: 'FILE',
      description: 'Read the event data from FILE instead of stdin; "-" is stdin',
    },
  },
  examples: [
    `echo '{"action": "opened"}' | webhooks filters test --filter '{"path": "action", "eq": "opened"}'`,
  ],
  async request(input, context) {
    const text = stringOption(input, 'filter')!;
    let filter: unknown;
    try {
      filter = JSON.parse(text);
    } catch (error) {
      throw new ValidationError('--filter', `is not valid JSON: ${(error as Error).message}`);
    }
    const data = await readJsonInput({
      file: stringOption(input, 'file'),
      stdin: context.stdin,
      limitBytes: MAX_DATA_INPUT_BYTES,
      commandPath: 'filters test',
    });
    return { body: { filter, data } };
  },
});

export const filtersGroup: GroupSpec = {
  kind: 'group',
  name: 'filters',
  summary: 'Check payload filters against sample event data',
  children: [testCommand],
};
