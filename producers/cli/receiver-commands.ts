import { ValidationError } from '../../shared/errors.js';
import { compilePattern } from '../../shared/event-class.js';
import { assertUuid } from '../../shared/ids.js';
import type { UpdateReceiverInput } from '../receivers.js';
import {
  UsageError,
  listOption,
  stringOption,
  type CommandContext,
  type CommandInput,
  type CommandSpec,
  type GroupSpec,
  type OptionSpec,
} from './command-spec.js';
import { readSecretInput } from './input.js';

const MAX_LIST_LIMIT = 1000;
const DEFAULT_LIST_LIMIT = 100;

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

/** Checks each --subscribe value, so that the error names the option and the pattern. */
function checkSubscriptions(patterns: string[]): string[] {
  for (const pattern of patterns) compilePattern(pattern, '--subscribe');
  return patterns;
}

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

function readLimit(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LIST_LIMIT;
  const limit = Number(value);
  if (!/^\d+$/.test(value) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new ValidationError(
      '--limit',
      `must be a whole number from 1 to ${MAX_LIST_LIMIT}, got "${value}"`,
    );
  }
  return limit;
}

const createCommand: CommandSpec = {
  kind: 'command',
  name: 'create',
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
    description: {
      type: 'string',
      valueName: 'TEXT',
      description: 'Free text for operators; empty when absent',
    },
    ...secretOptions,
  },
  examples: [
    'webhooks receivers create --name billing --endpoint https://billing.example.com/hooks \\',
    "    --subscribe 'billing.**' --subscribe github.push.created",
  ],
  async run(input, context) {
    const subscriptions = checkSubscriptions(listOption(input, 'subscribe') ?? []);
    const secret = await readSecretOptions(input, context, 'receivers create');
    const created = await context.resources.receivers().create({
      name: stringOption(input, 'name')!,
      endpoint: stringOption(input, 'endpoint')!,
      subscriptions,
      description: stringOption(input, 'description'),
      secret,
    });
    return { ...created.receiver, secret: created.secret };
  },
};

const listCommand: CommandSpec = {
  kind: 'command',
  name: 'list',
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
      description: `Maximum number of receivers to print, from 1 to ${MAX_LIST_LIMIT} (default ${DEFAULT_LIST_LIMIT})`,
    },
    after: {
      type: 'string',
      valueName: 'ID',
      description: 'Print only receivers whose id sorts after ID, the "next_after" of the previous page',
    },
  },
  async run(input, context) {
    const limit = readLimit(stringOption(input, 'limit'));
    const afterOption = stringOption(input, 'after');
    const after = afterOption === undefined ? undefined : assertUuid(afterOption, '--after');
    const page = await context.resources.receivers().list({ limit, after });
    return { receivers: page.receivers, next_after: page.nextAfter };
  },
};

const getCommand: CommandSpec = {
  kind: 'command',
  name: 'get',
  summary: 'Print one receiver with its subscriptions and secret ids',
  arguments: [RECEIVER_ARGUMENT],
  options: {},
  async run(input, context) {
    return context.resources.receivers().get(input.args.receiver!);
  },
};

const updateCommand: CommandSpec = {
  kind: 'command',
  name: 'update',
  summary: 'Change a receiver\'s name, description, endpoint or subscriptions',
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
  },
  examples: ["webhooks receivers update billing --subscribe 'billing.**' --subscribe 'refunds.*'"],
  async run(input, context) {
    const subscriptions = listOption(input, 'subscribe');
    const changes: UpdateReceiverInput = {
      name: stringOption(input, 'name'),
      description: stringOption(input, 'description'),
      endpoint: stringOption(input, 'endpoint'),
      subscriptions: subscriptions === undefined ? undefined : checkSubscriptions(subscriptions),
    };
    if (Object.values(changes).every((value) => value === undefined)) {
      throw new UsageError(
        'nothing to update; pass at least one of --name, --endpoint, --description or --subscribe',
        'receivers update',
      );
    }
    return context.resources.receivers().update(input.args.receiver!, changes);
  },
};

const deleteCommand: CommandSpec = {
  kind: 'command',
  name: 'delete',
  summary: 'Delete a receiver, keeping its delivery history',
  description: [
    'Deletes a receiver: it gets no new deliveries, its pending deliveries end',
    'without another request, and its delivery history stays readable.',
    'Prints {"id", "name", "deleted": true}.',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: {},
  async run(input, context) {
    const receivers = context.resources.receivers();
    const receiver = await receivers.get(input.args.receiver!);
    // Deleting by id makes sure that the receiver printed is the one deleted.
    await receivers.delete(receiver.id);
    return { id: receiver.id, name: receiver.name, deleted: true };
  },
};

const secretsAddCommand: CommandSpec = {
  kind: 'command',
  name: 'add',
  summary: 'Add a signing secret and print it once',
  description: [
    'Adds a secret to the receiver. Every live secret signs every request, so',
    'to rotate: add the new secret, deploy it on the receiver, then delete the',
    'old one. Prints {"id", "secret", "time_created"}; the secret value is',
    'shown this once only.',
  ].join('\n'),
  arguments: [RECEIVER_ARGUMENT],
  options: { ...secretOptions },
  async run(input, context) {
    const secret = await readSecretOptions(input, context, 'receivers secrets add');
    return context.resources.receivers().addSecret(input.args.receiver!, secret);
  },
};

const secretsListCommand: CommandSpec = {
  kind: 'command',
  name: 'list',
  summary: 'List the ids and creation times of a receiver\'s live secrets',
  description: 'Prints {"secrets": [{"id", "time_created"}, ...]}; secret values are never printed.',
  arguments: [RECEIVER_ARGUMENT],
  options: {},
  async run(input, context) {
    const receiver = await context.resources.receivers().get(input.args.receiver!);
    return { secrets: receiver.secrets };
  },
};

const secretsDeleteCommand: CommandSpec = {
  kind: 'command',
  name: 'delete',
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
  async run(input, context) {
    const secretId = assertUuid(input.args['secret-id'], 'secret-id');
    await context.resources.receivers().deleteSecret(input.args.receiver!, secretId);
    return { id: secretId, deleted: true };
  },
};

const secretsGroup: GroupSpec = {
  kind: 'group',
  name: 'secrets',
  summary: 'Add, list and delete a receiver\'s signing secrets',
  children: [secretsAddCommand, secretsListCommand, secretsDeleteCommand],
};

export const receiversGroup: GroupSpec = {
  kind: 'group',
  name: 'receivers',
  summary: 'Create, list, get, update and delete receivers and their secrets',
  children: [
    createCommand,
    listCommand,
    getCommand,
    updateCommand,
    deleteCommand,
    secretsGroup,
  ],
};
