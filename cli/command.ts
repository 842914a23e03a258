/** A command of the CLI as data: its options (with help text), positionals and what it runs. */
import { parseArgs } from 'node:util';
import { type Context, UsageError } from './context.ts';

/** One option: what `parseArgs` needs, and a line of help. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's placeholder in help, e.g. `URL`. */
  value?: string;
  description: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

export type OptionValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** A runnable command such as `clients create`. */
export interface Command {
  /** The words that name it, e.g. `['clients', 'create']`. */
  name: string[];
  summary: string;
  /** Positionals, e.g. `['CLIENT_ID']`, all required. */
  positionals?: string[];
  options: OptionSpecs;
  /** More help printed after the options. */
  notes?: string;
  run(values: OptionValues, positionals: string[], ctx: Context): Promise<number | undefined>;
}

/** The help of one command. */
export function commandHelp(command: Command): string {
  const positionals = (command.positionals ?? []).map((name) => ` ${name}`).join('');
  const lines = [`keysmith ${command.name.join(' ')}${positionals} [options]`, '', command.summary, '', 'Options:'];
  const help: OptionSpec = { type: 'boolean', short: 'h', description: 'this help' };
  const entries = Object.entries({ ...command.options, help });
  const labels = entries.map(([name, spec]) => {
    const short = spec.short ? `-${spec.short}, ` : '';
    return `${short}--${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`;
  });
  const width = Math.max(...labels.map((label) => label.length));
  entries.forEach(([, spec], i) => {
    lines.push(`  ${(labels[i] ?? '').padEnd(width)}  ${spec.description}${spec.multiple ? ' (repeatable)' : ''}`);
  });
  if (command.notes) lines.push('', command.notes);
  return lines.join('\n');
}

/** Parses a command's arguments; a mistake is a {@link UsageError}. */
export function parseCommand(command: Command, args: string[]): { values: OptionValues; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [name, spec] of Object.entries(command.options))
    options[name] = {
      type: spec.type,
      ...(spec.multiple ? { multiple: true } : {}),
      ...(spec.short ? { short: spec.short } : {}),
    };
  let parsed: { values: OptionValues; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split('\n')[0]}; see keysmith ${command.name.join(' ')} --help`);
  }
  const expected = command.positionals ?? [];
  if (parsed.positionals.length < expected.length)
    throw new UsageError(
      `missing ${expected.slice(parsed.positionals.length).join(' ')}; usage: keysmith ${command.name.join(' ')} ${expected.join(' ')} [options]`,
    );
  if (parsed.positionals.length > expected.length)
    throw new UsageError(`too many arguments; usage: keysmith ${command.name.join(' ')} ${expected.join(' ')} [options]`);
  return parsed;
}

/** A string option's value, or undefined. */
export const stringOption = (values: OptionValues, name: string): string | undefined => {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
};

/** A repeatable string option's values. */
export const stringsOption = (values: OptionValues, name: string): string[] => {
  const value = values[name];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
};

/** A positive whole number option, or undefined. */
export function integerOption(values: OptionValues, name: string): number | undefined {
  const value = stringOption(values, name);
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(value)) throw new UsageError(`--${name} is a positive whole number`);
  return Number(value);
}
