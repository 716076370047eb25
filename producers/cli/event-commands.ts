import { assertUuid } from '../../shared/ids.js';
import { getEvent, listEventDeliveries } from '../api/read-events.js';
import type { CommandSpec, GroupSpec } from './command-spec.js';

const EVENT_ARGUMENT = { name: 'id', description: 'Event id (UUID) as "publish" prints it' };

const getCommand: CommandSpec = {
  kind: 'command',
  name: 'get',
  summary: 'Print a stored event with its data and dispatch state',
  description: [
    'Prints {"id", "event_class", "data", "time_created", "time_dispatched",',
    '"num_dispatched"}; "time_dispatched" is null until the dispatch worker has',
    'created the event\'s deliveries.',
  ].join('\n'),
  arguments: [EVENT_ARGUMENT],
  options: {},
  async run(input, context) {
    return getEvent(context.resources.prisma, assertUuid(input.args.id, 'id'));
  },
};

const deliveriesCommand: CommandSpec = {
  kind: 'command',
  name: 'deliveries',
  summary: 'Print an event\'s deliveries with every attempt',
  description: [
    'Prints {"deliveries": [...]}, oldest first. Each delivery has its state',
    '(pending, delivered or failed) and an "attempt_log" with the result, HTTP',
    'status, duration in ms or unreachable reason of every attempt.',
  ].join('\n'),
  arguments: [EVENT_ARGUMENT],
  options: {},
  async run(input, context) {
    const id = assertUuid(input.args.id, 'id');
    return { deliveries: await listEventDeliveries(context.resources.prisma, id) };
  },
};

export const eventsGroup: GroupSpec = {
  kind: 'group',
  name: 'events',
  summary: 'Show a stored event and its deliveries',
  children: [getCommand, deliveriesCommand],
};
