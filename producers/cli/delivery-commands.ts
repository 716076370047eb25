import { deliveryState, type DeliveryState } from '../api/contract/deliveries.js';
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../api/contract/fields.js';
import { defineCommand, stringOption, type GroupSpec } from './command-spec.js';

const RECEIVER_ARGUMENT = { name: 'receiver', description: 'Receiver id (UUID) or name' };
const DELIVERY_ARGUMENT = { name: 'id', description: 'Delivery id (UUID)' };
const TIMESTAMP_VALUE = 'TIME';
const TIMESTAMP_FORMAT = 'an RFC 3339 time with a zone, such as 2026-12-01T00:00:00Z';

const listCommand = defineCommand({
  kind: 'command',
  name: 'list',
  operationId: 'listDeliveries',
  summary: 'List deliveries by receiver, state and time, newest first',
  description: [
    'Prints {"deliveries": [...], "next_after"}, newest first, without their',
    'attempts ("deliveries show" prints those). Filters combine freely. When',
    '"next_after" is not null, pass it to --after to read the next page.',
  ].join('\n'),
  arguments: [],
  options: {
    receiver: {
      type: 'string',
      valueName: 'RECEIVER',
      description: 'Receiver id or name; an id also finds a deleted receiver',
    },
    state: {
      type: 'string',
      valueName: 'STATE',
      description: `Delivery state: ${deliveryState.options.join(', ')}`,
    },
    since: {
      type: 'string',
      valueName: TIMESTAMP_VALUE,
      description: `Deliveries created at or after TIME, ${TIMESTAMP_FORMAT}`,
    },
    until: {
      type: 'string',
      valueName: TIMESTAMP_VALUE,
      description: 'Deliveries created before TIME',
    },
    limit: {
      type: 'string',
      valueName: 'N',
      description: `Maximum number of deliveries to print, from 1 to ${MAX_PAGE_LIMIT} (default ${DEFAULT_PAGE_LIMIT})`,
    },
    after: {
      type: 'string',
      valueName: 'CURSOR',
      description: 'Print the page after CURSOR, the "next_after" of the previous page',
    },
  },
  examples: [
    'webhooks deliveries list --receiver billing --state failed --since 2026-12-01T00:00:00Z',
  ],
  async request(input) {
    return {
      query: {
        receiver: stringOption(input, 'receiver'),
        // The API checks the state and names the allowed ones in its error.
        state: stringOption(input, 'state') as DeliveryState | undefined,
        since: stringOption(input, 'since'),
        until: stringOption(input, 'until'),
        limit: stringOption(input, 'limit'),
        after: stringOption(input, 'after'),
      },
    };
  },
});

const showCommand = defineCommand({
  kind: 'command',
  name: 'show',
  operationId: 'getDelivery',
  summary: 'Print a delivery with every attempt',
  description: [
    'Prints the delivery with an "attempt_log": the result, HTTP status,',
    'duration in ms or unreachable reason of every attempt.',
  ].join('\n'),
  arguments: [DELIVERY_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.id! } };
  },
});

const resendCommand = defineCommand({
  kind: 'command',
  name: 'resend',
  operationId: 'resendDelivery',
  summary: "Send a delivery's event to its receiver again",
  description: [
    'Creates a new delivery of the same event to the same receiver, with',
    '"triggered_by": "resend", whatever the old delivery\'s state, and prints it.',
    'A deleted or disabled receiver gets no resend.',
  ].join('\n'),
  arguments: [DELIVERY_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.id! } };
  },
});

