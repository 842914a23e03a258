/** What every command gets: output, the environment, `.keysmith/local.json`, and the CLI's errors. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** A usage mistake: printed without a stack, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure the user should read (e.g. an unreachable deployment): printed without a stack, exit code 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/** The API answered with problem+json (contract §5). */
export class ApiProblemError extends Error {
  override name = 'ApiProblemError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${detail} (${code}, HTTP ${status})`);
  }
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

/** Prints a value as JSON (for `--json`). */
export const printJson = (ctx: Context, value: unknown): void => ctx.out(JSON.stringify(value, null, 2));

/** Prints rows as an aligned table. */
export function printTable(ctx: Context, headers: string[], rows: string[][]): void {
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
