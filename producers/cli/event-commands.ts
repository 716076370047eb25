import { defineCommand, type GroupSpec } from './command-spec.js';
import { eventResendCommand } from './delivery-commands.js';

const EVENT_ARGUMENT = { name: 'id', description: 'Event id (UUID) as "publish" prints it' };

const getCommand = defineCommand({
  kind: 'command',
  name: 'get',
  operationId: 'getEvent',
  summary: 'Print a stored event with its data and dispatch state',
  description: [
    'Prints {"id", "event_class", "data", "time_created", "time_dispatched",',
    '"num_dispatched"}; "time_dispatched" is null until the dispatch worker has',
    'created the event\'s deliveries.',
  ].join('\n'),
  arguments: [EVENT_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.id! } };
  },
});

const deliveriesCommand = defineCommand({
  kind: 'command',
  name: 'deliveries',
  operationId: 'listEventDeliveries',
  summary: 'Print an event\'s deliveries with every attempt',
  description: [
    'Prints {"deliveries": [...]}, oldest first. Each delivery has its state',
    '(pending, delivered or failed) and an "attempt_log" with the result, HTTP',
    'status, duration in ms or unreachable reason of every attempt.',
  ].join('\n'),
  arguments: [EVENT_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.id! } };
  },
});

export const eventsGroup: GroupSpec = {
  kind: 'group',
  name: 'events',
  summary: 'Show a stored event and its deliveries, and resend it to a receiver',
  children: [getCommand, deliveriesCommand, eventResendCommand],
};
