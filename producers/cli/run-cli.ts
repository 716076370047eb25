import type { Writable } from 'node:stream';
import { ConfigError, loadConfig } from '../../shared/config.js';
import { Prisma } from '../../shared/db/client.js';
import { ValidationError, WebhookError } from '../../shared/errors.js';
import {
  UsageError,
  parseCommandArgs,
  wantsHelp,
  type CommandInput,
  type CommandSpec,
  type GroupSpec,
} from './command-spec.js';
import { eventsGroup } from './event-commands.js';
import { formatCommandHelp, formatGroupHelp, table } from './help.js';
import type { Stdin } from './input.js';
import { publishCommand } from './publish-command.js';
import { receiversGroup } from './receiver-commands.js';
import { CliResources, createCliLogger } from './resources.js';

/** Exit status of invalid usage, input or configuration; nothing was written. */
export const EXIT_USAGE = 2;
/** Exit status of a missing receiver or event, a conflict or any other failure. */
export const EXIT_FAILURE = 1;

function environmentHelp(): string {
  const defaults = loadConfig({});
  const rows: [string, string][] = [
    ['DATABASE_URL', `PostgreSQL URL (default ${defaults.databaseUrl})`],
    ['REDIS_URL', `Redis URL, used by "publish" only (default ${defaults.redisUrl})`],
    [
      'REDIS_CLUSTER_NODES',
      'Comma-separated host:port of Redis Cluster nodes; when set, "publish" uses the cluster instead of REDIS_URL (default none)',
    ],
    ['QUEUE_PREFIX', `Prefix of the BullMQ keys in Redis (default ${defaults.queuePrefix})`],
    [
      'ALLOWED_PRIVATE_NETWORKS',
      'Comma-separated CIDRs that endpoints may point into although they are private or loopback (default none)',
    ],
    ['MAX_PAYLOAD_BYTES', `Maximum size in bytes of event data as compact JSON (default ${defaults.maxPayloadBytes})`],
    ['LOG_LEVEL', `Level of the JSON log lines written to stderr (default ${defaults.logLevel})`],
  ];
  return [
    'Environment:',
    table(rows),
    '',
    'Every command prints JSON on stdout. Exit status: 0 on success, 2 for',
    'invalid usage, input or configuration (nothing is written), 1 when a',
    'receiver or event is not found, on a conflict, or on any other failure.',
  ].join('\n');
}

const rootGroup: GroupSpec = {
  kind: 'group',
  name: 'webhooks',
  summary: 'Publish webhook events and manage receivers',
  description: [
    'Publishes webhook events and manages receivers for shell scripts and cron',
    'jobs. It connects to PostgreSQL and Redis directly, with the same',
    'settings as the API and the workers.',
  ].join('\n'),
  get epilog() {
    return environmentHelp();
  },
  children: [publishCommand, receiversGroup, eventsGroup],
};

type Resolved =
  | { kind: 'help'; text: string }
  | { kind: 'command'; spec: CommandSpec; path: string; input: CommandInput };

/** Walks the command tree along `argv` to a command or a help request. */
function resolveCommand(argv: readonly string[]): Resolved {
  let group = rootGroup;
  const path: string[] = [];
  for (let index = 0; ; index += 1) {
    const groupPath = path.join(' ');
    const prefix = path.length === 0 ? 'webhooks' : `webhooks ${groupPath}`;
    const names = group.children.map((child) => child.name).join(', ');
    const token = argv[index];
    if (token === undefined) {
      throw new UsageError(`missing command after "${prefix}"; expected one of: ${names}`, groupPath);
    }
    if (token === '--help' || token === '-h') {
      return { kind: 'help', text: formatGroupHelp(group, groupPath) };
    }
    if (token.startsWith('-')) {
      throw new UsageError(
        `unknown option "${token}" for "${prefix}"; expected a command, one of: ${names}`,
        groupPath,
      );
    }
    const child = group.children.find((candidate) => candidate.name === token);
    if (child === undefined) {
      throw new UsageError(
        `unknown command "${token}" for "${prefix}"; expected one of: ${names}`,
        groupPath,
      );
    }
    path.push(token);
    if (child.kind === 'group') {
      group = child;
      continue;
    }
    const commandPath = path.join(' ');
    const rest = argv.slice(index + 1);
    if (wantsHelp(rest)) {
      return { kind: 'help', text: formatCommandHelp(child, commandPath) };
    }
    return {
      kind: 'command',
      spec: child,
      path: commandPath,
      input: parseCommandArgs(child, commandPath, rest),
    };
  }
}

