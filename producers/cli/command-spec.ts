import { parseArgs } from 'node:util';
import type { Readable } from 'node:stream';
import type { RouteInput, RouteOutput } from '../api/contract/client.js';
import type { ApiRoute } from '../api/contract/index.js';

/** A command-line mistake: unknown command or option, missing argument. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** Command path whose help the message points to, such as `receivers create`. */
    readonly helpPath: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Whether the option may be repeated, collecting every value in order. */
  multiple?: boolean;
  required?: boolean;
  /** Placeholder shown in help, such as `URL`. */
  valueName?: string;
  description: string;
}

export interface ArgumentSpec {
  name: string;
  description: string;
}

export type OptionValues = Record<string, string | string[] | boolean | undefined>;

/** Arguments of one command after parsing and checking against its spec. */
export interface CommandInput {
  /** Positional arguments by their spec name. */
  args: Record<string, string>;
  options: OptionValues;
}

/** The operationId of an API route, which is also the name of its typed client method. */
export type OperationId = ApiRoute['operationId'];

type RouteOf<Id extends OperationId> = Extract<ApiRoute, { operationId: Id }>;

/** The typed client's input of the route `Id`: its params, query, headers and body. */
export type RequestOf<Id extends OperationId> = RouteInput<RouteOf<Id>>;

/** The response body of the route `Id`; void for 204. */
export type ResponseOf<Id extends OperationId> = RouteOutput<RouteOf<Id>>;

export interface CommandContext {
  stdin: Readable & { isTTY?: boolean };
}

interface CommandDocumentation {
  kind: 'command';
  name: string;
  summary: string;
  /** Paragraphs printed under the usage line of the command's help. */
  description?: string;
  arguments: ArgumentSpec[];
  options: Record<string, OptionSpec>;
  examples?: string[];
}

/**
 * A command that calls one API route. The runner calls the typed client
 * method named `operationId` with the input that `request` builds and prints
 * the result, so a command has no other way to reach the API or a store.
 */
export interface CommandSpec<Id extends OperationId = OperationId> extends CommandDocumentation {
  operationId: Id;
  /** Builds the client input from the arguments; it may read stdin or files but sends nothing. */
  request(input: CommandInput, context: CommandContext): Promise<RequestOf<Id>>;
  /** Turns the response body into the value printed as JSON; without it the body is printed. */
  output?(response: ResponseOf<Id>, input: CommandInput): unknown;
}

/** A command of any route, as the command tree stores it. */
export interface AnyCommandSpec extends CommandDocumentation {
  operationId: OperationId;
  request(input: CommandInput, context: CommandContext): Promise<unknown>;
  output?(response: unknown, input: CommandInput): unknown;
}

/**
 * Declares a command. The type of `request` and `output` follows from
 * `operationId`, so a request that does not fit the route's contract, or an
 * operationId that is no client method, fails the type check.
 */
export function defineCommand<const Id extends OperationId>(spec: CommandSpec<Id>): AnyCommandSpec {
  return spec;
}

export interface GroupSpec {
  kind: 'group';
  name: string;
  summary: string;
  description?: string;
  /** Text printed after the list of subcommands. */
  epilog?: string;
  children: (AnyCommandSpec | GroupSpec)[];
}

export const HELP_OPTION: OptionSpec = {
  type: 'boolean',
  short: 'h',
  description: 'Print this help and exit',
};

/**
 * Options that every command takes, before or after its name: where the API
 * is and how to authenticate. They override the environment variables.
 */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  'api-url': {
    type: 'string',
    valueName: 'URL',
    description: 'Base URL of the API, such as http://127.0.0.1:3000; overrides WEBHOOKS_API_URL',
  },
  token: {
    type: 'string',
    valueName: 'TOKEN',
    description:
      'Bearer token that the API requires when its API_TOKEN is set; overrides API_TOKEN. Other ' +
      'local users can read it in the process list, so prefer the API_TOKEN variable',
  },
};

/** Tells whether `args` asks for help before any `--` terminator. */
export function wantsHelp(args: readonly string[]): boolean {
  for (const arg of args) {
    if (arg === '--') return false;
    if (arg === '--help' || arg === '-h') return true;
  }
  return false;
}

/**
 * Parses the arguments after a command's name. Unknown options, repeated
 * single-value options, missing values and missing or extra positional
 * arguments raise a UsageError that names them.
 */
export function parseCommandArgs(
  spec: AnyCommandSpec,
  commandPath: string,
  args: readonly string[],
): CommandInput {
  const options = { ...spec.options, ...GLOBAL_OPTIONS };
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, option] of Object.entries(options)) {
    // parseArgs rejects keys whose value is undefined.
    parseOptions[name] = {
      type: option.type,
      ...(option.short === undefined ? {} : { short: option.short }),
      ...(option.multiple === undefined ? {} : { multiple: option.multiple }),
    };
  }
  // Non-strict parsing keeps going past unknown options, so that the checks
  // below can name each problem in this CLI's own words.
  const parsed = parseArgs({
    args: [...args],
    options: parseOptions,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });

  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    const option = options[token.name];
    if (option === undefined) {
      throw new UsageError(`unknown option "${token.rawName}" for "webhooks ${commandPath}"`, commandPath);
    }
    if (option.type === 'string' && token.value === undefined) {
      throw new UsageError(`option --${token.name} requires a value`, commandPath);
    }
    if (option.type === 'string' && !token.inlineValue && token.value?.startsWith('--')) {
      // Most likely the value was left out and the next option taken in
      // its place, as in `--name --endpoint URL`.
      throw new UsageError(
        `option --${token.name} requires a value, got "${token.value}"; write --${token.name}=${token.value} if that is the value`,
        commandPath,
      );
    }
    if (option.type === 'boolean' && token.value !== undefined) {
      throw new UsageError(`option --${token.name} does not take a value`, commandPath);
    }
    if (!option.multiple && seen.has(token.name)) {
      throw new UsageError(`option --${token.name} was given more than once`, commandPath);
    }
    seen.add(token.name);
  }
  for (const [name, option] of Object.entries(options)) {
    if (option.required && !seen.has(name)) {
      throw new UsageError(`missing required option --${name}`, commandPath);
    }
  }

  const positionals = parsed.positionals;
  const expected = spec.arguments;
  if (positionals.length < expected.length) {
    const missing = expected[positionals.length]!;
    throw new UsageError(`missing argument <${missing.name}>`, commandPath);
  }
  if (positionals.length > expected.length) {
    throw new UsageError(
      `unexpected argument "${positionals[expected.length]}" for "webhooks ${commandPath}"`,
      commandPath,
    );
  }
  const namedArgs: Record<string, string> = {};
  expected.forEach((argument, index) => {
    const value = positionals[index]!;
    if (value === '') throw new UsageError(`argument <${argument.name}> is empty`, commandPath);
    namedArgs[argument.name] = value;
  });
  return { args: namedArgs, options: parsed.values as OptionValues };
}

/** Returns a string option's value, or undefined when it was not given. */
export function stringOption(input: CommandInput, name: string): string | undefined {
  const value = input.options[name];
  return typeof value === 'string' ? value : undefined;
}

/** Returns every value of a repeatable option, or undefined when it was not given. */
export function listOption(input: CommandInput, name: string): string[] | undefined {
  const value = input.options[name];
  return Array.isArray(value) ? value : undefined;
}
