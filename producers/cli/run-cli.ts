import type { Writable } from 'node:stream';
import { ApiError, createClient, type Client } from '../api/contract/client.js';
import { ValidationError } from '../../shared/errors.js';
import {
  GLOBAL_OPTIONS,
  UsageError,
  parseCommandArgs,
  wantsHelp,
  type AnyCommandSpec,
  type CommandInput,
  type GroupSpec,
  type OperationId,
} from './command-spec.js';
import {
  DEFAULT_API_URL,
  DEFAULT_TIMEOUT_MS,
  SettingsError,
  describeRequestFailure,
  resolveApiSettings,
  type ApiSettings,
} from './connection.js';
import { deliveriesGroup, resendsGroup } from './delivery-commands.js';
import { eventsGroup } from './event-commands.js';
import { filtersGroup } from './filter-commands.js';
import { formatCommandHelp, formatGroupHelp, table } from './help.js';
import type { Stdin } from './input.js';
import { openApiCommand } from './openapi-command.js';
import { publishCommand } from './publish-command.js';
import { receiversGroup } from './receiver-commands.js';

/**
 * Exit status of invalid usage, input or configuration, and of API responses
 * 400, 401, 413, 415 and 422; nothing was written.
 */
export const EXIT_USAGE = 2;
/**
 * Exit status when something is not found (404), conflicts (409), the API
 * fails (5xx) or cannot be reached.
 */
export const EXIT_FAILURE = 1;

function environmentHelp(): string {
  const rows: [string, string][] = [
    ['WEBHOOKS_API_URL', `Base URL of the API (default ${DEFAULT_API_URL}, where the API listens by default)`],
    ['API_TOKEN', 'Bearer token, needed when the API has API_TOKEN set (default none)'],
    [
      'WEBHOOKS_TIMEOUT_MS',
      `Limit of each request in ms; keep it above the API's PROBE_TIMEOUT_MS (default ${DEFAULT_TIMEOUT_MS})`,
    ],
  ];
  return [
    'Environment:',
    table(rows),
    '',
    'Every command calls one route of the HTTP API and prints its JSON response',
    'on stdout. When the API responds with an error, stderr gets its error object',
    '{"error": {"code", "message", "request_id"}} as one line of JSON; the',
    'CLI\'s own errors (usage, unreadable input, unreachable API) are lines',
    'starting with "error:". Exit status: 0 on success, 2 for invalid usage,',
    'input or configuration and for API responses 400, 401, 413, 415 and 422',
    '(nothing is written), 1 when something is not found (404), on a conflict',
    '(409), when the API fails or cannot be reached.',
  ].join('\n');
}

/** The root of the command tree, exported for the tests that walk every command. */
export const rootGroup: GroupSpec = {
  kind: 'group',
  name: 'webhooks',
  summary: 'Publish webhook events and manage receivers',
  description: [
    'Publishes webhook events and manages receivers for shell scripts and cron',
    'jobs. Every command is one request to the HTTP API, sent with the typed',
    'client of the API contract, so the API must run and be reachable.',
  ].join('\n'),
  get epilog() {
    return environmentHelp();
  },
  children: [
    publishCommand,
    receiversGroup,
    eventsGroup,
    deliveriesGroup,
    resendsGroup,
    filtersGroup,
    openApiCommand,
  ],
};

type GlobalOptionValues = Record<string, string>;

type Resolved =
  | { kind: 'help'; text: string }
  | {
      kind: 'command';
      spec: AnyCommandSpec;
      path: string;
      input: CommandInput;
      /** Global options given before the command name. */
      globals: GlobalOptionValues;
    };

/**
 * Reads a global option such as `--api-url URL` or `--token=TOKEN` at
 * `argv[index]`. Returns undefined when the token is not a global option.
 */
function readGlobalOption(
  argv: readonly string[],
  index: number,
  helpPath: string,
): { name: string; value: string; next: number } | undefined {
  const token = argv[index]!;
  for (const name of Object.keys(GLOBAL_OPTIONS)) {
    if (token.startsWith(`--${name}=`)) {
      return { name, value: token.slice(name.length + 3), next: index + 1 };
    }
    if (token !== `--${name}`) continue;
    const value = argv[index + 1];
    if (value === undefined || value.startsWith('--')) {
      throw new UsageError(`option --${name} requires a value`, helpPath);
    }
    return { name, value, next: index + 2 };
  }
  return undefined;
}

