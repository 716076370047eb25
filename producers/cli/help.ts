import {
  HELP_OPTION,
  type CommandSpec,
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

function usageLine(spec: CommandSpec, path: string): string {
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

/** Formats the help text of one command: usage, arguments, options, examples. */
export function formatCommandHelp(spec: CommandSpec, path: string): string {
  const sections = [usageLine(spec, path), spec.description ?? spec.summary];
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
  if (group.epilog) sections.push(group.epilog);
  sections.push(`Run "${prefix} <command> --help" for the options of a command.`);
  return `${sections.join('\n\n')}\n`;
}
