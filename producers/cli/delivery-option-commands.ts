import { ValidationError } from '../../shared/errors.js';
import { stringOption, type CommandInput, type OptionSpec } from './command-spec.js';

/** The options of `receivers create` and `receivers update` that set ordering and limits. */
export const DELIVERY_OPTIONS: Record<string, OptionSpec> = {
  ordered: {
    type: 'string',
    valueName: 'true|false',
    description:
      'Send the receiver its deliveries one at a time, in the order of their events; ' +
      'see the README section "Ordered delivery"',
  },
  'rate-limit': {
    type: 'string',
    valueName: 'N|none',
    description:
      'Maximum requests per second to the receiver over all delivery workers; "none" removes the limit',
  },
  'max-in-flight': {
    type: 'string',
    valueName: 'N|none',
    description:
      'Maximum requests to the receiver in flight at once over all delivery workers; "none" removes the limit',
  },
};

/** The receiver fields that DELIVERY_OPTIONS set; absent options stay undefined. */
export interface DeliveryOptionValues {
  ordered?: boolean;
  rate_limit_per_second?: number | null;
  max_in_flight?: number | null;
}

function readOrdered(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ValidationError('--ordered', `must be "true" or "false", got "${value}"`);
}

/** Reads a limit option. The receiver service checks its range. */
function readLimitOption(value: string | undefined, option: string): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'none') return null;
  if (!/^\d+$/.test(value)) {
    throw new ValidationError(option, `must be a whole number or "none", got "${value}"`);
  }
  return Number(value);
}

/** Returns the values of DELIVERY_OPTIONS in the receiver service's field names. */
export function deliveryOptionValues(input: CommandInput): DeliveryOptionValues {
  return {
    ordered: readOrdered(stringOption(input, 'ordered')),
    rate_limit_per_second: readLimitOption(stringOption(input, 'rate-limit'), '--rate-limit'),
    max_in_flight: readLimitOption(stringOption(input, 'max-in-flight'), '--max-in-flight'),
  };
}
