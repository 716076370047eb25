import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '../api/contract/fields.js';
import {
  UsageError,
  defineCommand,
  listOption,
  stringOption,
  type CommandContext,
  type CommandInput,
  type GroupSpec,
  type OptionSpec,
  type RequestOf,
} from './command-spec.js';
import { DELIVERY_OPTIONS, deliveryOptionValues } from './delivery-option-commands.js';
import { FILTER_OPTION, subscriptionsWithFilters, updatedSubscriptions } from './filter-commands.js';
import { readSecretInput } from './input.js';
import { probeCommand } from './delivery-commands.js';
import { disableCommand, enableCommand } from './receiver-state-commands.js';

const RECEIVER_ARGUMENT = {
  name: 'receiver',
  description: 'Receiver id (UUID) or name',
};

const SUBSCRIBE_DESCRIPTION =
  'Event class or glob pattern to deliver, such as github.push.created or github.**; ' +
  '"*" matches one segment and "**" one or more';

const secretOptions: Record<string, OptionSpec> = {
  secret: {
    type: 'string',
    valueName: 'SECRET',
    description:
      'Signing secret in Standard Webhooks form, "whsec_" and base64 of 24 to 64 bytes; ' +
      'generated when absent. Other local users can read it in the process list, so ' +
      'prefer --secret-file',
  },
  'secret-file': {
    type: 'string',
    valueName: 'FILE',
    description: 'Read the signing secret from FILE; "-" is stdin',
  },
};

async function readSecretOptions(
  input: CommandInput,
  context: CommandContext,
  commandPath: string,
): Promise<string | undefined> {
  const secret = stringOption(input, 'secret');
  const secretFile = stringOption(input, 'secret-file');
  if (secret !== undefined && secretFile !== undefined) {
    throw new UsageError('pass either --secret or --secret-file, not both', commandPath);
  }
  if (secretFile !== undefined) return readSecretInput(secretFile, context.stdin);
  return secret;
}

const createCommand = defineCommand({
  kind: 'command',
  name: 'create',
  operationId: 'createReceiver',
  summary: 'Create a receiver and print its one-time secret',
  description: [
    'Creates a receiver that gets every event whose class matches one of its',
    'subscriptions. Prints the receiver with a "secret" field: that value is',
    'shown this once only, so store it where the receiver can read it.',
  ].join('\n'),
  arguments: [],
  options: {
    name: {
      type: 'string',
      required: true,
      valueName: 'NAME',
      description:
        'Name unique among live receivers: letters, digits, "_", "." and "-", starting with a letter or digit',
    },
    endpoint: {
      type: 'string',
      required: true,
      valueName: 'URL',
      description: 'http or https URL that receives the POST requests',
    },
    subscribe: {
      type: 'string',
      required: true,
      multiple: true,
      valueName: 'PATTERN',
      description: SUBSCRIBE_DESCRIPTION,
    },
    filter: FILTER_OPTION,
    description: {
      type: 'string',
      valueName: 'TEXT',
      description: 'Free text for operators; empty when absent',
    },
    ...secretOptions,
    ...DELIVERY_OPTIONS,
  },
  examples: [
    'webhooks receivers create --name billing --endpoint https://billing.example.com/hooks \\',
    "    --subscribe 'billing.**' --subscribe github.push.created",
    'webhooks receivers create --name triage --endpoint https://triage.example.com/hooks \\',
    "    --subscribe 'github.issues.*' --filter 'github.issues.*={\"path\": \"action\", \"eq\": \"opened\"}'",
  ],
  async request(input, context) {
    const subscriptions = subscriptionsWithFilters(
      listOption(input, 'subscribe') ?? [],
      listOption(input, 'filter'),
    );
    const secret = await readSecretOptions(input, context, 'receivers create');
    return {
      body: {
        name: stringOption(input, 'name')!,
        endpoint: stringOption(input, 'endpoint')!,
        subscriptions,
        description: stringOption(input, 'description'),
        secret,
        ...deliveryOptionValues(input),
      },
    };
  },
});

const listCommand = defineCommand({
  kind: 'command',
  name: 'list',
  operationId: 'listReceivers',
  summary: 'List live receivers in id order',
  description: [
    'Prints {"receivers": [...], "next_after"}. When "next_after" is not null,',
    'pass it to --after to read the next page.',
  ].join('\n'),
  arguments: [],
  options: {
    limit: {
      type: 'string',
      valueName: 'N',
      description: `Maximum number of receivers to print, from 1 to ${MAX_PAGE_LIMIT} (default ${DEFAULT_PAGE_LIMIT})`,
    },
    after: {
      type: 'string',
      valueName: 'ID',
      description: 'Print only receivers whose id sorts after ID, the "next_after" of the previous page',
    },
  },
  async request(input) {
    return { query: { limit: stringOption(input, 'limit'), after: stringOption(input, 'after') } };
  },
});