/** Walks the command tree along `argv` to a command or a help request. */
function resolveCommand(argv: readonly string[]): Resolved {
  let group = rootGroup;
  const path: string[] = [];
  const globals: GlobalOptionValues = {};
  let index = 0;
  for (;;) {
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
    const globalOption = readGlobalOption(argv, index, groupPath);
    if (globalOption !== undefined) {
      if (globals[globalOption.name] !== undefined) {
        throw new UsageError(`option --${globalOption.name} was given more than once`, groupPath);
      }
      globals[globalOption.name] = globalOption.value;
      index = globalOption.next;
      continue;
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
    index += 1;
    if (child.kind === 'group') {
      group = child;
      continue;
    }
    const commandPath = path.join(' ');
    const rest = argv.slice(index);
    if (wantsHelp(rest)) {
      return { kind: 'help', text: formatCommandHelp(child, commandPath) };
    }
    const input = parseCommandArgs(child, commandPath, rest);
    for (const name of Object.keys(GLOBAL_OPTIONS)) {
      if (globals[name] !== undefined && input.options[name] !== undefined) {
        throw new UsageError(`option --${name} was given more than once`, commandPath);
      }
    }
    return { kind: 'command', spec: child, path: commandPath, input, globals };
  }
}

function usageMessage(error: UsageError): string {
  const prefix = error.helpPath === '' ? 'webhooks' : `webhooks ${error.helpPath}`;
  return `error: ${error.message}\nRun "${prefix} --help" for usage.\n`;
}

/**
 * Calls the typed client method named `operationId`. The command spec's
 * types tie `request` to that method's input; the runtime check covers a
 * spec built around the types.
 */
async function callOperation(client: Client, operationId: OperationId, request: unknown): Promise<unknown> {
  const method: unknown = (client as unknown as Record<string, unknown>)[operationId];
  if (typeof method !== 'function') {
    throw new Error(`the typed client has no method "${operationId}"`);
  }
  return (method as (input: unknown) => Promise<unknown>)(request);
}

/**
 * Returns the exit status of an API error: input and authentication
 * problems exit like invalid usage, everything else as a failure.
 */
function exitStatusOf(error: ApiError): number {
  const rejectsInput = error.status >= 400 && error.status < 500 && error.status !== 404 && error.status !== 409;
  return rejectsInput ? EXIT_USAGE : EXIT_FAILURE;
}

export interface CliStreams {
  stdin: Stdin;
  stdout: Writable;
  stderr: Writable;
  env: Record<string, string | undefined>;
}

function globalOption(resolved: { input: CommandInput; globals: GlobalOptionValues }, name: string) {
  const value = resolved.input.options[name];
  return typeof value === 'string' ? value : resolved.globals[name];
}

/**
 * Runs one CLI invocation and returns its exit status. Output goes to
 * `streams.stdout` as JSON. An error response of the API goes to
 * `streams.stderr` as its JSON error object, any other error as `error: ...`.
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

  let settings: ApiSettings;
  try {
    settings = resolveApiSettings(
      { apiUrl: globalOption(resolved, 'api-url'), token: globalOption(resolved, 'token') },
      streams.env,
    );
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    streams.stderr.write(`error: invalid configuration: ${error.message}\n`);
    return EXIT_USAGE;
  }

  const { spec, input } = resolved;
  let request: unknown;
  try {
    request = await spec.request(input, { stdin: streams.stdin });
  } catch (error) {
    if (error instanceof UsageError) {
      streams.stderr.write(usageMessage(error));
      return EXIT_USAGE;
    }
    streams.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof ValidationError ? EXIT_USAGE : EXIT_FAILURE;
  }

  const client = createClient({
    baseUrl: settings.apiUrl,
    token: settings.token,
    timeoutMs: settings.timeoutMs,
  });
  let response: unknown;
  try {
    response = await callOperation(client, spec.operationId, request);
  } catch (error) {
    if (error instanceof ApiError) {
      const body = { error: { code: error.code, message: error.message, request_id: error.requestId } };
      streams.stderr.write(`${JSON.stringify(body)}\n`);
      return exitStatusOf(error);
    }
    if (error instanceof TypeError) {
      // The client checks path parameters before it sends anything and
      // raises a TypeError; it wraps every failed request in a plain Error.
      streams.stderr.write(`error: ${error.message}\n`);
      return EXIT_USAGE;
    }
    streams.stderr.write(`error: ${describeRequestFailure(error, settings)}\n`);
    return EXIT_FAILURE;
  }
  const output = spec.output === undefined ? response : spec.output(response, input);
  streams.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
  return 0;
}