function usageMessage(error: UsageError): string {
  const prefix = error.helpPath === '' ? 'webhooks' : `webhooks ${error.helpPath}`;
  return `error: ${error.message}\nRun "${prefix} --help" for usage.\n`;
}

/**
 * Error codes of the Prisma client for a server that cannot be reached or
 * logged into, or a database that does not exist.
 */
const DATABASE_CONNECTION_CODES = new Set(['P1000', 'P1001', 'P1002', 'P1003', 'P1010', 'P1017']);

function isPrismaError(error: unknown): error is Error & { code?: string } {
  return (
    error instanceof Prisma.PrismaClientKnownRequestError ||
    error instanceof Prisma.PrismaClientUnknownRequestError ||
    error instanceof Prisma.PrismaClientInitializationError ||
    error instanceof Prisma.PrismaClientRustPanicError ||
    error instanceof Prisma.PrismaClientValidationError
  );
}

/**
 * Returns the reason of a Prisma error, which is the last line of its
 * message. The lines before it show the calling source code, which the
 * client's default error format adds.
 */
function prismaReason(error: Error): string {
  const lines = error.message
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  return lines[lines.length - 1] ?? error.name;
}

function describeFailure(error: unknown, databaseUrl: string): string {
  if (error instanceof WebhookError) return error.message;
  if (isPrismaError(error)) {
    const target = new URL(databaseUrl);
    const where = `PostgreSQL at ${target.host}${target.pathname}`;
    if (
      error instanceof Prisma.PrismaClientInitializationError ||
      DATABASE_CONNECTION_CODES.has(error.code ?? '')
    ) {
      return `${where}: ${prismaReason(error)}; check that the server is running and that DATABASE_URL is right`;
    }
    return `${where}: ${prismaReason(error)}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Tells whether `error` rejects the input itself (a ValidationError, data
 * over MAX_PAYLOAD_BYTES) rather than reporting stored state: not found
 * (404) and conflict (409) exit with EXIT_FAILURE.
 */
function isInvalidInput(error: unknown): boolean {
  if (error instanceof ValidationError) return true;
  return (
    error instanceof WebhookError &&
    error.statusCode >= 400 &&
    error.statusCode < 500 &&
    error.statusCode !== 404 &&
    error.statusCode !== 409
  );
}

export interface CliStreams {
  stdin: Stdin;
  stdout: Writable;
  stderr: Writable;
  env: Record<string, string | undefined>;
}

/**
 * Runs one CLI invocation and returns its exit status. Output goes to
 * `streams.stdout` as JSON, errors to `streams.stderr` as `error: ...`.
 * Every connection opened is closed before it returns.
 */
export async function runCli(argv: readonly string[], streams: CliStreams): Promise<number> {
  let resolved: Resolved;
  try {
    // `npx webhooks -- --help` passes the "--" on, as `npm run` users type
    // it; before the command name it can only mean "no more npx options".
    resolved = resolveCommand(argv[0] === '--' ? argv.slice(1) : argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    streams.stderr.write(usageMessage(error));
    return EXIT_USAGE;
  }
  if (resolved.kind === 'help') {
    streams.stdout.write(resolved.text);
    return 0;
  }

  let config;
  try {
    config = loadConfig(streams.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    streams.stderr.write(`error: invalid configuration: ${error.message}\n`);
    return EXIT_USAGE;
  }
  const resources = new CliResources(config, createCliLogger(config.logLevel));
  try {
    const output = await resolved.spec.run(resolved.input, {
      config,
      resources,
      stdin: streams.stdin,
    });
    streams.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      streams.stderr.write(usageMessage(error));
      return EXIT_USAGE;
    }
    streams.stderr.write(`error: ${describeFailure(error, config.databaseUrl)}\n`);
    return isInvalidInput(error) ? EXIT_USAGE : EXIT_FAILURE;
  } finally {
    await resources.close();
  }
}
