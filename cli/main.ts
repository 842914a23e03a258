/**
 * The `keysmith` command line: mint tokens, manage clients and keys through a deployment's API, read and
 * verify the audit trail, and bootstrap the first platform admin.
 */
import { TokenEndpointError } from '#sdk/access-token.ts';
import { KeysmithApiError, KeysmithConnectionError } from '#sdk/errors.ts';
import { AccessKeyFormatError } from '#shared/access-key.ts';
import { type Command, commandHelp, parseCommand } from './command.ts';
import { auditListCommand } from './commands/audit-list.ts';
import { clientsCommands } from './commands/clients.ts';
import { keysCommands } from './commands/keys.ts';
import { auditAnchorCommand, auditVerifyCommand, bootstrapCommand } from './commands/operator.ts';
import { tokenCommand } from './commands/token.ts';
import { whoamiCommand } from './commands/whoami.ts';
import { CliError, type Context, jsonText, readLocalState, terminalSafe, UsageError } from './context.ts';

export { UsageError };

const COMMANDS: Command[] = [
  tokenCommand,
  whoamiCommand,
  ...clientsCommands,
  ...keysCommands,
  auditListCommand,
  auditVerifyCommand,
  auditAnchorCommand,
  bootstrapCommand,
];

const HELP = `keysmith: Keysmith's command line

Usage: keysmith <command> [options]    (keysmith <command> --help for its options)

${COMMANDS.map((c) => `  ${c.name.join(' ').padEnd(16)} ${c.summary}`).join('\n')}

The API commands (whoami, clients, keys, audit list) find the deployment and the admin access key in
--base-url/--access-key, else KEYSMITH_BASE_URL/KEYSMITH_ADMIN_ACCESS_KEY, else .keysmith/local.json
(written by \`npm start\`). Add --json for output that scripts can parse.
Exit codes: 0 ok, 1 failure (including a broken audit chain), 2 usage error.`;

/** Removes any long argument (an access key or token given on the command line) from a message. */
function redact(message: string, argv: string[], env: Record<string, string | undefined>): string {
  // `--name=value` carries its value inside the argument: the value alone is a secret too.
  const values = argv.flatMap((arg) =>
    arg.startsWith('--') && arg.includes('=') ? [arg, arg.slice(arg.indexOf('=') + 1)] : [arg],
  );
  const secrets = [...values, env.KEYSMITH_ACCESS_KEY, env.KEYSMITH_ADMIN_ACCESS_KEY]
    .filter((value): value is string => typeof value === 'string' && value.length >= 40)
    // Longest first, so a whole argument is replaced before the value inside it.
    .sort((a, b) => b.length - a.length);
  return secrets.reduce((text, secret) => text.split(secret).join('[redacted]'), message);
}

function helpFor(words: string[]): string | undefined {
  const exact = COMMANDS.find((c) => c.name.join(' ') === words.join(' '));
  if (exact) return commandHelp(exact);
  const group = COMMANDS.filter((c) => c.name[0] === words[0] && c.name.length > 1);
  if (words.length === 1 && group.length > 0)
    return `Usage: keysmith ${words[0]} <command> [options]\n\n${group
      .map((c) => `  ${c.name.join(' ').padEnd(16)} ${c.summary}`)
      .join('\n')}\n\nkeysmith ${words[0]} <command> --help shows a command's options.`;
  return undefined;
}

/** Finds the command named by the first words of argv. */
function findCommand(argv: string[]): { command: Command; args: string[] } | undefined {
  for (const command of COMMANDS) {
    if (command.name.every((word, i) => argv[i] === word)) return { command, args: argv.slice(command.name.length) };
  }
  return undefined;
}

/** Runs the CLI; returns the exit code. `context` replaces parts of the real one (tests route `fetch`). */
export async function run(
  argv: string[],
  rawOut = (line: string) => console.log(line),
  rawErr = (line: string) => console.error(line),
  context: Partial<Pick<Context, 'env' | 'local' | 'fetch'>> = {},
): Promise<number> {
  const env = context.env ?? process.env;
  // A backstop for every command: the commands make what they print terminal-safe themselves (newlines in a
  // name too); here nothing but the CLI's own line breaks ever reaches the terminal raw.
  const out = (line: string) => rawOut(terminalSafe(line, { keepNewlines: true }));
  const err = (line: string) => rawErr(terminalSafe(line, { keepNewlines: true }));
  const ctx: Context = {
    out,
    err,
    env,
    local: context.local ?? (() => readLocalState()),
    fetch: context.fetch ?? globalThis.fetch,
  };
  const json = argv.includes('--json');
  const fail = (code: number, message: string, problem?: KeysmithApiError): number => {
    const safe = redact(message, argv, env);
    if (json)
      err(
        jsonText({
          error: problem
            ? { status: problem.status, code: problem.code, detail: redact(problem.detail, argv, env) }
            : { message: safe },
        }),
      );
    // An API's detail or a user's argument may hold control characters: one line, escaped.
    else err(`keysmith: ${terminalSafe(safe)}`);
    return code;
  };
  try {
    const [first] = argv;
    if (!first || first === '-h' || first === '--help' || first === 'help') {
      out(HELP);
      return first ? 0 : 2;
    }
    const found = findCommand(argv);
    const wantsHelp = argv.includes('-h') || argv.includes('--help');
    if (!found) {
      const words = argv.filter((a) => !a.startsWith('-')).slice(0, 2);
      const help = helpFor(words.slice(0, 1));
      if (help && (wantsHelp || words.length === 1)) {
        out(help);
        return wantsHelp ? 0 : 2;
      }
      throw new UsageError(`unknown command "${words.join(' ')}"; see keysmith --help`);
    }
    if (wantsHelp) {
      out(commandHelp(found.command));
      return 0;
    }
    const { values, positionals } = parseCommand(found.command, found.args);
    return (await found.command.run(values, positionals, ctx)) ?? 0;
  } catch (error) {
    if (error instanceof UsageError || error instanceof AccessKeyFormatError) return fail(2, error.message);
    // `{detail} ({code}, HTTP {status})`; --json prints status, code and detail.
    if (error instanceof KeysmithApiError) return fail(1, error.message, error);
    if (error instanceof KeysmithConnectionError) return fail(1, `${error.message}. Is --base-url right?`);
    if (error instanceof CliError) return fail(1, error.message);
    if (error instanceof TokenEndpointError) return fail(1, terminalSafe(error.message));
    return fail(1, `unexpected failure: ${(error as Error)?.message ?? String(error)}`);
  }
}
