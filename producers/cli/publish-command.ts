import { defineCommand, stringOption } from './command-spec.js';
import { MAX_DATA_INPUT_BYTES, readJsonInput } from './input.js';

export const publishCommand = defineCommand({
  kind: 'command',
  name: 'publish',
  operationId: 'publishEvent',
  summary: 'Publish an event for dispatch to its subscribers',
  description: [
    'Publishes an event of class <event-class> whose data is the JSON value read',
    'from --file or from stdin. The API stores the event and queues its',
    'dispatch; the stored row is the commit point, so the event is delivered',
    'even when Redis is down at the time.',
    '',
    'Prints {"id", "event_class", "time_created", "created"}, where "created" is',
    'false when an event with the same --id was already stored.',
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
  async request(input, context) {
    const data = await readJsonInput({
      file: stringOption(input, 'file'),
      stdin: context.stdin,
      limitBytes: MAX_DATA_INPUT_BYTES,
      commandPath: 'publish',
    });
    const id = stringOption(input, 'id');
    return {
      body: {
        event_class: input.args['event-class']!,
        data,
        ...(id === undefined ? {} : { id }),
      },
    };
  },
});
