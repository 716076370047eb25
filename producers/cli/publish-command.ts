import { assertEventClass } from '../../shared/event-class.js';
import { assertUuid } from '../../shared/ids.js';
import { stringOption, type CommandSpec } from './command-spec.js';
import { readJsonInput } from './input.js';

/**
 * Maximum size of the raw input as a multiple of MAX_PAYLOAD_BYTES. Input
 * may be pretty-printed, so it can be larger than the compact JSON that
 * MAX_PAYLOAD_BYTES limits. The Publisher checks the compact size after
 * parsing.
 */
const RAW_INPUT_FACTOR = 16;

export const publishCommand: CommandSpec = {
  kind: 'command',
  name: 'publish',
  summary: 'Store an event and enqueue its dispatch',
  description: [
    'Stores an event of class <event-class> whose data is the JSON value read',
    'from --file or from stdin, then adds its dispatch job to Redis. The stored',
    'row is the commit point: when Redis is unreachable the command still',
    'succeeds and prints "enqueued": false, and the dispatch sweeper enqueues',
    'the event later.',
    '',
    'Prints {"id", "event_class", "time_created", "created", "enqueued"}, where',
    '"created" is false when an event with the same --id was already stored.',
  ].join('\n'),
  arguments: [
    {
      name: 'event-class',
      description: 'Event class: dot-separated segments of letters, digits, "_" and "-", such as github.push.created',
    },
  ],
  options: {
    file: {
      type: 'string',
      short: 'f',
      valueName: 'FILE',
      description: 'Read the event data from FILE instead of stdin; "-" is stdin',
    },
    id: {
      type: 'string',
      valueName: 'UUID',
      description:
        'Event id, so that a retried publish stores one event; a random UUID when absent',
    },
  },
  examples: [
    `echo '{"ref": "main"}' | webhooks publish github.push.created`,
    'webhooks publish billing.invoice.paid --file invoice.json --id 0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e',
  ],
  async run(input, context) {
    const eventClass = assertEventClass(input.args['event-class'], 'event-class');
    const idOption = stringOption(input, 'id');
    const id = idOption === undefined ? undefined : assertUuid(idOption, '--id');
    const data = await readJsonInput({
      file: stringOption(input, 'file'),
      stdin: context.stdin,
      limitBytes: context.config.maxPayloadBytes * RAW_INPUT_FACTOR,
      commandPath: 'publish',
    });
    const result = await context.resources.publisher().publishEvent({ eventClass, data, id });
    return {
      id: result.id,
      event_class: result.eventClass,
      time_created: result.timeCreated.toISOString(),
      created: result.created,
      enqueued: result.enqueued,
    };
  },
};
