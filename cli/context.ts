/** What every command gets: output, the environment, `.keysmith/local.json`, and the CLI's errors. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** A usage mistake: printed without a stack, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * A failure the user should read: printed without a stack, exit code 1. (The API's answers and an unreachable
 * deployment are the SDK's KeysmithApiError and KeysmithConnectionError, which cli/main.ts prints the same way.)
 */
export class CliError extends Error {
  override name = 'CliError';
}

/** `.keysmith/local.json`, written by `npm start` (contract §8). Every member may be missing. */
export interface LocalState {
  baseUrl?: string;
  issuerBase?: string;
  audiences?: string[];
  dynamodbEndpoint?: string;
  tables?: { main?: string; audit?: string };
  adminAccessKey?: string;
  /** The local audit wrapping key file beside local.json (present or not). */
  wrappingKeyFile?: string;
}

/** Reads `.keysmith/local.json` from the working directory; an absent or unreadable file is an empty state. */
export function readLocalState(file = resolve('.keysmith/local.json')): LocalState {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
  if (typeof raw !== 'object' || raw === null) return {};
  const state = raw as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === 'string' && value.length > 0 ? value : undefined);
  const tables = typeof state.tables === 'object' && state.tables !== null ? (state.tables as Record<string, unknown>) : {};
  return {
    baseUrl: text(state.baseUrl),
    issuerBase: text(state.issuerBase),
    audiences: Array.isArray(state.audiences) ? state.audiences.filter((a): a is string => typeof a === 'string') : undefined,
    dynamodbEndpoint: text(state.dynamodbEndpoint),
    tables: { main: text(tables.main), audit: text(tables.audit) },
    adminAccessKey: text(state.adminAccessKey),
    wrappingKeyFile: join(dirname(file), 'audit-wrapping-key'),
  };
}

/** What a command runs with. */
export interface Context {
  out(line: string): void;
  err(line: string): void;
  env: Record<string, string | undefined>;
  local(): LocalState;
  /** Used for every HTTP call (tests may route it). */
  fetch: typeof fetch;
}

/**
 * What a terminal could act on or that disguises text: C0 (tab, newline, ESC ...), DEL, C1 (U+009B is a CSI of
 * its own), the bidirectional controls, and the Unicode line and paragraph separators.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const TERMINAL_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` made safe to print: each control character becomes a visible `\uXXXX`; other Unicode is kept.
 * Everything the CLI prints that came from the API, a file or the user goes through it: the tables are
 * untrusted, so a name may hold an escape sequence or a newline that fakes another line.
 * `keepNewlines` is for the CLI's own multi-line text (help, indented JSON): only its line breaks survive.
 */
export function terminalSafe(text: string, { keepNewlines = false } = {}): string {
  if (keepNewlines)
    return text
      .split('\n')
      .map((line) => terminalSafe(line))
      .join('\n');
  return text.replace(TERMINAL_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `value` as JSON that is safe to print and parses back to the same value. JSON.stringify escapes C0 inside
 * strings but not DEL, C1 or the bidirectional controls; those become `\uXXXX` escapes here. Raw control
 * characters can only be inside strings, and the only newlines outside them are the indentation's.
 */
export const jsonText = (value: unknown, indent?: number): string =>
  terminalSafe(JSON.stringify(value, null, indent) ?? 'null', { keepNewlines: true });

/** Prints a value as JSON (for `--json`). */
export const printJson = (ctx: Context, value: unknown): void => ctx.out(jsonText(value, 2));

/** Prints rows as an aligned table; every cell is made {@link terminalSafe}. */
export function printTable(ctx: Context, headerCells: string[], rowCells: string[][]): void {
  const headers = headerCells.map((cell) => terminalSafe(cell));
  const rows = rowCells.map((row) => row.map((cell) => terminalSafe(cell)));
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  ctx.out(line(headers));
  for (const row of rows) ctx.out(line(row));
}

/** Reads a file the user named, as a usage error when it cannot be read. */
export function readUserFile(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`${option}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