/** `webhooks events resend`, hooked into the events group. */
export const eventResendCommand = defineCommand({
  kind: 'command',
  name: 'resend',
  operationId: 'resendEvent',
  summary: 'Send an event to one receiver again',
  description: [
    'Creates a delivery of the event to the receiver, with "triggered_by":',
    '"resend", also when the event was never dispatched to it, and prints it.',
    'A deleted or disabled receiver gets no resend.',
  ].join('\n'),
  arguments: [{ name: 'id', description: 'Event id (UUID) as "publish" prints it' }],
  options: {
    receiver: {
      type: 'string',
      required: true,
      valueName: 'RECEIVER',
      description: 'Receiver id or name',
    },
  },
  async request(input) {
    return { params: { id: input.args.id! }, body: { receiver: stringOption(input, 'receiver')! } };
  },
});

export const deliveriesGroup: GroupSpec = {
  kind: 'group',
  name: 'deliveries',
  summary: 'List deliveries, show one with its attempts, and resend one',
  children: [listCommand, showCommand, resendCommand],
};

const resendsCreateCommand = defineCommand({
  kind: 'command',
  name: 'create',
  operationId: 'createResend',
  summary: 'Resend failed deliveries in bulk, in the background',
  description: [
    'Starts a bulk resend of the failed deliveries created in [--since,',
    '--until) of one receiver, or of every live receiver, and prints it. A',
    'dispatch worker creates the new deliveries in pages of RESEND_PAGE_SIZE;',
    '"resends show" prints the progress. An event is resent once, and not at',
    'all when a delivery of it to the same receiver is delivered or pending.',
  ].join('\n'),
  arguments: [],
  options: {
    receiver: {
      type: 'string',
      valueName: 'RECEIVER',
      description: 'Receiver id or name; every live receiver when absent',
    },
    since: {
      type: 'string',
      valueName: TIMESTAMP_VALUE,
      description: `Failed deliveries created at or after TIME, ${TIMESTAMP_FORMAT}; no lower bound when absent`,
    },
    until: {
      type: 'string',
      valueName: TIMESTAMP_VALUE,
      description: 'Failed deliveries created before TIME; now when absent or later',
    },
  },
  examples: ['webhooks resends create --receiver billing --since 2026-12-01T00:00:00Z'],
  async request(input) {
    return {
      body: {
        receiver: stringOption(input, 'receiver'),
        since: stringOption(input, 'since'),
        until: stringOption(input, 'until'),
      },
    };
  },
});

const resendsShowCommand = defineCommand({
  kind: 'command',
  name: 'show',
  operationId: 'getResend',
  summary: 'Print a bulk resend with its progress',
  description: [
    'Prints the state (running, completed or failed), the counts "num_matched",',
    '"num_created" and "num_skipped", and the states of the new deliveries.',
  ].join('\n'),
  arguments: [{ name: 'id', description: 'Resend id (UUID) as "resends create" prints it' }],
  options: {},
  async request(input) {
    return { params: { id: input.args.id! } };
  },
});

export const resendsGroup: GroupSpec = {
  kind: 'group',
  name: 'resends',
  summary: 'Start and follow bulk resends of failed deliveries',
  children: [resendsCreateCommand, resendsShowCommand],
};

/** `webhooks receivers probe`, hooked into the receivers group. */
export const probeCommand = defineCommand({
  kind: 'command',
  name: 'probe',
  operationId: 'probeReceiver',
  summary: 'Send a test event to a receiver and print the result',
  description: [
    'Sends an event of class webhook.probe to the receiver alone, and the API',
    'waits up to its PROBE_TIMEOUT_MS for the one attempt, which a delivery',
    'worker makes, so a delivery worker must run. Prints {"probe",',
    '"resend_batch"}; "probe.state" is delivered or failed. A disabled receiver',
    'is probed all the same. With --resend, a probe that succeeds starts a bulk',
    'resend of every failed delivery of the receiver. WEBHOOKS_TIMEOUT_MS must',
    'be longer than PROBE_TIMEOUT_MS.',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: {
    resend: {
      type: 'boolean',
      description: "Start a bulk resend of the receiver's failed deliveries when the probe succeeds",
    },
  },
  async request(input) {
    return {
      params: { id: input.args.receiver! },
      body: input.options.resend === true ? { resend: true } : {},
    };
  },
});
