import { apiRoutes } from '../api/contract/index.js';
import {
  GLOBAL_OPTIONS,
  HELP_OPTION,
  type AnyCommandSpec,
  type GroupSpec,
  type OptionSpec,
} from './command-spec.js';

const WIDTH = 80;

/** Wraps `text` to WIDTH columns, indenting every line after the first by `indent`. */
function wrap(text: string, indent: number, firstLineUsed: number): string {
  const lines: string[] = [];
  let line = '';
  let available = WIDTH - firstLineUsed;
  for (const word of text.split(/\s+/).filter((part) => part !== '')) {
    if (line !== '' && line.length + 1 + word.length > available) {
      lines.push(line);
      line = word;
      available = WIDTH - indent;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** Formats two-column rows such as `  --name NAME   Receiver name`. */
export function table(rows: [string, string][]): string {
  const column = Math.min(Math.max(...rows.map(([left]) => left.length)) + 4, 32);
  return rows
    .map(([left, right]) => {
      const head = `  ${left}`;
      if (head.length + 2 > column) {
        return `${head}\n${' '.repeat(column)}${wrap(right, column, column)}`;
      }
      return `${head.padEnd(column)}${wrap(right, column, column)}`;
    })
    .join('\n');
}

function optionLabel(name: string, option: OptionSpec): string {
  const flag = option.short ? `-${option.short}, --${name}` : `--${name}`;
  return option.type === 'string' ? `${flag} ${option.valueName ?? 'VALUE'}` : flag;
}

function optionText(option: OptionSpec): string {
  const notes: string[] = [];
  if (option.required) notes.push('required');
  if (option.multiple) notes.push('repeatable');
  return notes.length === 0 ? option.description : `${option.description} (${notes.join(', ')})`;
}

function usageLine(spec: AnyCommandSpec, path: string): string {
  const parts = [`webhooks ${path}`];
  for (const argument of spec.arguments) parts.push(`<${argument.name}>`);
  for (const [name, option] of Object.entries(spec.options)) {
    if (!option.required) continue;
    const value = option.valueName ?? 'VALUE';
    parts.push(option.multiple ? `--${name} ${value}...` : `--${name} ${value}`);
  }
  parts.push('[options]');
  return `Usage: ${parts.join(' ')}`;
}

function globalOptionsSection(): string {
  const rows: [string, string][] = Object.entries(GLOBAL_OPTIONS).map(([name, option]) => [
    optionLabel(name, option),
    optionText(option),
  ]);
  return `Global options:\n${table(rows)}`;
}

/** Returns the line that names the API route a command calls, such as `Calls: GET /v1/events/:id (getEvent)`. */
function routeLine(spec: AnyCommandSpec): string {
  const route = apiRoutes.find((candidate) => candidate.operationId === spec.operationId);
  if (route === undefined) return `Calls: ${spec.operationId}`;
  return `Calls: ${route.method} ${route.path} (${route.operationId})`;
}

/** Formats the help text of one command: usage, the route it calls, arguments, options, examples. */
export function formatCommandHelp(spec: AnyCommandSpec, path: string): string {
  const sections = [usageLine(spec, path), spec.description ?? spec.summary, routeLine(spec)];
  if (spec.arguments.length > 0) {
    sections.push(
      `Arguments:\n${table(spec.arguments.map((argument) => [`<${argument.name}>`, argument.description]))}`,
    );
  }
  const options: [string, string][] = Object.entries(spec.options).map(([name, option]) => [
    optionLabel(name, option),
    optionText(option),
  ]);
  options.push([optionLabel('help', HELP_OPTION), HELP_OPTION.description]);
  sections.push(`Options:\n${table(options)}`);
  sections.push(globalOptionsSection());
  if (spec.examples && spec.examples.length > 0) {
    sections.push(`Examples:\n${spec.examples.map((example) => `  ${example}`).join('\n')}`);
  }
  return `${sections.join('\n\n')}\n`;
}

/** Formats the help text of a command group: usage and its subcommands. */
export function formatGroupHelp(group: GroupSpec, path: string): string {
  const prefix = path === '' ? 'webhooks' : `webhooks ${path}`;
  const sections = [`Usage: ${prefix} <command> [options]`, group.description ?? group.summary];
  sections.push(
    `Commands:\n${table(group.children.map((child) => [child.name, child.summary]))}`,
  );
  sections.push(`Options:\n${table([[optionLabel('help', HELP_OPTION), HELP_OPTION.description]])}`);
  if (path === '') sections.push(globalOptionsSection());
  if (group.epilog) sections.push(group.epilog);
  sections.push(`Run "${prefix} <command> --help" for the options of a command.`);
  return `${sections.join('\n\n')}\n`;
}