const getCommand = defineCommand({
  kind: 'command',
  name: 'get',
  operationId: 'getReceiver',
  summary: 'Print one receiver with its subscriptions and secret ids',
  arguments: [RECEIVER_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.receiver! } };
  },
});

const updateCommand = defineCommand({
  kind: 'command',
  name: 'update',
  operationId: 'updateReceiver',
  summary: 'Change a receiver\'s name, description, endpoint, subscriptions, ordering or limits',
  description: [
    'Changes only the fields whose options are given and prints the receiver.',
    'The --subscribe values replace every current subscription.',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: {
    name: { type: 'string', valueName: 'NAME', description: 'New name' },
    endpoint: { type: 'string', valueName: 'URL', description: 'New http or https endpoint URL' },
    description: { type: 'string', valueName: 'TEXT', description: 'New description' },
    subscribe: {
      type: 'string',
      multiple: true,
      valueName: 'PATTERN',
      description: `${SUBSCRIBE_DESCRIPTION}; the given values replace all current subscriptions`,
    },
    filter: FILTER_OPTION,
    ...DELIVERY_OPTIONS,
  },
  examples: [
    "webhooks receivers update billing --subscribe 'billing.**' --subscribe 'refunds.*'",
    'webhooks receivers update billing --ordered true --rate-limit 20 --max-in-flight none',
  ],
  async request(input) {
    const changes: RequestOf<'updateReceiver'>['body'] = {
      name: stringOption(input, 'name'),
      description: stringOption(input, 'description'),
      endpoint: stringOption(input, 'endpoint'),
      subscriptions: updatedSubscriptions(input, listOption(input, 'subscribe')),
      ...deliveryOptionValues(input),
    };
    if (Object.values(changes).every((value) => value === undefined)) {
      throw new UsageError(
        'nothing to update; pass at least one of --name, --endpoint, --description, --subscribe, ' +
          '--ordered, --rate-limit or --max-in-flight',
        'receivers update',
      );
    }
    return { params: { id: input.args.receiver! }, body: changes };
  },
});

const deleteCommand = defineCommand({
  kind: 'command',
  name: 'delete',
  operationId: 'deleteReceiver',
  summary: 'Delete a receiver, keeping its delivery history',
  description: [
    'Deletes a receiver: it gets no new deliveries, its pending deliveries end',
    'without another request, and its delivery history stays readable.',
    'Prints {"receiver", "deleted": true} with the id or name as given.',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.receiver! } };
  },
  output(_response, input) {
    return { receiver: input.args.receiver, deleted: true };
  },
});

const secretsAddCommand = defineCommand({
  kind: 'command',
  name: 'add',
  operationId: 'addReceiverSecret',
  summary: 'Add a signing secret and print it once',
  description: [
    'Adds a secret to the receiver. Every live secret signs every request, so',
    'to rotate: add the new secret, deploy it on the receiver, then delete the',
    'old one. Prints {"id", "secret", "time_created"}; the secret value is',
    'shown this once only.',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: { ...secretOptions },
  async request(input, context) {
    const secret = await readSecretOptions(input, context, 'receivers secrets add');
    return { params: { id: input.args.receiver! }, body: { secret } };
  },
});

const secretsListCommand = defineCommand({
  kind: 'command',
  name: 'list',
  operationId: 'listReceiverSecrets',
  summary: 'List the ids and creation times of a receiver\'s live secrets',
  description: 'Prints {"secrets": [{"id", "time_created"}, ...]}; secret values are never printed.',
  arguments: [RECEIVER_ARGUMENT],
  options: {},
  async request(input) {
    return { params: { id: input.args.receiver! } };
  },
});

const secretsDeleteCommand = defineCommand({
  kind: 'command',
  name: 'delete',
  operationId: 'deleteReceiverSecret',
  summary: 'Delete a signing secret unless it is the last one',
  description: [
    'Deletes one secret of the receiver. A receiver always keeps at least one',
    'secret, so deleting the last one fails; add a new secret first.',
    'Prints {"id", "deleted": true}.',
  ].join('\n'),
  arguments: [
    RECEIVER_ARGUMENT,
    { name: 'secret-id', description: 'Secret id (UUID) as "secrets list" prints it' },
  ],
  options: {},
  async request(input) {
    return { params: { id: input.args.receiver!, secret_id: input.args['secret-id']! } };
  },
  output(_response, input) {
    return { id: input.args['secret-id'], deleted: true };
  },
});

const secretsGroup: GroupSpec = {
  kind: 'group',
  name: 'secrets',
  summary: 'Add, list and delete a receiver\'s signing secrets',
  children: [secretsAddCommand, secretsListCommand, secretsDeleteCommand],
};

export const receiversGroup: GroupSpec = {
  kind: 'group',
  name: 'receivers',
  summary: 'Create, list, get, update, delete, disable and enable receivers, and manage their secrets',
  children: [
    createCommand,
    listCommand,
    getCommand,
    updateCommand,
    deleteCommand,
    disableCommand,
    enableCommand,
    probeCommand,
    secretsGroup,
  ],
};
