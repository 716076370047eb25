import { defineCommand, stringOption } from './command-spec.js';

const RECEIVER_ARGUMENT = {
  name: 'receiver',
  description: 'Receiver id (UUID) or name',
};

export const disableCommand = defineCommand({
  kind: 'command',
  name: 'disable',
  operationId: 'disableReceiver',
  summary: 'Disable a receiver so that it gets no deliveries',
  description: [
    'Disables a receiver: it gets no new deliveries, and its pending deliveries',
    'end as failed, without a request, when a worker next picks them up.',
    'A receiver that is already disabled keeps its time and reason.',
    'Prints the receiver with "time_disabled" and "disabled_reason".',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: {
    reason: {
      type: 'string',
      valueName: 'TEXT',
      description:
        'Why the receiver is disabled, up to 500 characters; stored after "disabled by an operator: "',
    },
  },
  examples: ["webhooks receivers disable billing --reason 'endpoint moves to a new host'"],
  async request(input) {
    return { params: { id: input.args.receiver! }, body: { reason: stringOption(input, 'reason') } };
  },
});

export const enableCommand = defineCommand({
  kind: 'command',
  name: 'enable',
  operationId: 'enableReceiver',
  summary: 'Enable a disabled receiver',
  description: [
    'Enables a receiver that an operator or repeated failures disabled, and',
    'restarts its failure tracking. Deliveries that ended while it was',
    'disabled stay failed. Prints the receiver.',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.receiver! } };
  },
});
